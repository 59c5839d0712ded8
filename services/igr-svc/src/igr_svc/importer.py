"""Importing beneficiary counts from the regulator's open IGR data: a synchronous parse
(run it in a worker thread: a full file takes seconds) and an asynchronous store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from igr_svc import repository as repo
from igr_svc.imports import read_open_data, segment_of
from rn623_events.db import UnitOfWork


@dataclass(frozen=True)
class ImportSummary:
    """What an import stored."""

    rows: int
    counts: int
    operators: int
    months: int


@dataclass
class ParsedImport:
    """The counts and operators of an open-data file, ready to store."""

    rows: int = 0
    counts: dict[tuple[str, str, date], int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    coverages: dict[str, set[str]] = field(default_factory=dict)

    def summary(self) -> ImportSummary:
        """How many rows, counts, operators and months the file holds."""
        return ImportSummary(
            rows=self.rows,
            counts=len(self.counts),
            operators=len(self.names),
            months=len({month for _, _, month in self.counts}),
        )


def parse_open_data(lines: Iterable[str]) -> ParsedImport:
    """Every (operator, coverage, month) beneficiary count of a file, and its operators;
    raises OpenDataError naming the first bad line and column."""
    parsed = ParsedImport()
    for row in read_open_data(lines):
        parsed.rows += 1
        parsed.counts[(row.ans_registry, row.coverage, row.beneficiaries_month)] = row.beneficiaries
        parsed.names[row.ans_registry] = row.name
        parsed.coverages.setdefault(row.ans_registry, set()).add(row.coverage)
    return parsed


async def store_open_data(uow: UnitOfWork, parsed: ParsedImport, now: datetime) -> ImportSummary:
    """Store the counts, and operators not known yet (name, segment from their coverages);
    the caller commits."""
    await repo.put_beneficiaries(
        uow.session,
        [
            {
                "ans_registry": ans,
                "coverage": coverage,
                "month": month,
                "count": count,
                "source": "import",
                "updated_at": now,
            }
            for (ans, coverage, month), count in parsed.counts.items()
        ],
    )
    await repo.add_unknown_operators(
        uow.session,
        [
            {
                "ans_registry": ans,
                "name": name,
                "segment": segment_of(parsed.coverages[ans]),
                "revision": 0,
                "updated_at": now,
            }
            for ans, name in parsed.names.items()
        ],
    )
    return parsed.summary()
