"""Reads and writes of protocol-svc's tables (inside a unit of work's session)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from protocol_svc.models import (
    answers,
    complaints,
    demands,
    interactions,
    operators,
    protocols,
    record_purges,
    status_history,
)
from rn623_events.db import insert_params


async def get_operator(session: AsyncSession, ans_registry: str) -> RowMapping | None:
    """The operator's registration, or None."""
    row = (
        await session.execute(sa.select(operators).where(operators.c.ans_registry == ans_registry))
    ).first()
    return row._mapping if row is not None else None


async def lock_operator(session: AsyncSession, ans_registry: str) -> RowMapping | None:
    """The operator's registration, locked for update until the transaction ends."""
    row = (
        await session.execute(
            sa.select(operators).where(operators.c.ans_registry == ans_registry).with_for_update()
        )
    ).first()
    return row._mapping if row is not None else None


async def save_operator(session: AsyncSession, values: Mapping[str, Any], *, exists: bool) -> None:
    """Insert or update an operator's registration."""
    if exists:
        await session.execute(
            sa.update(operators)
            .where(operators.c.ans_registry == values["ans_registry"])
            .values(**values)
        )
    else:
        await session.execute(sa.insert(operators).values(**values))


async def find_protocol_by_key(
    session: AsyncSession, ans_registry: str, *, idempotency_key: str | None, contact_id: str | None
) -> RowMapping | None:
    """A protocol already issued for this idempotency key or contact id, if any."""
    conditions = []
    if idempotency_key is not None:
        conditions.append(protocols.c.idempotency_key == idempotency_key)
    if contact_id is not None:
        conditions.append(protocols.c.contact_id == contact_id)
    if not conditions:
        return None
    row = (
        await session.execute(
            sa.select(protocols).where(
                protocols.c.ans_registry == ans_registry, sa.or_(*conditions)
            )
        )
    ).first()
    return row._mapping if row is not None else None


# The columns a new protocol sets (the values open_protocol builds).
OPENED_COLUMNS = (
    "number",
    "ans_registry",
    "layout_id",
    "channel",
    "direction",
    "opened_at",
    "timezone",
    "status",
    "contact_id",
    "idempotency_key",
    "request_fingerprint",
    "beneficiary",
    "beneficiary_cpf",
)


def _protocol_insert() -> sa.Insert:
    """A protocol and its first status in one statement, built once: issuing a protocol
    is the hottest write, and building the statement per call cost more than running it."""
    protocol = (
        sa.insert(protocols)
        .values({name: sa.bindparam(name, type_=protocols.c[name].type) for name in OPENED_COLUMNS})
        .returning(protocols.c.number, protocols.c.status, protocols.c.opened_at)
        .cte("protocol")
    )
    return sa.insert(status_history).from_select(
        ["protocol_number", "status", "reason", "at"],
        sa.select(protocol.c.number, protocol.c.status, sa.literal("opened"), protocol.c.opened_at),
    )


_INSERT_PROTOCOL = _protocol_insert()


async def insert_protocol(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Insert a protocol and its first status (one round trip)."""
    await session.execute(_INSERT_PROTOCOL, {name: values[name] for name in OPENED_COLUMNS})


_INSERT_DEMAND = sa.insert(demands)


async def insert_demand(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Insert a demand (one statement, its values as parameters: building a statement
    with the values in it was ~6 % of the API's CPU in the platform benchmark)."""
    await session.execute(_INSERT_DEMAND, insert_params(demands, values))


async def get_protocol(session: AsyncSession, number: str) -> RowMapping | None:
    """A protocol by number, or None."""
    row = (await session.execute(sa.select(protocols).where(protocols.c.number == number))).first()
    return row._mapping if row is not None else None


async def get_demand(
    session: AsyncSession, protocol_number: str, demand_id: Any
) -> RowMapping | None:
    """A demand of a protocol, locked for update until the transaction ends."""
    row = (
        await session.execute(
            sa.select(demands)
            .where(demands.c.protocol_number == protocol_number, demands.c.id == demand_id)
            .with_for_update()
        )
    ).first()
    return row._mapping if row is not None else None


async def get_answer(session: AsyncSession, demand_id: Any) -> RowMapping | None:
    """The answer of a demand, if it has one."""
    row = (
        await session.execute(sa.select(answers).where(answers.c.demand_id == demand_id))
    ).first()
    return row._mapping if row is not None else None


async def insert_answer(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Record an answer and mark its demand answered."""
    await session.execute(sa.insert(answers).values(**values))
    await session.execute(
        sa.update(demands).where(demands.c.id == values["demand_id"]).values(status="answered")
    )


async def record_status(
    session: AsyncSession, protocol_number: str, status: str, reason: str, at: Any
) -> None:
    """Set a protocol's status and append it to the history."""
    await session.execute(
        sa.update(protocols).where(protocols.c.number == protocol_number).values(status=status)
    )
    await session.execute(
        sa.insert(status_history).values(
            protocol_number=protocol_number, status=status, reason=reason, at=at
        )
    )


async def open_demands(session: AsyncSession, protocol_number: str) -> int:
    """How many demands of the protocol still await an answer."""
    value = await session.scalar(
        sa.select(sa.func.count())
        .select_from(demands)
        .where(demands.c.protocol_number == protocol_number, demands.c.status == "open")
    )
    return int(value or 0)


async def insert_interaction(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Record an interaction."""
    await session.execute(sa.insert(interactions).values(**values))


async def insert_complaint(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Record a complaint."""
    await session.execute(sa.insert(complaints).values(**values))


async def protocol_details(
    session: AsyncSession, number: str
) -> tuple[list[RowMapping], list[RowMapping], list[RowMapping], list[RowMapping]]:
    """A protocol's demands, answers, interactions and status history, oldest first."""
    demand_rows = await session.execute(
        sa.select(demands)
        .where(demands.c.protocol_number == number)
        .order_by(demands.c.registered_at, demands.c.seq)
    )
    answer_rows = await session.execute(
        sa.select(answers)
        .where(answers.c.protocol_number == number)
        .order_by(answers.c.answered_at)
    )
    interaction_rows = await session.execute(
        sa.select(interactions)
        .where(interactions.c.protocol_number == number)
        .order_by(interactions.c.occurred_at, interactions.c.seq)
    )
    history_rows = await session.execute(
        sa.select(status_history)
        .where(status_history.c.protocol_number == number)
        .order_by(status_history.c.id)
    )
    return (
        [r._mapping for r in demand_rows],
        [r._mapping for r in answer_rows],
        [r._mapping for r in interaction_rows],
        [r._mapping for r in history_rows],
    )


async def list_protocols(
    session: AsyncSession,
    *,
    operators: Sequence[str] | None,
    ans_registry: str | None,
    cpf: str | None,
    status: str | None,
    after: tuple[Any, str] | None,
    limit: int,
) -> list[RowMapping]:
    """Protocols newest first, filtered, after a (opened_at, number) keyset cursor."""
    query = sa.select(protocols)
    if operators is not None:
        query = query.where(protocols.c.ans_registry.in_(operators))
    if ans_registry is not None:
        query = query.where(protocols.c.ans_registry == ans_registry)
    if cpf is not None:
        query = query.where(protocols.c.beneficiary_cpf == cpf)
    if status is not None:
        query = query.where(protocols.c.status == status)
    if after is not None:
        query = query.where(sa.tuple_(protocols.c.opened_at, protocols.c.number) < after)
    query = query.order_by(protocols.c.opened_at.desc(), protocols.c.number.desc()).limit(limit)
    return [row._mapping for row in await session.execute(query)]


async def record_purge(session: AsyncSession, values: Mapping[str, Any]) -> bool:
    """Record a purge request as done; False if it already was (a repeated request)."""
    inserted = await session.execute(
        pg_insert(record_purges)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["purge_request_id"])
        .returning(record_purges.c.purge_request_id)
    )
    return inserted.first() is not None


async def delete_interactions(
    session: AsyncSession, protocol_number: str, *, recordings: bool, others: bool
) -> None:
    """Delete a protocol's recording references and/or its other interaction records."""
    if not (recordings or others):
        return
    query = sa.delete(interactions).where(interactions.c.protocol_number == protocol_number)
    if not others:
        query = query.where(interactions.c.kind == "recording")
    elif not recordings:
        query = query.where(interactions.c.kind != "recording")
    await session.execute(query)


async def anonymize_protocol(
    session: AsyncSession, protocol_number: str, *, at: Any, purged_text: str
) -> None:
    """Remove the beneficiary's data and free texts; keep numbers, dates, types, outcomes."""
    await session.execute(
        sa.update(protocols)
        .where(protocols.c.number == protocol_number)
        .values(beneficiary={}, beneficiary_cpf=None, anonymized_at=at)
    )
    await session.execute(
        sa.update(demands)
        .where(demands.c.protocol_number == protocol_number)
        .values(description=None)
    )
    await session.execute(
        sa.update(answers)
        .where(answers.c.protocol_number == protocol_number)
        .values(text=purged_text, answered_by=None)
    )


async def retention_facts(
    session: AsyncSession, protocol_number: str
) -> tuple[list[datetime | None], datetime | None]:
    """Each demand's answer instant (None while open) and the protocol's latest complaint."""
    demand_rows = await session.execute(
        sa.select(answers.c.answered_at)
        .select_from(demands.outerjoin(answers, answers.c.demand_id == demands.c.id))
        .where(demands.c.protocol_number == protocol_number)
    )
    last_complaint = await session.scalar(
        sa.select(sa.func.max(complaints.c.received_at)).where(
            complaints.c.protocol_number == protocol_number
        )
    )
    return [row[0] for row in demand_rows], last_complaint
