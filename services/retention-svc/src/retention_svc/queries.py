"""The HTTP API's reads and its own writes (legal holds, access requests), SQLAlchemy Core.

Every list takes ``operators``: the operators the caller may act for (None: every one),
so a tenant never reads another's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from retention_svc.models import (
    access_requests,
    certificates,
    chain_heads,
    hold_audit,
    legal_holds,
    protocols,
    purge_confirmations,
    purge_requests,
    schedules,
)
from retention_svc.repository import due_for_purge

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


# ---- protocols -----------------------------------------------------------------------------


async def get_protocol(session: AsyncSession, protocol_number: str) -> Row | None:
    """A protocol's retention facts."""
    return await _first(
        session, sa.select(protocols).where(protocols.c.protocol_number == protocol_number)
    )


async def holds_covering(session: AsyncSession, protocol: Row) -> list[uuid.UUID]:
    """The active legal holds covering a protocol: on it, its beneficiary or its operator."""
    covers = [
        legal_holds.c.scope == "operator",
        sa.and_(
            legal_holds.c.scope == "protocol",
            legal_holds.c.protocol_number == protocol["protocol_number"],
        ),
    ]
    if protocol["beneficiary_key"] is not None:
        covers.append(
            sa.and_(
                legal_holds.c.scope == "beneficiary",
                legal_holds.c.beneficiary_key == protocol["beneficiary_key"],
            )
        )
    result = await session.execute(
        sa.select(legal_holds.c.id)
        .where(
            legal_holds.c.released_at.is_(None),
            legal_holds.c.ans_registry == protocol["ans_registry"],
            sa.or_(*covers),
        )
        .order_by(legal_holds.c.placed_at, legal_holds.c.id)
    )
    return [row[0] for row in result]


# ---- legal holds ---------------------------------------------------------------------------


async def insert_hold(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Record a new legal hold."""
    await session.execute(sa.insert(legal_holds).values(**values))


async def add_hold_audit(
    session: AsyncSession, hold_id: uuid.UUID, action: str, actor: str, at: datetime, reason: str
) -> None:
    """Append a change to a hold's audit trail."""
    await session.execute(
        sa.insert(hold_audit).values(
            hold_id=hold_id, action=action, actor=actor, at=at, reason=reason
        )
    )


async def get_hold(session: AsyncSession, hold_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    """A legal hold, optionally locked for this transaction."""
    query = sa.select(legal_holds).where(legal_holds.c.id == hold_id)
    return await _first(session, query.with_for_update() if lock else query)


async def release_hold(
    session: AsyncSession, hold_id: uuid.UUID, by: str, at: datetime, reason: str
) -> Row:
    """Release a hold still active (lock it first); returns the released hold."""
    result = await session.execute(
        sa.update(legal_holds)
        .where(legal_holds.c.id == hold_id, legal_holds.c.released_at.is_(None))
        .values(released_by=by, released_at=at, release_reason=reason)
        .returning(*legal_holds.c)
    )
    return dict(result.mappings().one())


async def hold_audit_of(session: AsyncSession, hold_id: uuid.UUID) -> list[Row]:
    """A hold's audit trail, oldest change first."""
    return await _all(
        session,
        sa.select(hold_audit).where(hold_audit.c.hold_id == hold_id).order_by(hold_audit.c.id),
    )


async def list_holds(
    session: AsyncSession,
    *,
    operators: Operators,
    ans_registry: str | None = None,
    active: bool | None = None,
    protocol_number: str | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[Row]:
    """Legal holds, newest first, after a (placed_at, id) cursor."""
    query = sa.select(legal_holds).where(_tenant(legal_holds.c.ans_registry, operators))
    if ans_registry is not None:
        query = query.where(legal_holds.c.ans_registry == ans_registry)
    if active is not None:
        released = legal_holds.c.released_at
        query = query.where(released.is_(None) if active else released.is_not(None))
    if protocol_number is not None:
        query = query.where(legal_holds.c.protocol_number == protocol_number)
    if after is not None:
        query = query.where(sa.tuple_(legal_holds.c.placed_at, legal_holds.c.id) < after)
    query = query.order_by(legal_holds.c.placed_at.desc(), legal_holds.c.id.desc()).limit(limit)
    return await _all(session, query)


# ---- access requests -----------------------------------------------------------------------

# The request's protocol as known here (same operator), for its time zone.
_request_protocol = sa.and_(
    protocols.c.protocol_number == access_requests.c.protocol_number,
    protocols.c.ans_registry == access_requests.c.ans_registry,
)
_access_columns = [c for c in access_requests.c if c.name != "bundle"] + [protocols.c.timezone]


def _access_select() -> sa.Select[Any]:
    """Access requests without their bundle, with their protocol's time zone (or null)."""
    return sa.select(*_access_columns).select_from(
        access_requests.outerjoin(protocols, _request_protocol)
    )


async def insert_access_request(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Record a new access request."""
    await session.execute(sa.insert(access_requests).values(**values))


async def get_access_request(session: AsyncSession, request_id: uuid.UUID) -> Row | None:
    """An access request (without its bundle)."""
    return await _first(session, _access_select().where(access_requests.c.id == request_id))


async def list_access_requests(
    session: AsyncSession,
    *,
    operators: Operators,
    ans_registry: str | None = None,
    status: str | None = None,
    protocol_number: str | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[Row]:
    """Access requests (without bundles), newest first, after a (requested_at, id) cursor."""
    query = _access_select().where(_tenant(access_requests.c.ans_registry, operators))
    if ans_registry is not None:
        query = query.where(access_requests.c.ans_registry == ans_registry)
    if status is not None:
        query = query.where(access_requests.c.status == status)
    if protocol_number is not None:
        query = query.where(access_requests.c.protocol_number == protocol_number)
    if after is not None:
        query = query.where(sa.tuple_(access_requests.c.requested_at, access_requests.c.id) < after)
    query = query.order_by(
        access_requests.c.requested_at.desc(), access_requests.c.id.desc()
    ).limit(limit)
    return await _all(session, query)


async def access_bundle(session: AsyncSession, request_id: uuid.UUID) -> Row | None:
    """An access request's operator, status and bundle."""
    return await _first(
        session,
        sa.select(
            access_requests.c.ans_registry, access_requests.c.status, access_requests.c.bundle
        ).where(access_requests.c.id == request_id),
    )


# ---- disposal certificates -----------------------------------------------------------------


async def list_certificates(
    session: AsyncSession,
    *,
    operators: Operators,
    ans_registry: str | None = None,
    protocol_number: str | None = None,
    after: tuple[str, int] | None = None,
    limit: int = 50,
) -> list[Row]:
    """Certificates in (operator, sequence) order, after an (operator, sequence) cursor."""
    query = sa.select(certificates).where(_tenant(certificates.c.ans_registry, operators))
    if ans_registry is not None:
        query = query.where(certificates.c.ans_registry == ans_registry)
    if protocol_number is not None:
        query = query.where(certificates.c.protocol_number == protocol_number)
    if after is not None:
        query = query.where(sa.tuple_(certificates.c.ans_registry, certificates.c.sequence) > after)
    query = query.order_by(certificates.c.ans_registry, certificates.c.sequence).limit(limit)
    return await _all(session, query)


async def get_certificate(session: AsyncSession, certificate_id: uuid.UUID) -> Row | None:
    """A disposal certificate."""
    return await _first(session, sa.select(certificates).where(certificates.c.id == certificate_id))


async def chain_head(session: AsyncSession, ans_registry: str) -> Row | None:
    """The head (sequence, hash) of an operator's chain, None before its first certificate."""
    return await _first(
        session,
        sa.select(chain_heads.c.sequence, chain_heads.c.hash).where(
            chain_heads.c.ans_registry == ans_registry
        ),
    )


async def count_certificates(session: AsyncSession, ans_registry: str) -> int:
    """How many certificates an operator's chain holds."""
    result = await session.execute(
        sa.select(sa.func.count()).where(certificates.c.ans_registry == ans_registry)
    )
    return int(result.scalar_one())


# ---- purges --------------------------------------------------------------------------------


def _due(as_of: datetime, ans_registry: str) -> sa.Select[Any]:
    """What the purge runner would take at ``as_of``, in a total order."""
    return (
        due_for_purge(as_of, ans_registry)
        .order_by(None)
        .order_by(schedules.c.retain_until, schedules.c.protocol_number, schedules.c.record_class)
    )


async def preview_due(
    session: AsyncSession,
    as_of: datetime,
    ans_registry: str,
    *,
    after: tuple[datetime, str, str] | None = None,
    limit: int = 50,
) -> list[Row]:
    """Entries due for purge at ``as_of`` and not held, after a (retain_until, protocol,
    record class) cursor."""
    query = _due(as_of, ans_registry)
    if after is not None:
        query = query.where(
            sa.tuple_(
                schedules.c.retain_until, schedules.c.protocol_number, schedules.c.record_class
            )
            > after
        )
    return await _all(session, query.limit(limit))


async def count_due(session: AsyncSession, as_of: datetime, ans_registry: str) -> int:
    """How many entries are due for purge at ``as_of`` and not held."""
    due = due_for_purge(as_of, ans_registry).order_by(None).subquery()
    result = await session.execute(sa.select(sa.func.count()).select_from(due))
    return int(result.scalar_one())


def _confirmed_by() -> sa.ScalarSelect[Any]:
    """The owners that confirmed a purge request, in name order."""
    return (
        sa.select(
            sa.func.array_agg(
                aggregate_order_by(purge_confirmations.c.owner, purge_confirmations.c.owner)
            )
        )
        .where(purge_confirmations.c.purge_request_id == purge_requests.c.id)
        .scalar_subquery()
    )


async def list_purges(
    session: AsyncSession,
    *,
    operators: Operators,
    ans_registry: str | None = None,
    status: str | None = None,
    protocol_number: str | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[Row]:
    """Purge requests with their confirming owners, newest first, after a (requested_at, id)
    cursor."""
    query = sa.select(purge_requests, _confirmed_by().label("confirmed_by")).where(
        _tenant(purge_requests.c.ans_registry, operators)
    )
    if ans_registry is not None:
        query = query.where(purge_requests.c.ans_registry == ans_registry)
    if status == "pending":
        query = query.where(
            purge_requests.c.disposed_at.is_(None), purge_requests.c.cancelled_at.is_(None)
        )
    elif status == "disposed":
        query = query.where(purge_requests.c.disposed_at.is_not(None))
    if protocol_number is not None:
        query = query.where(purge_requests.c.protocol_number == protocol_number)
    if after is not None:
        query = query.where(sa.tuple_(purge_requests.c.requested_at, purge_requests.c.id) < after)
    query = query.order_by(purge_requests.c.requested_at.desc(), purge_requests.c.id.desc()).limit(
        limit
    )
    return await _all(session, query)
