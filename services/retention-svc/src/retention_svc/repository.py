"""retention-svc's writes and the queries of its consumers and runners (SQLAlchemy Core)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from retention_svc.domain import DISPOSED, GENESIS_HASH, PURGE_REQUESTED, RETAINED
from retention_svc.models import (
    access_requests,
    certificates,
    chain_heads,
    demands,
    legal_holds,
    protocols,
    purge_confirmations,
    purge_requests,
    schedules,
)
from rn623_events.db import array_params, insert_params, rows_from_arrays

Row = Mapping[str, Any]


# ---- protocols and their facts -----------------------------------------------------------


# Statements built once, their values passed as parameters: building one with the values
# in it (and its cache key) on every event was ~10 % of the worker's CPU under load.
_ANSWER_DEMAND = insert(demands).on_conflict_do_update(
    index_elements=[demands.c.demand_id],
    set_={"answered_at": insert(demands).excluded.answered_at},
    where=demands.c.answered_at.is_(None),
)


_PROTOCOL_COLUMNS = tuple(protocols.c.keys())
_INSERT_PROTOCOLS = (
    insert(protocols)
    .from_select(_PROTOCOL_COLUMNS, sa.select(rows_from_arrays(protocols, _PROTOCOL_COLUMNS)))
    .on_conflict_do_nothing()
    .returning(protocols.c.protocol_number)
)
_ADD_DEMANDS = (
    insert(demands)
    .from_select(
        ["demand_id", "protocol_number"],
        sa.select(rows_from_arrays(demands, ["demand_id", "protocol_number"])),
    )
    .on_conflict_do_nothing()
)


async def insert_protocols(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Record protocols' contacts in one statement; the numbers not known before."""
    if not rows:
        return set()
    for row in rows:
        insert_params(protocols, row)  # refuses a key that is not a column
    result = await session.execute(_INSERT_PROTOCOLS, array_params(_PROTOCOL_COLUMNS, rows))
    return {number for (number,) in result}


async def add_demands(session: AsyncSession, pairs: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Record open demands, as (demand id, protocol number), in one statement (idempotent)."""
    if pairs:
        await session.execute(
            _ADD_DEMANDS,
            {"v_demand_id": [d for d, _ in pairs], "v_protocol_number": [n for _, n in pairs]},
        )


async def lock_protocol(session: AsyncSession, protocol_number: str) -> Row | None:
    """A protocol's facts, locked for this transaction."""
    result = await session.execute(
        sa.select(protocols).where(protocols.c.protocol_number == protocol_number).with_for_update()
    )
    row = result.mappings().first()
    return dict(row) if row is not None else None


async def answer_demand(
    session: AsyncSession, demand_id: uuid.UUID, protocol_number: str, answered_at: datetime
) -> None:
    """Record a demand's answer (the first answer counts)."""
    await session.execute(
        _ANSWER_DEMAND,
        {"demand_id": demand_id, "protocol_number": protocol_number, "answered_at": answered_at},
    )


async def demand_answers(session: AsyncSession, protocol_number: str) -> list[datetime | None]:
    """Each demand's answer instant (None while open)."""
    result = await session.execute(
        sa.select(demands.c.answered_at).where(demands.c.protocol_number == protocol_number)
    )
    return [row[0] for row in result]


async def set_complaint(session: AsyncSession, protocol_number: str, at: datetime) -> None:
    """Keep the protocol's latest complaint instant."""
    await session.execute(
        sa.update(protocols)
        .where(protocols.c.protocol_number == protocol_number)
        .values(complaint_at=sa.func.greatest(sa.func.coalesce(protocols.c.complaint_at, at), at))
    )


# ---- schedules ---------------------------------------------------------------------------


async def schedule_of(session: AsyncSession, protocol_number: str) -> dict[str, Row]:
    """A protocol's schedule entries by record class."""
    result = await session.execute(
        sa.select(schedules).where(schedules.c.protocol_number == protocol_number)
    )
    return {row["record_class"]: dict(row) for row in result.mappings()}


async def save_schedule(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    """Insert or move schedule entries still retained, and put back under retention the
    entries whose purge was requested when new facts moved their end ahead (the owner
    refuses such a purge). Disposed entries never come back."""
    if not rows:
        return
    await session.execute(_SAVE_SCHEDULE, {**array_params(_SCHEDULE_COLUMNS, rows), "now": now})


# One statement shape whatever the number of rows (parallel arrays), so SQLAlchemy
# compiles it once instead of a multi-row VALUES statement on every call.
_SCHEDULE_COLUMNS = (
    "protocol_number",
    "record_class",
    "ans_registry",
    "retain_until",
    "status",
    "purge_request_id",
    "updated_at",
)


def _save_schedule_statement() -> Any:
    """The upsert of ``save_schedule`` over parallel arrays, built once: building it per
    call (and its cache key) cost more than running it."""
    statement = insert(schedules).from_select(
        _SCHEDULE_COLUMNS, sa.select(rows_from_arrays(schedules, _SCHEDULE_COLUMNS))
    )
    excluded = statement.excluded
    now = sa.bindparam("now", type_=sa.DateTime(timezone=True))
    return statement.on_conflict_do_update(
        index_elements=[schedules.c.protocol_number, schedules.c.record_class],
        set_={
            "retain_until": excluded.retain_until,
            "status": RETAINED,
            "purge_request_id": None,
            "updated_at": excluded.updated_at,
        },
        where=sa.or_(
            schedules.c.status == RETAINED,
            sa.and_(
                schedules.c.status == PURGE_REQUESTED,
                sa.or_(excluded.retain_until.is_(None), excluded.retain_until > now),
            ),
        ),
    )


_SAVE_SCHEDULE = _save_schedule_statement()


async def cancel_emptied_requests(
    session: AsyncSession, request_ids: Iterable[uuid.UUID], at: datetime
) -> None:
    """Cancel pending purge requests none of whose entries still wait for them."""
    await session.execute(
        sa.update(purge_requests)
        .where(
            purge_requests.c.id.in_(list(request_ids)),
            purge_requests.c.disposed_at.is_(None),
            purge_requests.c.cancelled_at.is_(None),
            ~sa.exists().where(schedules.c.purge_request_id == purge_requests.c.id),
        )
        .values(cancelled_at=at)
    )


# ---- the purge runner --------------------------------------------------------------------


# Held shared by each purge batch and exclusively while a hold is placed: a batch checks
# the holds in its snapshot, so a hold committed during a batch would otherwise be missed.
HOLDS_LOCK = 0x1C0_0002


async def lock_holds(session: AsyncSession, *, placing: bool = False) -> None:
    """Take the holds lock: shared for a purge batch, exclusive to place a hold."""
    function = "pg_advisory_xact_lock" if placing else "pg_advisory_xact_lock_shared"
    await session.execute(sa.select(getattr(sa.func, function)(HOLDS_LOCK)))


def _hold_covers() -> sa.ColumnElement[bool]:
    """An active legal hold covers the schedule row (by protocol, beneficiary or operator)."""
    beneficiary = (
        sa.select(protocols.c.beneficiary_key)
        .where(protocols.c.protocol_number == schedules.c.protocol_number)
        .correlate(schedules)
        .scalar_subquery()
    )
    return sa.exists().where(
        legal_holds.c.released_at.is_(None),
        legal_holds.c.ans_registry == schedules.c.ans_registry,
        sa.or_(
            legal_holds.c.scope == "operator",
            sa.and_(
                legal_holds.c.scope == "protocol",
                legal_holds.c.protocol_number == schedules.c.protocol_number,
            ),
            sa.and_(
                legal_holds.c.scope == "beneficiary",
                legal_holds.c.beneficiary_key == beneficiary,
            ),
        ),
    )


def due_for_purge(now: datetime, ans_registry: str | None = None) -> sa.Select[Any]:
    """Schedule entries past their retention that no hold covers, oldest first."""
    query = sa.select(
        schedules.c.protocol_number,
        schedules.c.record_class,
        schedules.c.ans_registry,
        schedules.c.retain_until,
    ).where(
        schedules.c.status == RETAINED,
        schedules.c.retain_until.is_not(None),
        schedules.c.retain_until < now,
        ~_hold_covers(),
    )
    if ans_registry is not None:
        query = query.where(schedules.c.ans_registry == ans_registry)
    return query.order_by(schedules.c.retain_until)


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[Row]:
    """Lock up to ``limit`` entries due for purge; rows other runners hold are skipped."""
    result = await session.execute(
        due_for_purge(now).limit(limit).with_for_update(of=schedules, skip_locked=True)
    )
    return [dict(row) for row in result.mappings()]


async def insert_purge_requests(
    session: AsyncSession, requests: Sequence[Mapping[str, Any]]
) -> None:
    """Record purge requests sent to the owners (one statement compiled once, executed
    as batched multi-row inserts)."""
    if requests:
        await session.execute(insert(purge_requests), list(requests))


async def mark_requested(
    session: AsyncSession, entries: Sequence[tuple[str, str, uuid.UUID]], at: datetime
) -> None:
    """Set (protocol, class) entries to purge_requested under their request id."""
    if not entries:
        return
    numbers, classes, ids = (list(column) for column in zip(*entries, strict=True))
    pending = sa.select(
        sa.func.unnest(sa.cast(numbers, ARRAY(sa.Text))).label("protocol_number"),
        sa.func.unnest(sa.cast(classes, ARRAY(sa.Text))).label("record_class"),
        sa.func.unnest(sa.cast(ids, ARRAY(sa.Uuid))).label("request_id"),
    ).subquery()
    await session.execute(
        sa.update(schedules)
        .where(
            schedules.c.protocol_number == pending.c.protocol_number,
            schedules.c.record_class == pending.c.record_class,
        )
        .values(status=PURGE_REQUESTED, purge_request_id=pending.c.request_id, updated_at=at)
    )


# ---- confirmations and certificates ------------------------------------------------------


async def lock_purge_request(session: AsyncSession, request_id: uuid.UUID) -> Row | None:
    """A purge request, locked for this transaction."""
    result = await session.execute(
        sa.select(purge_requests).where(purge_requests.c.id == request_id).with_for_update()
    )
    row = result.mappings().first()
    return dict(row) if row is not None else None


async def add_confirmation(session: AsyncSession, values: Mapping[str, Any]) -> bool:
    """Record an owner's confirmation; False when that owner had already confirmed."""
    result = await session.execute(
        insert(purge_confirmations)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(purge_confirmations.c.owner)
    )
    return result.first() is not None


async def confirmations_of(session: AsyncSession, request_id: uuid.UUID) -> list[Row]:
    """Every confirmation of a purge request, by owner."""
    result = await session.execute(
        sa.select(purge_confirmations)
        .where(purge_confirmations.c.purge_request_id == request_id)
        .order_by(purge_confirmations.c.owner)
    )
    return [dict(row) for row in result.mappings()]


async def lock_chain_head(session: AsyncSession, ans_registry: str) -> tuple[int, str]:
    """The operator's last certificate (sequence, hash), locked until commit."""
    await session.execute(
        insert(chain_heads)
        .values(ans_registry=ans_registry, sequence=0, hash=GENESIS_HASH)
        .on_conflict_do_nothing()
    )
    row = (
        await session.execute(
            sa.select(chain_heads.c.sequence, chain_heads.c.hash)
            .where(chain_heads.c.ans_registry == ans_registry)
            .with_for_update()
        )
    ).one()
    return int(row.sequence), str(row.hash)


async def append_certificate(session: AsyncSession, certificate: Mapping[str, Any]) -> None:
    """Add a certificate at the head of its operator's chain and close its purge."""
    await session.execute(insert(certificates).values(**certificate))
    await session.execute(
        sa.update(chain_heads)
        .where(chain_heads.c.ans_registry == certificate["ans_registry"])
        .values(sequence=certificate["sequence"], hash=certificate["hash"])
    )
    await session.execute(
        sa.update(purge_requests)
        .where(purge_requests.c.id == certificate["purge_request_id"])
        .values(disposed_at=certificate["disposed_at"])
    )
    # a copy of the records must not outlive them: bundles holding this protocol go too
    await session.execute(
        sa.update(access_requests)
        .where(
            access_requests.c.bundle.is_not(None),
            access_requests.c.bundle["protocols"].contains(
                [{"protocol_number": certificate["protocol_number"]}]
            ),
        )
        .values(bundle=None, bundle_removed_at=certificate["disposed_at"])
    )
    await session.execute(
        sa.update(schedules)
        .where(  # by primary key: the purge's protocol and classes (even when new facts
            # had put them back under retention: the owner purged them before)
            schedules.c.protocol_number == certificate["protocol_number"],
            schedules.c.record_class.in_(certificate["record_classes"]),
            schedules.c.status != DISPOSED,
        )
        .values(
            status=DISPOSED,
            purge_request_id=certificate["purge_request_id"],
            updated_at=certificate["disposed_at"],
        )
    )


async def chain_of(
    session: AsyncSession, ans_registry: str, after_sequence: int, limit: int
) -> list[Row]:
    """A page of an operator's certificates in chain order."""
    result = await session.execute(
        sa.select(certificates)
        .where(
            certificates.c.ans_registry == ans_registry, certificates.c.sequence > after_sequence
        )
        .order_by(certificates.c.sequence)
        .limit(limit)
    )
    return [dict(row) for row in result.mappings()]


# ---- access requests ---------------------------------------------------------------------


async def claim_access_request(
    session: AsyncSession, now: datetime, lease_until: datetime
) -> Row | None:
    """Take the next open access request due for collection and lease it."""
    result = await session.execute(
        sa.select(access_requests)
        .where(access_requests.c.status == "open", access_requests.c.next_attempt_at <= now)
        .order_by(access_requests.c.next_attempt_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    row = result.mappings().first()
    if row is None:
        return None
    await session.execute(
        sa.update(access_requests)
        .where(access_requests.c.id == row["id"])
        .values(next_attempt_at=lease_until, attempts=access_requests.c.attempts + 1)
    )
    return dict(row)


async def protocols_for_request(session: AsyncSession, request: Row) -> list[Row] | None:
    """The protocols of the request's operator it covers; None while its protocol is
    unknown here. A protocol of another operator covers nothing (never another tenant's
    records)."""
    asked = (
        (
            await session.execute(
                sa.select(protocols).where(
                    protocols.c.protocol_number == request["protocol_number"]
                )
            )
        )
        .mappings()
        .first()
    )
    if asked is None:
        return None
    if asked["ans_registry"] != request["ans_registry"]:
        return []
    if request["scope"] == "protocol" or asked["beneficiary_key"] is None:
        return [dict(asked)]
    result = await session.execute(
        sa.select(protocols)
        .where(
            protocols.c.ans_registry == request["ans_registry"],
            protocols.c.beneficiary_key == asked["beneficiary_key"],
        )
        .order_by(protocols.c.contact_at, protocols.c.protocol_number)
    )
    return [dict(row) for row in result.mappings()]


async def reject_access_request(
    session: AsyncSession, request_id: uuid.UUID, at: datetime, reason: str
) -> None:
    """Close a request that can never be fulfilled (its protocol is another operator's)."""
    await session.execute(
        sa.update(access_requests)
        .where(access_requests.c.id == request_id, access_requests.c.status == "open")
        .values(status="rejected", next_attempt_at=None, last_error=reason, fulfilled_at=None)
    )


async def schedules_of(session: AsyncSession, numbers: Sequence[str]) -> list[Row]:
    """The schedule entries of several protocols."""
    result = await session.execute(
        sa.select(schedules)
        .where(schedules.c.protocol_number.in_(list(numbers)))
        .order_by(schedules.c.protocol_number, schedules.c.record_class)
    )
    return [dict(row) for row in result.mappings()]


async def fulfil_access_request(
    session: AsyncSession, request_id: uuid.UUID, bundle: Any, at: datetime
) -> bool:
    """Store the bundle and close the request; False when it was already fulfilled."""
    result = await session.execute(
        sa.update(access_requests)
        .where(access_requests.c.id == request_id, access_requests.c.status == "open")
        .values(
            status="fulfilled",
            bundle=bundle,
            fulfilled_at=at,
            next_attempt_at=None,
            last_error=None,
        )
        .returning(access_requests.c.id)
    )
    return result.first() is not None


async def retry_access_request(
    session: AsyncSession, request_id: uuid.UUID, at: datetime, error: str
) -> None:
    """Record why collection failed and when to try again."""
    await session.execute(
        sa.update(access_requests)
        .where(access_requests.c.id == request_id, access_requests.c.status == "open")
        .values(next_attempt_at=at, last_error=error)
    )


# ---- gauges ------------------------------------------------------------------------------


async def gauge_counts(session: AsyncSession, now: datetime) -> dict[str, list[Row]]:
    """Per operator: records due for purge, purges pending confirmation, access requests
    open, overdue and due within 24 hours."""
    due = await session.execute(
        sa.select(schedules.c.ans_registry, sa.func.count().label("count"))
        .where(
            schedules.c.status == RETAINED,
            schedules.c.retain_until.is_not(None),
            schedules.c.retain_until < now,
            ~_hold_covers(),  # records under a hold are not due
        )
        .group_by(schedules.c.ans_registry)
    )
    pending = await session.execute(
        sa.select(purge_requests.c.ans_registry, sa.func.count().label("count"))
        .where(purge_requests.c.disposed_at.is_(None), purge_requests.c.cancelled_at.is_(None))
        .group_by(purge_requests.c.ans_registry)
    )
    access = await session.execute(
        sa.select(
            access_requests.c.ans_registry,
            sa.func.count().label("open"),
            sa.func.count().filter(access_requests.c.due_at < now).label("overdue"),
            sa.func.count()
            .filter(
                access_requests.c.due_at >= now,
                access_requests.c.due_at < now + timedelta(hours=24),
            )
            .label("due_soon"),
        )
        .where(access_requests.c.status == "open")
        .group_by(access_requests.c.ans_registry)
    )
    return {
        "due": [dict(r) for r in due.mappings()],
        "pending": [dict(r) for r in pending.mappings()],
        "access": [dict(r) for r in access.mappings()],
    }
