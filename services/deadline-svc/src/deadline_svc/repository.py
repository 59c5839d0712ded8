"""Reads and writes of deadline-svc's tables (inside a unit of work's session)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from deadline_svc.domain import OPEN
from deadline_svc.models import deadlines, operators


async def get_operator(
    session: AsyncSession, ans_registry: str, *, lock: bool = False
) -> RowMapping | None:
    """The local copy of an operator's calendar data (locked if asked), or None."""
    query = sa.select(operators).where(operators.c.ans_registry == ans_registry)
    row = (await session.execute(query.with_for_update() if lock else query)).first()
    return row._mapping if row is not None else None


async def save_operator(session: AsyncSession, values: Mapping[str, Any]) -> RowMapping | None:
    """Keep an operator revision newer than the stored one; return the replaced row.

    Returns None when the operator was unknown; raises ``StaleRevision`` when the stored
    revision is the same or newer (a redelivered or out-of-order event).
    """
    current = (
        await session.execute(
            sa.select(operators)
            .where(operators.c.ans_registry == values["ans_registry"])
            .with_for_update()
        )
    ).first()
    if current is None:
        await session.execute(
            pg_insert(operators)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["ans_registry"])
        )
        return None
    if current._mapping["revision"] >= values["revision"]:
        raise StaleRevision
    await session.execute(
        sa.update(operators)
        .where(operators.c.ans_registry == values["ans_registry"])
        .values(**values)
    )
    return current._mapping


class StaleRevision(Exception):
    """The operator revision received is not newer than the stored one."""


async def insert_deadlines(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]]
) -> set[uuid.UUID]:
    """Insert deadlines; return the demand ids that got one (the others already had one)."""
    if not rows:
        return set()
    inserted = await session.execute(
        pg_insert(deadlines)
        .on_conflict_do_nothing(index_elements=["demand_id"])
        .returning(deadlines.c.demand_id),
        list(rows),
    )
    return set(inserted.scalars())


async def insert_access_deadline(session: AsyncSession, values: Mapping[str, Any]) -> bool:
    """Insert a records-access deadline; False if the request already has one."""
    inserted = await session.execute(
        pg_insert(deadlines)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["access_request_id"])
        .returning(deadlines.c.id)
    )
    return inserted.first() is not None


async def lock_deadline(
    session: AsyncSession,
    *,
    demand_id: uuid.UUID | None = None,
    access_request_id: uuid.UUID | None = None,
) -> RowMapping | None:
    """The deadline of a demand or of an access request, locked until the transaction ends."""
    column = deadlines.c.demand_id if demand_id is not None else deadlines.c.access_request_id
    key = demand_id if demand_id is not None else access_request_id
    row = (
        await session.execute(sa.select(deadlines).where(column == key).with_for_update())
    ).first()
    return row._mapping if row is not None else None


async def update_deadline(session: AsyncSession, deadline_id: uuid.UUID, **values: Any) -> None:
    """Change some columns of a deadline."""
    await session.execute(
        sa.update(deadlines).where(deadlines.c.id == deadline_id).values(**values)
    )


async def record_checks(session: AsyncSession, changes: Sequence[Mapping[str, Any]]) -> None:
    """Store the scheduler's checks (keys id, warned, next_check_at, status, breached_at)."""
    if not changes:
        return
    # bind names must differ from the column names of an executemany UPDATE
    await session.execute(
        sa.update(deadlines)
        .where(deadlines.c.id == sa.bindparam("b_id"))
        .values(
            warned=sa.bindparam("b_warned"),
            next_check_at=sa.bindparam("b_next_check_at"),
            status=sa.bindparam("b_status"),
            breached_at=sa.bindparam("b_breached_at"),
        ),
        [{f"b_{key}": value for key, value in change.items()} for change in changes],
    )


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[RowMapping]:
    """Deadlines whose next check is due, locked; rows another replica holds are skipped."""
    query = (
        sa.select(deadlines)
        .where(deadlines.c.next_check_at.is_not(None), deadlines.c.next_check_at <= now)
        .order_by(deadlines.c.next_check_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [row._mapping for row in await session.execute(query)]


async def lock_open_deadlines(session: AsyncSession, ans_registry: str) -> list[RowMapping]:
    """An operator's open deadlines, locked (to recompute them)."""
    query = (
        sa.select(deadlines)
        .where(deadlines.c.ans_registry == ans_registry, deadlines.c.status == OPEN)
        .order_by(deadlines.c.due_at)
        .with_for_update()
    )
    return [row._mapping for row in await session.execute(query)]


async def get_deadline(session: AsyncSession, deadline_id: uuid.UUID) -> RowMapping | None:
    """A deadline by id, or None."""
    row = (await session.execute(sa.select(deadlines).where(deadlines.c.id == deadline_id))).first()
    return row._mapping if row is not None else None


async def list_deadlines(
    session: AsyncSession,
    *,
    operators_allowed: Sequence[str] | None,
    protocol_number: str | None = None,
    ans_registry: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    demand_type: str | None = None,
    due_before: datetime | None = None,
    due_after: datetime | None = None,
    after: tuple[bool, datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[RowMapping]:
    """Deadlines by due date, urgencies first, after a (not immediate, due_at, id) cursor."""
    urgency_last = sa.not_(deadlines.c.immediate)
    query = sa.select(deadlines)
    if operators_allowed is not None:
        query = query.where(deadlines.c.ans_registry.in_(operators_allowed))
    if protocol_number is not None:
        query = query.where(deadlines.c.protocol_number == protocol_number)
    if ans_registry is not None:
        query = query.where(deadlines.c.ans_registry == ans_registry)
    if status is not None:
        query = query.where(deadlines.c.status == status)
    if kind is not None:
        query = query.where(deadlines.c.kind == kind)
    if demand_type is not None:
        query = query.where(deadlines.c.demand_type == demand_type)
    if due_before is not None:
        query = query.where(deadlines.c.due_at < due_before)
    if due_after is not None:
        query = query.where(deadlines.c.due_at >= due_after)
    if after is not None:
        query = query.where(sa.tuple_(urgency_last, deadlines.c.due_at, deadlines.c.id) > after)
    query = query.order_by(urgency_last, deadlines.c.due_at, deadlines.c.id).limit(limit)
    return [row._mapping for row in await session.execute(query)]


async def open_counts(session: AsyncSession, horizon: datetime) -> list[RowMapping]:
    """Open deadlines per operator and kind, and how many of them fall due before ``horizon``."""
    query = (
        sa.select(
            deadlines.c.ans_registry,
            deadlines.c.kind,
            sa.func.count().label("open"),
            sa.func.count().filter(deadlines.c.due_at <= horizon).label("due_soon"),
        )
        .where(deadlines.c.status == OPEN)
        .group_by(deadlines.c.ans_registry, deadlines.c.kind)
    )
    return [row._mapping for row in await session.execute(query)]
