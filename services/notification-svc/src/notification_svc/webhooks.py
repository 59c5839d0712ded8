"""Provider callbacks: store each one, apply it to its delivery when the delivery is known.

A callback can arrive before the dispatcher has recorded the provider's id (the provider
answered, called back, and our commit came after): it is stored unapplied, and either
the dispatcher, once it records the send, or the fallback timer's sweep applies it. A
"sent" that arrives that early is stored as applied: the send's own record says as much.
Callbacks for messages we never sent (or already purged) are stored and never applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import partial

import sqlalchemy as sa
from prometheus_client import Counter

from notification_svc import domain, lifecycle
from notification_svc.models import deliveries
from notification_svc.providers.base import StatusUpdate
from notification_svc.runtime import Runtime
from rn623_events.db import UnitOfWork, array_params
from rn623_events.group_commit import BatchCommitter

CALLBACKS = Counter(
    "notification_callbacks_total", "Provider callbacks received", ["provider", "status", "result"]
)


# A batch's callbacks in one statement (an executemany ran one per callback), in the
# order they came: their ids are the order stored callbacks are applied in.
_STORE_CALLBACKS = sa.text(
    """
    INSERT INTO callbacks (
        provider, provider_message_id, status, at, error_code, received_at, applied_at
    )
    SELECT p, m, s, a, e, r, d
    FROM unnest(
        CAST(:v_provider AS text[]), CAST(:v_provider_message_id AS text[]),
        CAST(:v_status AS text[]), CAST(:v_at AS timestamptz[]),
        CAST(:v_error_code AS text[]), CAST(:v_received_at AS timestamptz[]),
        CAST(:v_applied_at AS timestamptz[])
    ) WITH ORDINALITY AS rows (p, m, s, a, e, r, d, n)
    ORDER BY n
    """
)
_CALLBACK_COLUMNS = (
    "provider",
    "provider_message_id",
    "status",
    "at",
    "error_code",
    "received_at",
    "applied_at",
)

CallbackBatch = tuple[str, Sequence[StatusUpdate]]
"""One request's callbacks: the provider, and the status updates it reported."""


async def apply_callbacks(rt: Runtime, provider: str, updates: Sequence[StatusUpdate]) -> int:
    """Store and apply ``updates`` from ``provider`` in a transaction of their own; return
    how many changed a delivery."""
    async with rt.uow() as uow:
        [changed] = await apply_batch(rt, uow, [(provider, updates)])
        await uow.commit()
    return changed


def callback_committer(rt: Runtime) -> BatchCommitter[CallbackBatch, int]:
    """Concurrent callback requests applied together, one transaction per group (the
    emulators and real providers send them dozens at a time)."""
    return BatchCommitter(rt.uow, partial(apply_batch, rt), name="callbacks", concurrency=1)


async def apply_batch(rt: Runtime, uow: UnitOfWork, batch: Sequence[CallbackBatch]) -> list[int]:
    """Store and apply every request's updates on ``uow`` (no commit); per request, how
    many changed a delivery. Deliveries are locked in message order across the whole
    batch, as everywhere, so concurrent batches and the dispatcher cannot deadlock."""
    now = uow.clock.now()
    wanted = {(provider, u.provider_message_id) for provider, updates in batch for u in updates}
    rows = (
        await uow.session.execute(
            sa.select(
                deliveries.c.id,
                deliveries.c.message_id,
                deliveries.c.provider,
                deliveries.c.provider_message_id,
                deliveries.c.status,
            ).where(
                deliveries.c.provider.in_(sorted({provider for provider, _ in wanted})),
                deliveries.c.provider_message_id.in_(sorted({id_ for _, id_ in wanted})),
            )
        )
    ).all()
    found = {key: row for row in rows if (key := (row.provider, row.provider_message_id)) in wanted}
    unknown = (uuid.UUID(int=0), uuid.UUID(int=0))

    def lock_order(item: tuple[int, str, StatusUpdate]) -> tuple[uuid.UUID, uuid.UUID]:
        row = found.get((item[1], item[2].provider_message_id))
        return (row.message_id, row.id) if row is not None else unknown

    items = sorted(
        (
            (i, provider, update)
            for i, (provider, updates) in enumerate(batch)
            for update in updates
        ),
        key=lock_order,
    )
    # statuses only move forward: one that cannot advance now never will, so it needs no
    # lock (most "sent" callbacks, which the dispatcher recorded already); the rest are
    # locked, messages then deliveries, two statements for the whole batch
    advancing = [
        current
        for _, provider, update in items
        if (current := found.get((provider, update.provider_message_id))) is not None
        and domain.advances(current.status, update.status)
    ]
    await lifecycle.lock_messages(uow, [current.message_id for current in advancing])
    locked = await lifecycle.deliveries_for_update(uow, [current.id for current in advancing])
    changed = [0] * len(batch)
    stored: list[dict[str, object]] = []
    changed_messages: set[uuid.UUID] = set()
    for index, provider, update in items:
        current = found.get((provider, update.provider_message_id))
        matched = current is not None
        applied = False
        if current is not None and domain.advances(current.status, update.status):
            row = locked.pop(current.id, None)
            if row is None or current.message_id in changed_messages:
                # an update earlier in this batch changed this delivery or its message
                # (a proof, a failure): the row read above is stale, read it again
                row = await lifecycle.delivery_for_update(uow, current.id, message_locked=True)
            if row is not None:
                policy = (
                    await rt.policy(uow, row["ans_registry"]) if update.status == "failed" else None
                )
                applied = await lifecycle.apply_status(
                    uow, row, update, source="webhook", policy=policy
                )
                changed[index] += int(applied)
                if applied:
                    changed_messages.add(current.message_id)
        stored.append(
            {
                "provider": provider,
                "provider_message_id": update.provider_message_id,
                "status": update.status,
                "at": update.at,
                "error_code": update.error_code,
                "received_at": now,
                # kept unapplied only when the send's record must apply it later
                "applied_at": (
                    now if matched or not domain.beyond_acceptance(update.status) else None
                ),
            }
        )
        result = "applied" if applied else ("ignored" if matched else "unmatched")
        uow.after_commit(CALLBACKS.labels(provider, update.status, result).inc)
    if stored:
        await uow.session.execute(_STORE_CALLBACKS, array_params(_CALLBACK_COLUMNS, stored))
    return changed
