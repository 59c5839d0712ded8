"""The HTTP API's own reads and writes (SQLAlchemy Core); the figures themselves come from
``repository.load_inputs`` / ``repository.latest_results``.

Lists take ``operators``: the operators the caller may act for (None: every one), so a
tenant never reads another's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from igr_svc.models import (
    beneficiaries,
    closed_quarters,
    indicators,
    individual_figures,
    late_complaints,
    operators,
    quarter_results,
)

Row = Mapping[str, Any]
Operators = Sequence[str] | None


def _tenant(column: sa.ColumnElement[str], operators: Operators) -> sa.ColumnElement[bool]:
    """The rows of the operators the caller may act for (every row when None)."""
    return sa.true() if operators is None else column.in_(list(operators))


async def _first(session: AsyncSession, query: sa.Select[Any]) -> Row | None:
    row = (await session.execute(query)).mappings().first()
    return dict(row) if row is not None else None


async def _all(session: AsyncSession, query: sa.Select[Any]) -> list[Row]:
    return [dict(row) for row in (await session.execute(query)).mappings()]


# ---- operators -----------------------------------------------------------------------------


async def get_operator(session: AsyncSession, ans_registry: str) -> Row | None:
    """An operator's local copy (name, segment)."""
    return await _first(
        session, sa.select(operators).where(operators.c.ans_registry == ans_registry)
    )


async def operator_names(session: AsyncSession, operators_: Operators) -> dict[str, str]:
    """The name of each known operator among ``operators_`` (every one when None)."""
    if operators_ is not None and not operators_:
        return {}
    result = await session.execute(
        sa.select(operators.c.ans_registry, operators.c.name).where(
            _tenant(operators.c.ans_registry, operators_)
        )
    )
    return {row.ans_registry: row.name for row in result}


# ---- beneficiaries -------------------------------------------------------------------------


async def beneficiaries_between(
    session: AsyncSession, ans_registry: str, first: date, last: date
) -> list[Row]:
    """An operator's beneficiary counts from month ``first`` to ``last``, by month and
    coverage."""
    return await _all(
        session,
        sa.select(beneficiaries)
        .where(
            beneficiaries.c.ans_registry == ans_registry,
            beneficiaries.c.month.between(first, last),
        )
        .order_by(beneficiaries.c.month, beneficiaries.c.coverage),
    )


# ---- quarters ------------------------------------------------------------------------------


async def closed_quarter(session: AsyncSession, quarter: str) -> Row | None:
    """When a quarter closed and with which method; None while open."""
    return await _first(
        session, sa.select(closed_quarters).where(closed_quarters.c.quarter == quarter)
    )


async def closed_among(session: AsyncSession, quarters: Sequence[str]) -> set[str]:
    """Which of ``quarters`` are closed."""
    result = await session.scalars(
        sa.select(closed_quarters.c.quarter).where(closed_quarters.c.quarter.in_(list(quarters)))
    )
    return set(result.all())


async def frozen_of(session: AsyncSession, ans_registry: str, quarter: str) -> list[Row]:
    """Revision 0 and the latest revision of an operator's closed quarter (one row when
    they are the same; none when the operator had no figures)."""
    latest = (
        sa.select(sa.func.max(quarter_results.c.revision))
        .where(
            quarter_results.c.ans_registry == ans_registry,
            quarter_results.c.quarter == quarter,
        )
        .scalar_subquery()
    )
    return await _all(
        session,
        sa.select(
            quarter_results.c.revision, quarter_results.c.computed_at, quarter_results.c.figures
        )
        .where(
            quarter_results.c.ans_registry == ans_registry,
            quarter_results.c.quarter == quarter,
            sa.or_(quarter_results.c.revision == 0, quarter_results.c.revision == latest),
        )
        .order_by(quarter_results.c.revision),
    )


async def latest_of_quarters(
    session: AsyncSession, ans_registry: str, quarters: Sequence[str]
) -> dict[str, Row]:
    """The latest revision (number and figures) of an operator in each of ``quarters``."""
    if not quarters:
        return {}
    rows = await _all(
        session,
        sa.select(quarter_results.c.quarter, quarter_results.c.revision, quarter_results.c.figures)
        .where(
            quarter_results.c.ans_registry == ans_registry,
            quarter_results.c.quarter.in_(list(quarters)),
        )
        .order_by(quarter_results.c.quarter, quarter_results.c.revision.desc())
        .ext(distinct_on(quarter_results.c.quarter)),
    )
    return {row["quarter"]: row for row in rows}


async def late_total(session: AsyncSession, ans_registry: str, quarter: str) -> int:
    """Complaints counted into an operator's closed quarter after it closed."""
    result = await session.execute(
        sa.select(late_complaints.c.total).where(
            late_complaints.c.ans_registry == ans_registry, late_complaints.c.quarter == quarter
        )
    )
    return int(result.scalar_one_or_none() or 0)


# ---- IGR individual ------------------------------------------------------------------------


async def individual_of(
    session: AsyncSession, ans_registry: str, quarter: str
) -> dict[str, Decimal]:
    """The IGR individual stored for an operator's quarter, by coverage."""
    result = await session.execute(
        sa.select(individual_figures.c.coverage, individual_figures.c.igr_individual).where(
            individual_figures.c.ans_registry == ans_registry,
            individual_figures.c.quarter == quarter,
        )
    )
    return {row.coverage: row.igr_individual for row in result}


async def put_individual(
    session: AsyncSession,
    ans_registry: str,
    quarter: str,
    values: Mapping[str, Decimal],
    at: datetime,
) -> None:
    """Insert or replace the IGR individual of an operator's quarter per coverage."""
    if not values:
        return
    statement = insert(individual_figures).values(
        [
            {
                "ans_registry": ans_registry,
                "quarter": quarter,
                "coverage": coverage,
                "igr_individual": value,
                "updated_at": at,
            }
            for coverage, value in values.items()
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=list(individual_figures.primary_key.columns),
            set_={
                "igr_individual": statement.excluded.igr_individual,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )


# ---- indicators ----------------------------------------------------------------------------


async def indicators_of(
    session: AsyncSession, ans_registry: str, quarter: str
) -> dict[str, tuple[int, float]]:
    """An operator's indicator counters of a quarter: metric → (count, total)."""
    result = await session.execute(
        sa.select(indicators.c.metric, indicators.c["count"], indicators.c.total).where(
            indicators.c.ans_registry == ans_registry, indicators.c.quarter == quarter
        )
    )
    return {row[0]: (int(row[1]), float(row[2])) for row in result}
