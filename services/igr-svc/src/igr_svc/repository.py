"""igr-svc's counters and reads (SQLAlchemy Core): every write is one statement per batch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from igr_svc import domain
from igr_svc.models import (
    beneficiaries,
    closed_quarters,
    complaint_counts,
    indicators,
    individual_figures,
    late_complaints,
    operators,
    quarter_results,
    reanalyses,
)
from rn623_events.contracts.igr import QuarterlyMethod
from rn623_events.db import array_params, rows_from_arrays

# Held shared by every transaction that counts complaints and exclusively by the one that
# closes a quarter: a complaint is either in the frozen figures or counted as late.
CLOSING_LOCK = 0x1C0_0001


async def save_operator(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Insert or update the operator's copy (older revisions are ignored)."""
    statement = insert(operators).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[operators.c.ans_registry],
            set_={c: statement.excluded[c] for c in ("name", "segment", "revision", "updated_at")},
            where=operators.c.revision < statement.excluded.revision,
        )
    )


async def segments(session: AsyncSession, ans_registries: Iterable[str]) -> dict[str, str]:
    """The segment of each known operator among ``ans_registries``."""
    wanted = sorted(set(ans_registries))
    if not wanted:
        return {}
    result = await session.execute(
        sa.select(operators.c.ans_registry, operators.c.segment).where(
            operators.c.ans_registry.in_(wanted)
        )
    )
    return {row.ans_registry: row.segment for row in result}


async def lock_counting(session: AsyncSession, *, closing: bool = False) -> None:
    """Take the closing lock: shared to count complaints, exclusive to close a quarter."""
    function = "pg_advisory_xact_lock" if closing else "pg_advisory_xact_lock_shared"
    await session.execute(sa.select(getattr(sa.func, function)(CLOSING_LOCK)))


async def closed(session: AsyncSession) -> set[str]:
    """The quarters already closed."""
    return set((await session.scalars(sa.select(closed_quarters.c.quarter))).all())


_COMPLAINT_COLUMNS = ("ans_registry", "coverage", "month", "complaints")
_INDICATOR_COLUMNS = ("ans_registry", "quarter", "metric", "count", "total")


def _add_complaints_statement() -> Any:
    statement = insert(complaint_counts).from_select(
        _COMPLAINT_COLUMNS, sa.select(rows_from_arrays(complaint_counts, _COMPLAINT_COLUMNS))
    )
    return statement.on_conflict_do_update(
        index_elements=list(complaint_counts.primary_key.columns),
        set_={"complaints": complaint_counts.c.complaints + statement.excluded.complaints},
    )


def _add_indicators_statement() -> Any:
    statement = insert(indicators).from_select(
        _INDICATOR_COLUMNS, sa.select(rows_from_arrays(indicators, _INDICATOR_COLUMNS))
    )
    return statement.on_conflict_do_update(
        index_elements=list(indicators.primary_key.columns),
        set_={
            "count": indicators.c.count + statement.excluded["count"],
            "total": indicators.c.total + statement.excluded.total,
        },
    )


# Built once: the counting consumers run these for every batch, and building a statement
# (and its cache key) per call cost more than running it.
_ADD_COMPLAINTS = _add_complaints_statement()
_ADD_INDICATORS = _add_indicators_statement()


async def add_complaints(
    session: AsyncSession, counts: Mapping[tuple[str, str, date], int]
) -> None:
    """Add NIP complaints to the (operator, coverage, month) counters."""
    if not counts:
        return
    rows = [dict(zip(_COMPLAINT_COLUMNS, (*key, n), strict=True)) for key, n in counts.items()]
    await session.execute(_ADD_COMPLAINTS, array_params(_COMPLAINT_COLUMNS, rows))


async def add_indicators(
    session: AsyncSession, increments: Mapping[tuple[str, str, str], tuple[int, float]]
) -> None:
    """Add to the (operator, quarter, metric) counters and sums."""
    if not increments:
        return
    rows = [
        dict(zip(_INDICATOR_COLUMNS, (*key, *sums), strict=True))
        for key, sums in increments.items()
    ]
    await session.execute(_ADD_INDICATORS, array_params(_INDICATOR_COLUMNS, rows))


async def add_late(session: AsyncSession, counts: Mapping[tuple[str, str], int]) -> None:
    """Count complaints that reached a closed quarter, pending its next revision."""
    if not counts:
        return
    statement = insert(late_complaints).values(
        [
            {"ans_registry": a, "quarter": q, "pending": n, "total": n}
            for (a, q), n in counts.items()
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=list(late_complaints.primary_key.columns),
            set_={
                "pending": late_complaints.c.pending + statement.excluded.pending,
                "total": late_complaints.c.total + statement.excluded.total,
            },
        )
    )


async def add_reanalyses(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Remember re-analysis demands (idempotent)."""
    if rows:
        await session.execute(insert(reanalyses).values(list(rows)).on_conflict_do_nothing())


async def reanalysis_ids(session: AsyncSession, demand_ids: Iterable[Any]) -> set[Any]:
    """Which of ``demand_ids`` are re-analyses."""
    wanted = list(set(demand_ids))
    if not wanted:
        return set()
    result = await session.scalars(
        sa.select(reanalyses.c.demand_id).where(reanalyses.c.demand_id.in_(wanted))
    )
    return set(result.all())


async def put_beneficiaries(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or replace beneficiary counts (ans_registry, coverage, month, count, source,
    updated_at), one statement per 10 000 rows."""
    for start in range(0, len(rows), 10_000):
        chunk = rows[start : start + 10_000]
        await session.execute(_PUT_BENEFICIARIES, array_params(_BENEFICIARY_COLUMNS, chunk))


_BENEFICIARY_COLUMNS = ("ans_registry", "coverage", "month", "count", "source", "updated_at")


def _put_beneficiaries_statement() -> Any:
    statement = insert(beneficiaries).from_select(
        _BENEFICIARY_COLUMNS, sa.select(rows_from_arrays(beneficiaries, _BENEFICIARY_COLUMNS))
    )
    return statement.on_conflict_do_update(
        index_elements=list(beneficiaries.primary_key.columns),
        set_={
            "count": statement.excluded["count"],
            "source": statement.excluded.source,
            "updated_at": statement.excluded.updated_at,
        },
    )


_PUT_BENEFICIARIES = _put_beneficiaries_statement()


async def load_inputs(
    session: AsyncSession,
    quarter: str,
    ans_registries: Sequence[str] | None = None,
    *,
    method: QuarterlyMethod = "mean_of_monthly",
    now: datetime | None = None,
) -> dict[str, domain.QuarterInput]:
    """Everything the figures of ``quarter`` need, for the given operators (or all known
    ones), in five queries whatever their number; the baseline is last year's figure.
    With ``now`` inside the quarter, months that have not started get no figures."""
    op_query = sa.select(operators.c.ans_registry, operators.c.segment)
    if ans_registries is not None:
        op_query = op_query.where(operators.c.ans_registry.in_(list(ans_registries)))
    segments_of = {r.ans_registry: r.segment for r in await session.execute(op_query)}
    if not segments_of:
        return {}
    baseline_quarter = domain.previous_year(quarter)
    months = domain.quarter_months(quarter)
    old_months = domain.quarter_months(baseline_quarter)
    scope = list(segments_of)

    def of_scope(table: sa.Table) -> sa.ColumnElement[bool]:
        return table.c.ans_registry.in_(scope) if ans_registries is not None else sa.true()

    complaints: dict[str, dict[tuple[str, date], int]] = {}
    result = await session.execute(
        sa.select(complaint_counts).where(
            of_scope(complaint_counts), complaint_counts.c.month.in_([*months, *old_months])
        )
    )
    for row in result:
        complaints.setdefault(row.ans_registry, {})[(row.coverage, row.month)] = row.complaints
    counts: dict[str, dict[str, dict[date, int]]] = {}
    result = await session.execute(
        sa.select(beneficiaries).where(
            of_scope(beneficiaries),
            beneficiaries.c.month.between(
                domain.add_months(old_months[0], -domain.BENEFICIARY_LOOKBACK_MONTHS), months[2]
            ),
        )
    )
    for entry in result.mappings():  # (a row's .count is the tuple method)
        by_month = counts.setdefault(entry["ans_registry"], {}).setdefault(entry["coverage"], {})
        by_month[entry["month"]] = entry["count"]
    individual: dict[str, dict[str, Decimal]] = {}
    result = await session.execute(
        sa.select(individual_figures).where(
            of_scope(individual_figures), individual_figures.c.quarter == quarter
        )
    )
    for row in result:
        individual.setdefault(row.ans_registry, {})[row.coverage] = row.igr_individual
    frozen = await latest_results(session, baseline_quarter, scope if ans_registries else None)
    inputs: dict[str, domain.QuarterInput] = {}
    for ans, segment in segments_of.items():
        own = complaints.get(ans, {})
        baseline: dict[str, Decimal | None]
        if ans in frozen:
            baseline = {c["coverage"]: _decimal(c["igr_medio"]) for c in frozen[ans]["coverages"]}
        else:  # last year's IGR médio, the same way this year's is formed
            old = domain.QuarterInput(baseline_quarter, segment, own, counts.get(ans, {}), {}, {})
            baseline = {
                coverage: domain.igr_medio(domain.month_figures(old, coverage), method)
                for coverage in domain.COVERAGES[segment]
            }
        inputs[ans] = domain.QuarterInput(
            quarter=quarter,
            segment=segment,
            complaints={k: v for k, v in own.items() if k[1] in months},
            beneficiaries=counts.get(ans, {}),
            individual=individual.get(ans, {}),
            baseline=baseline,
            as_of=domain.month_of(now) if now is not None else None,
        )
    return inputs


def _decimal(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


async def latest_results(
    session: AsyncSession, quarter: str, ans_registries: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The latest frozen figures of a closed quarter, by operator."""
    query = (
        sa.select(quarter_results.c.ans_registry, quarter_results.c.figures)
        .where(quarter_results.c.quarter == quarter)
        .order_by(quarter_results.c.ans_registry, quarter_results.c.revision.desc())
        .ext(distinct_on(quarter_results.c.ans_registry))
    )
    if ans_registries is not None:
        query = query.where(quarter_results.c.ans_registry.in_(list(ans_registries)))
    return {row.ans_registry: row.figures for row in await session.execute(query)}


async def mark_closed(session: AsyncSession, quarter: str, at: datetime, method: str) -> bool:
    """Record that a quarter closed; False when it already was."""
    result = await session.execute(
        insert(closed_quarters)
        .values(quarter=quarter, closed_at=at, method=method)
        .on_conflict_do_nothing()
        .returning(closed_quarters.c.quarter)
    )
    return result.first() is not None


async def insert_results(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store frozen figures (ans_registry, quarter, revision, computed_at, figures): one
    statement compiled once, executed as batched multi-row inserts."""
    if rows:
        await session.execute(sa.insert(quarter_results), list(rows))


async def pending_revisions(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(operator, quarter, next revision) of closed quarters with late complaints, locked."""
    revision = (
        sa.select(sa.func.max(quarter_results.c.revision) + 1)
        .where(
            quarter_results.c.ans_registry == late_complaints.c.ans_registry,
            quarter_results.c.quarter == late_complaints.c.quarter,
        )
        .scalar_subquery()
    )
    result = await session.execute(
        sa.select(late_complaints.c.ans_registry, late_complaints.c.quarter, revision)
        .where(late_complaints.c.pending > 0)
        .with_for_update(of=late_complaints, skip_locked=True)
    )
    return [(row[0], row[1], int(row[2]) if row[2] is not None else 0) for row in result]


async def clear_pending(session: AsyncSession, keys: Sequence[tuple[str, str]]) -> None:
    """Mark late complaints as included in a revision (one statement)."""
    if keys:
        await session.execute(
            sa.update(late_complaints)
            .where(
                sa.tuple_(late_complaints.c.ans_registry, late_complaints.c.quarter).in_(list(keys))
            )
            .values(pending=0)
        )


async def add_unknown_operators(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert operators known only from imported data (revision 0: any operator.upserted
    replaces them)."""
    for start in range(0, len(rows), 5000):
        chunk = list(rows[start : start + 5000])
        await session.execute(insert(operators).values(chunk).on_conflict_do_nothing())
