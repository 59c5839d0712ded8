"""Importing beneficiary counts from the regulator's open IGR data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


async def import_open_data(uow: UnitOfWork, lines: Iterable[str], now: datetime) -> ImportSummary:
    """Store every (operator, coverage, month) beneficiary count of an open-data file, and
    operators not known yet (name, segment from their coverages); the caller commits."""
    counts: dict[tuple[str, str, Any], int] = {}
    names: dict[str, str] = {}
    coverages: dict[str, set[str]] = {}
    rows = 0
    for row in read_open_data(lines):
        rows += 1
        counts[(row.ans_registry, row.coverage, row.beneficiaries_month)] = row.beneficiaries
        names[row.ans_registry] = row.name
        coverages.setdefault(row.ans_registry, set()).add(row.coverage)
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
            for (ans, coverage, month), count in counts.items()
        ],
    )
    await repo.add_unknown_operators(
        uow.session,
        [
            {
                "ans_registry": ans,
                "name": names[ans],
                "segment": segment_of(coverages[ans]),
                "revision": 0,
                "updated_at": now,
            }
            for ans in names
        ],
    )
    return ImportSummary(
        rows=rows,
        counts=len(counts),
        operators=len(names),
        months=len({month for _, _, month in counts}),
    )
