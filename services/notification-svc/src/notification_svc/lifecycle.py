"""The life of a message and its deliveries, inside a unit of work.

Every transition writes the delivery's timeline and stages its event in the outbox in the
same transaction, so the status shown by the API, the events other services see and the
timeline never disagree. Fallback to the next channel is driven by delivery status: a
channel that fails, or that gives no proof of delivery before its ``fallback_at``, hands
the message to the next channel of its plan; a proven delivery cancels what is queued.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.dialects.postgresql import UUID, insert

from notification_svc import domain
from notification_svc.content import MessageContent
from notification_svc.models import callbacks, deliveries, delivery_events, messages, protocols
from notification_svc.policy import Policy
from notification_svc.providers.base import StatusUpdate
from rn623_events.contracts.notifications import (
    NotificationDelivered,
    NotificationFailed,
    NotificationSent,
)
from rn623_events.db import UnitOfWork

MESSAGES = Counter("notification_messages_total", "Messages created", ["purpose", "status"])
SENT = Counter("notification_sent_total", "Channel sends accepted", ["channel", "provider"])
DELIVERED = Counter("notification_delivered_total", "Deliveries proven", ["channel", "provider"])
FAILED = Counter("notification_channel_failures_total", "Channels given up", ["channel", "reason"])
FINAL_FAILED = Counter("notification_failed_total", "Messages with no channel left", ["purpose"])


def _reason_label(reason: str) -> str:
    """The reason without its provider code (metric labels stay few)."""
    return reason.split(":", 1)[0]


# Messages, their first channels' deliveries and those deliveries' "queued" entries in
# one round trip for any number of messages (rows as one JSON array: channels and
# providers are arrays, which parallel arrays cannot carry), prepared once; nothing is
# queued for a message that exists already, or that has no channel (``channel`` NULL).
_CREATE_QUEUED_MESSAGES = sa.text(
    """
    WITH new AS (
        SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
            message_id uuid, ans_registry text, protocol_number text, purpose text,
            subject_key text, demand_id uuid, content jsonb, channels text[], status text,
            trace_headers jsonb, delivery_id uuid, channel text, recipient text,
            providers text[]
        )
    ), message AS (
        INSERT INTO messages (
            id, ans_registry, protocol_number, purpose, subject_key, demand_id, content,
            channels, status, created_at, updated_at, trace_headers
        )
        SELECT message_id, ans_registry, protocol_number, purpose, subject_key, demand_id,
               content, channels, status, :now, :now, trace_headers
        FROM new
        ON CONFLICT ON CONSTRAINT uq_messages_subject DO NOTHING
        RETURNING id
    ), delivery AS (
        INSERT INTO deliveries (
            id, message_id, ans_registry, protocol_number, channel, position, recipient,
            status, providers, next_attempt_at, queued_at
        )
        SELECT n.delivery_id, n.message_id, n.ans_registry, n.protocol_number, n.channel, 0,
               n.recipient, 'queued', n.providers, :now, :now
        FROM new n JOIN message m ON m.id = n.message_id
        WHERE n.channel IS NOT NULL
        RETURNING id
    ), entry AS (
        INSERT INTO delivery_events (delivery_id, status, at, source)
        SELECT id, 'queued', :now, 'dispatcher' FROM delivery
    )
    SELECT id FROM message
    """
)


@dataclass(frozen=True)
class NewMessage:
    """A message to create, and what its first channel is chosen from."""

    content: MessageContent
    ans_registry: str
    subject_key: str
    demand_id: uuid.UUID | None
    contacts: domain.Contacts
    preferred: Sequence[str]
    policy: Policy
    trace_headers: Mapping[str, str]


async def create_messages(uow: UnitOfWork, new: Sequence[NewMessage]) -> list[str | None]:
    """Create messages and queue each one's first channel, in one round trip; per
    message, its status, or None if it already exists.

    A message with no reachable channel is kept as ``unreachable`` (nothing to send).
    """
    if not new:
        return []
    now = uow.clock.now()
    rows = [_new_message_row(message) for message in new]
    created = set(
        (
            await uow.session.execute(
                _CREATE_QUEUED_MESSAGES, {"rows": json.dumps(rows), "now": now}
            )
        ).scalars()
    )
    statuses: list[str | None] = []
    for message, row in zip(new, rows, strict=True):
        if uuid.UUID(row["message_id"]) not in created:
            statuses.append(None)
            continue
        uow.after_commit(MESSAGES.labels(message.content.purpose, row["status"]).inc)
        statuses.append(row["status"])
    return statuses


def _new_message_row(message: NewMessage) -> dict[str, Any]:
    """The JSON row of ``_CREATE_QUEUED_MESSAGES`` for ``message``: its channel plan and
    first channel."""
    policy = message.policy
    plan = domain.plan_channels(message.preferred, policy.channel_order, message.contacts)
    plan = tuple(c for c in plan if policy.providers(c))
    first = plan[0] if plan else None
    return {
        "message_id": str(uuid.uuid4()),
        "ans_registry": message.ans_registry,
        "protocol_number": message.content.protocol_number,
        "purpose": message.content.purpose,
        "subject_key": message.subject_key,
        "demand_id": str(message.demand_id) if message.demand_id is not None else None,
        "content": message.content.model_dump(mode="json"),
        "channels": list(plan),
        "status": "pending" if plan else "unreachable",
        "trace_headers": dict(message.trace_headers),
        "delivery_id": str(uuid.uuid4()),
        "channel": first,
        "recipient": message.contacts.address(first) if first is not None else None,
        "providers": list(policy.providers(first)) if first is not None else [],
    }


async def _queue_channel(
    uow: UnitOfWork,
    message_id: uuid.UUID,
    protocol_number: str,
    ans_registry: str,
    plan: Sequence[str],
    position: int,
    recipient: str | None,
    policy: Policy,
    now: datetime,
) -> uuid.UUID | None:
    """Queue the delivery of a message on ``plan[position]`` (once per channel)."""
    channel = plan[position]
    delivery_id = uuid.uuid4()
    inserted = await uow.session.execute(
        insert(deliveries)
        .values(
            id=delivery_id,
            message_id=message_id,
            ans_registry=ans_registry,
            protocol_number=protocol_number,
            channel=channel,
            position=position,
            recipient=recipient,
            status="queued",
            providers=list(policy.providers(channel)),
            next_attempt_at=now,
            queued_at=now,
        )
        .on_conflict_do_nothing(constraint="uq_deliveries_channel")
        .returning(deliveries.c.id)
    )
    if inserted.scalar_one_or_none() is None:
        return None
    await timeline(uow, delivery_id, "queued", now, source="dispatcher")
    return delivery_id


async def timeline(
    uow: UnitOfWork,
    delivery_id: uuid.UUID,
    status: str,
    at: datetime,
    *,
    source: str,
    provider: str | None = None,
    detail: str | None = None,
) -> None:
    """Append one entry to a delivery's status timeline."""
    await uow.session.execute(
        delivery_events.insert().values(
            delivery_id=delivery_id,
            status=status,
            at=at,
            provider=provider,
            detail=detail,
            source=source,
        )
    )


def _event_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every channel event carries, from a delivery joined with its message."""
    return {
        "notification_id": row["message_id"],
        "protocol_number": row["protocol_number"],
        "ans_registry": row["ans_registry"],
        "purpose": row["purpose"],
        "demand_id": row["demand_id"],
        "delivery_id": row["id"],
        "channel": row["channel"],
        "provider": row.get("provider"),
        "provider_message_id": row.get("provider_message_id"),
    }


_DELIVERY_WITH_MESSAGE = sa.select(
    deliveries,
    messages.c.purpose,
    messages.c.demand_id,
    messages.c.channels,
    messages.c.status.label("message_status"),
    messages.c.trace_headers,
).join(messages, messages.c.id == deliveries.c.message_id)


async def lock_messages(uow: UnitOfWork, message_ids: Iterable[uuid.UUID]) -> None:
    """Lock messages, in id order (a batch's share of the lock order below)."""
    ids = sorted(set(message_ids))
    if ids:
        await uow.session.execute(
            sa.select(messages.c.id)
            .where(messages.c.id.in_(ids))
            .order_by(messages.c.id)
            .with_for_update()
        )


async def delivery_for_update(
    uow: UnitOfWork, delivery_id: uuid.UUID, *, message_locked: bool = False
) -> dict[str, Any] | None:
    """A delivery with its message, both locked for a transition.

    Every transition locks the message first, then the delivery: the dispatcher, the
    fallback timer, webhooks and the consumers all take them in this order, so they
    serialize per message and never deadlock, and each sees the message's current status.
    ``message_locked``: the caller holds the message's lock already (``lock_messages``).
    """
    if not message_locked:
        message_id = await uow.session.scalar(
            sa.select(deliveries.c.message_id).where(deliveries.c.id == delivery_id)
        )
        if message_id is None:
            return None
        await lock_messages(uow, [message_id])
    row = (
        (
            await uow.session.execute(
                _DELIVERY_WITH_MESSAGE.where(deliveries.c.id == delivery_id).with_for_update(
                    of=deliveries
                )
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


async def deliveries_for_update(
    uow: UnitOfWork, delivery_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Deliveries with their messages, by id, locked in one statement; the caller holds
    their messages' locks already (``lock_messages``), so the lock order holds."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return {}
    rows = (
        (
            await uow.session.execute(
                _DELIVERY_WITH_MESSAGE.where(deliveries.c.id.in_(ids))
                .order_by(deliveries.c.message_id, deliveries.c.id)
                .with_for_update(of=deliveries)
            )
        )
        .mappings()
        .all()
    )
    return {row["id"]: dict(row) for row in rows}


async def cancel_delivery(uow: UnitOfWork, row: Mapping[str, Any], *, detail: str) -> None:
    """Drop a delivery whose message is settled (delivered, or closed) meanwhile."""
    now = uow.clock.now()
    await uow.session.execute(
        deliveries.update()
        .where(deliveries.c.id == row["id"])
        .values(status="cancelled", next_attempt_at=None, lease_until=None, fallback_at=None)
    )
    await timeline(uow, row["id"], "cancelled", now, source="dispatcher", detail=detail)


@dataclass(frozen=True)
class Accepted:
    """A provider accepted a delivery's message: under which id, and how long the
    channel has to prove delivery before falling back (None: acceptance is final)."""

    row: Mapping[str, Any]
    provider: str
    provider_message_id: str
    fallback_after: float | None


# Every accepted delivery of a batch in one round trip, whatever the batch's size (one
# prepared statement): the deliveries' new state, their "sent" timeline entries, and the
# messages that acceptance makes final (channels with no proof of delivery, e-mail).
_RECORD_SENT = sa.text(
    """
    WITH accepted AS (
        SELECT * FROM unnest(
            CAST(:ids AS uuid[]), CAST(:providers AS text[]),
            CAST(:provider_message_ids AS text[]), CAST(:fallback_ats AS timestamptz[])
        ) AS accepted (id, provider, provider_message_id, fallback_at)
    ), sent AS (
        UPDATE deliveries d
        SET status = 'sent', provider = a.provider,
            provider_message_id = a.provider_message_id, sent_at = :now,
            fallback_at = a.fallback_at, lease_until = NULL, next_attempt_at = NULL
        FROM accepted a WHERE d.id = a.id
    ), entries AS (
        INSERT INTO delivery_events (delivery_id, status, at, provider, source)
        SELECT id, 'sent', :now, provider, 'dispatcher' FROM accepted
    ), final AS (
        UPDATE messages SET status = 'sent', updated_at = :now
        WHERE id = ANY(CAST(:final_messages AS uuid[])) AND status = 'pending'
    )
    SELECT count(*) FROM accepted
    """
)


async def record_sent(uow: UnitOfWork, accepted: Sequence[Accepted]) -> None:
    """Providers accepted these deliveries' messages: record their ids and start their
    fallback timers, in one statement. The caller holds the messages' and deliveries'
    locks (``deliveries_for_update``), and applies any callback that arrived before
    this was recorded (``apply_stored_callbacks``)."""
    if not accepted:
        return
    now = uow.clock.now()
    fallback_ats: list[datetime | None] = []
    final_messages: list[uuid.UUID] = []
    for item in accepted:
        settled = item.row["message_status"] != "pending"
        if item.fallback_after is None or settled:
            fallback_ats.append(None)
        else:
            fallback_ats.append(now + timedelta(seconds=item.fallback_after))
        if item.fallback_after is None and not settled:
            # no proof of delivery will ever come on this channel: accepted is final
            final_messages.append(item.row["message_id"])
    await uow.session.execute(
        _RECORD_SENT,
        {
            "now": now,
            "ids": [item.row["id"] for item in accepted],
            "providers": [item.provider for item in accepted],
            "provider_message_ids": [item.provider_message_id for item in accepted],
            "fallback_ats": fallback_ats,
            "final_messages": final_messages,
        },
    )
    for item in accepted:
        sent = {
            **item.row,
            "provider": item.provider,
            "provider_message_id": item.provider_message_id,
        }
        uow.publish(
            NotificationSent(**_event_fields(sent), sent_at=now),
            trace_headers=item.row["trace_headers"],
        )
        uow.after_commit(SENT.labels(item.row["channel"], item.provider).inc)


async def stored_callbacks(
    uow: UnitOfWork, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The callbacks stored unapplied for (provider, provider message id) pairs, oldest
    first, locked (those another transaction holds are skipped: it applies them)."""
    wanted = set(keys)
    if not wanted:
        return {}
    rows = (
        (
            await uow.session.execute(
                sa.select(callbacks)
                .where(
                    callbacks.c.applied_at.is_(None),
                    sa.tuple_(callbacks.c.provider, callbacks.c.provider_message_id).in_(
                        sorted(wanted)
                    ),
                )
                .order_by(callbacks.c.id)
                .with_for_update(skip_locked=True)
            )
        )
        .mappings()
        .all()
    )
    stored: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        stored.setdefault((row["provider"], row["provider_message_id"]), []).append(dict(row))
    return stored


async def apply_stored_callbacks(
    uow: UnitOfWork,
    waiting: Sequence[tuple[Mapping[str, Any] | None, Sequence[Mapping[str, Any]], Policy]],
) -> int:
    """Apply callbacks stored before their delivery was known and mark them applied (one
    statement for all); return how many. ``waiting`` holds, per delivery, its row as it
    now stands (None: purged), its callbacks oldest first (``stored_callbacks``) and its
    operator's policy. The caller holds the deliveries' messages' locks."""
    changed: set[uuid.UUID] = set()  # messages a callback moved: their rows are re-read
    for row, pending, policy in waiting:
        if row is not None and row["message_id"] in changed:
            row = await delivery_for_update(uow, row["id"], message_locked=True)
        for index, callback in enumerate(pending):
            if row is None or not domain.advances(row["status"], callback["status"]):
                continue  # a status it is past already (most "sent" callbacks): nothing to do
            update = StatusUpdate(
                callback["provider_message_id"],
                callback["status"],
                callback["at"],
                callback["error_code"],
            )
            if await apply_status(uow, row, update, source="webhook", policy=policy):
                changed.add(row["message_id"])
            if index + 1 < len(pending):  # the next one is judged on the row as it now is
                row = await delivery_for_update(uow, row["id"], message_locked=True)
    applied = [callback["id"] for _, pending, _ in waiting for callback in pending]
    if applied:
        await uow.session.execute(
            callbacks.update().where(callbacks.c.id.in_(applied)).values(applied_at=uow.clock.now())
        )
    return len(applied)


async def record_retry(
    uow: UnitOfWork, row: Mapping[str, Any], *, provider: str, code: str, delay: float
) -> None:
    """A provider failed in a way that may pass: try it again after ``delay`` seconds."""
    now = uow.clock.now()
    await uow.session.execute(
        deliveries.update()
        .where(deliveries.c.id == row["id"])
        .values(
            status="queued",
            attempts=deliveries.c.attempts + 1,
            next_attempt_at=now + timedelta(seconds=delay),
            lease_until=None,
            last_error=code,
        )
    )
    await timeline(
        uow, row["id"], "retrying", now, source="dispatcher", provider=provider, detail=code
    )


async def record_failover(
    uow: UnitOfWork, row: Mapping[str, Any], *, provider: str, code: str
) -> None:
    """A provider is given up: the same channel goes to the next provider at once."""
    now = uow.clock.now()
    await uow.session.execute(
        deliveries.update()
        .where(deliveries.c.id == row["id"])
        .values(
            status="queued",
            provider_index=deliveries.c.provider_index + 1,
            attempts=0,
            next_attempt_at=now,
            lease_until=None,
            last_error=code,
        )
    )
    await timeline(
        uow, row["id"], "failover", now, source="dispatcher", provider=provider, detail=code
    )


async def give_up_channel(
    uow: UnitOfWork,
    row: Mapping[str, Any],
    *,
    reason: str,
    policy: Policy,
    timed_out: bool = False,
) -> None:
    """The channel failed (or gave no proof in time): hand the message to the next channel
    of its plan, or close it when none is left. Emits ``notification.failed``."""
    now = uow.clock.now()
    values: dict[str, Any] = {"fallback_at": None, "lease_until": None, "last_error": reason}
    if not timed_out:  # a timed-out channel stays "sent": a late proof still counts
        values.update(status="failed", failed_at=now, next_attempt_at=None)
    await uow.session.execute(
        deliveries.update().where(deliveries.c.id == row["id"]).values(**values)
    )
    await timeline(
        uow,
        row["id"],
        "delivery_timeout" if timed_out else "failed",
        now,
        source="timer" if timed_out else "dispatcher",
        provider=row.get("provider"),
        detail=reason,
    )
    uow.after_commit(FAILED.labels(row["channel"], _reason_label(reason)).inc)
    if row["message_status"] == "sent" and not timed_out:
        await _fail_if_nothing_accepted(uow, row, reason, now)
        return
    if row["message_status"] != "pending":
        return  # delivered (or closed) already: this channel's failure changes nothing
    latest = await uow.session.scalar(
        sa.select(sa.func.max(deliveries.c.position)).where(
            deliveries.c.message_id == row["message_id"]
        )
    )
    if latest is not None and latest > row["position"]:
        # an earlier channel failing late (after its timeout): the message moved on already
        _publish_failed(uow, row, reason, now, final=False, next_channel=None)
        return
    plan = list(row["channels"])
    contacts = await contacts_of(uow, row["protocol_number"])
    next_channel: str | None = None
    for position in range(row["position"] + 1, len(plan)):
        queued = await _queue_channel(
            uow,
            row["message_id"],
            row["protocol_number"],
            row["ans_registry"],
            plan,
            position,
            contacts.address(plan[position]),
            policy,
            now,
        )
        if queued is not None:
            next_channel = plan[position]
            break
    if next_channel is not None:
        _publish_failed(uow, row, reason, now, final=False, next_channel=next_channel)
        return
    # No channel left. Accepted somewhere without proof (e-mail, or a channel that timed
    # out): the message ends "sent"; accepted nowhere: it failed.
    accepted = await _accepted_somewhere(uow, row["message_id"])
    await _set_message(uow, row["message_id"], status="sent" if accepted else "failed", now=now)
    _publish_failed(uow, row, reason, now, final=True, next_channel=None)
    if not accepted:
        uow.after_commit(FINAL_FAILED.labels(row["purpose"]).inc)


async def _fail_if_nothing_accepted(
    uow: UnitOfWork, row: Mapping[str, Any], reason: str, now: datetime
) -> None:
    """A late failure of a message that ended "sent" without proof: when no channel
    holds an accepted message any more, the message failed after all."""
    accepted = await _accepted_somewhere(uow, row["message_id"])
    if accepted:
        _publish_failed(uow, row, reason, now, final=False, next_channel=None)
        return
    await uow.session.execute(
        messages.update()
        .where(messages.c.id == row["message_id"], messages.c.status == "sent")
        .values(status="failed", updated_at=now)
    )
    _publish_failed(uow, row, reason, now, final=True, next_channel=None)
    uow.after_commit(FINAL_FAILED.labels(row["purpose"]).inc)


async def _accepted_somewhere(uow: UnitOfWork, message_id: uuid.UUID) -> bool:
    """Whether a channel of the message holds it accepted, without proof (status sent)."""
    found = await uow.session.scalar(
        sa.select(sa.func.count()).where(
            deliveries.c.message_id == message_id, deliveries.c.status == "sent"
        )
    )
    return bool(found)


def _publish_failed(
    uow: UnitOfWork,
    row: Mapping[str, Any],
    reason: str,
    now: datetime,
    *,
    final: bool,
    next_channel: str | None,
) -> None:
    uow.publish(
        NotificationFailed(
            **_event_fields(row),
            reason=reason,
            failed_at=now,
            final=final,
            next_channel=next_channel,
        ),
        trace_headers=row["trace_headers"],
    )


async def apply_status(
    uow: UnitOfWork,
    row: Mapping[str, Any],
    update: StatusUpdate,
    *,
    source: str,
    policy: Policy | None = None,
) -> bool:
    """Apply a provider's status to a delivery (only forward); True if it changed."""
    if not domain.advances(row["status"], update.status):
        return False
    now = uow.clock.now()
    at = update.at or now
    if update.status == "failed":
        if policy is None:
            raise ValueError("a failure needs the operator's policy to fall back")
        code = f"not_delivered:{update.error_code}" if update.error_code else "not_delivered"
        await give_up_channel(uow, row, reason=safe_reason(code), policy=policy)
        return True
    if update.status not in domain.PROVEN:
        await uow.session.execute(
            deliveries.update().where(deliveries.c.id == row["id"]).values(status=update.status)
        )
        await timeline(uow, row["id"], update.status, at, source=source, provider=row["provider"])
        return True
    first_proof = row["delivered_at"] is None
    await uow.session.execute(
        _APPLY_PROOF,
        {
            "delivery_id": row["id"],
            "message_id": row["message_id"],
            "status": update.status,
            "delivered_at": row["delivered_at"] or at,
            "at": at,
            "now": now,
            "provider": row["provider"],
            "source": source,
            "channel": row["channel"],
            "proven": first_proof,
            "detail": "delivered_on_" + row["channel"],
        },
    )
    if first_proof:
        uow.publish(
            NotificationDelivered(
                **_event_fields(row),
                status="read" if update.status == "read" else "delivered",
                delivered_at=at,
            ),
            trace_headers=row["trace_headers"],
        )
        uow.after_commit(DELIVERED.labels(row["channel"], row["provider"] or "").inc)
    return True


# A proof of delivery ("delivered" or "read"), in one statement: the delivery and its
# timeline entry; on its first proof (:proven) the message is delivered (unless another
# channel proved it first), and the message's other deliveries still queued (or abandoned
# mid-send by a dead worker: nobody will record it, nothing to resend) are cancelled, each
# with its timeline entry. Every delivery of the message stops waiting for a proof. The
# sub-statements touch different rows. Whether to cancel is decided on each row as the
# update finds it (``d``): a delivery the dispatcher claims meanwhile is re-read once its
# claim commits, and is then "sending" under a live lease, not cancellable. A cancelled
# delivery never waits for a proof, so every row returned as cancelled was cancelled here.
_APPLY_PROOF = sa.text(
    """
    WITH proven AS (
        UPDATE deliveries
        SET status = :status, delivered_at = :delivered_at, fallback_at = NULL
        WHERE id = :delivery_id
    ), entry AS (
        INSERT INTO delivery_events (delivery_id, status, at, provider, source)
        VALUES (:delivery_id, :status, :at, :provider, :source)
    ), message AS (
        UPDATE messages
        SET status = 'delivered', delivered_channel = :channel, delivered_at = :at,
            updated_at = :now
        WHERE id = :message_id AND delivered_at IS NULL AND :proven
    ), others AS (
        UPDATE deliveries AS d
        SET status = CASE WHEN :proven AND (d.status = 'queued'
                OR (d.status = 'sending' AND d.lease_until < :now))
                THEN 'cancelled' ELSE d.status END,
            next_attempt_at = CASE WHEN :proven AND (d.status = 'queued'
                OR (d.status = 'sending' AND d.lease_until < :now))
                THEN NULL ELSE d.next_attempt_at END,
            lease_until = CASE WHEN :proven AND (d.status = 'queued'
                OR (d.status = 'sending' AND d.lease_until < :now))
                THEN NULL ELSE d.lease_until END,
            fallback_at = NULL
        WHERE d.message_id = :message_id AND d.id <> :delivery_id
            AND ((:proven AND (d.status = 'queued'
                  OR (d.status = 'sending' AND d.lease_until < :now)))
                 OR d.fallback_at IS NOT NULL)
        RETURNING d.id, d.status = 'cancelled' AS cancelled
    )
    INSERT INTO delivery_events (delivery_id, status, at, detail, source)
    SELECT id, 'cancelled', :now, :detail, 'dispatcher' FROM others WHERE cancelled
    """
).bindparams(
    sa.bindparam("delivery_id", type_=UUID(as_uuid=True)),
    sa.bindparam("message_id", type_=UUID(as_uuid=True)),
    sa.bindparam("delivered_at", type_=sa.DateTime(timezone=True)),
    sa.bindparam("at", type_=sa.DateTime(timezone=True)),
    sa.bindparam("now", type_=sa.DateTime(timezone=True)),
    sa.bindparam("proven", type_=sa.Boolean),
)


async def contacts_of(uow: UnitOfWork, protocol_number: str) -> domain.Contacts:
    """The beneficiary's addresses on a protocol (none once purged)."""
    row = (
        await uow.session.execute(
            sa.select(protocols.c.email, protocols.c.phone, protocols.c.whatsapp).where(
                protocols.c.protocol_number == protocol_number
            )
        )
    ).first()
    if row is None:
        return domain.Contacts()
    return domain.Contacts(email=row.email, phone=row.phone, whatsapp=row.whatsapp)


async def _set_message(
    uow: UnitOfWork, message_id: uuid.UUID, *, status: str, now: datetime
) -> None:
    await uow.session.execute(
        messages.update()
        .where(messages.c.id == message_id, messages.c.status == "pending")
        .values(status=status, updated_at=now)
    )


def safe_reason(reason: str) -> str:
    """A reason that fits the contract's pattern (provider codes are free-form)."""
    cleaned = "".join(c if c.isalnum() or c in "_.:-" else "_" for c in reason.lower())
    return cleaned[:120] or "unknown"
