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

import sqlalchemy as sa
from prometheus_client import Counter

from notification_svc import domain, lifecycle
from notification_svc.models import callbacks, deliveries
from notification_svc.providers.base import StatusUpdate
from notification_svc.runtime import Runtime

CALLBACKS = Counter(
    "notification_callbacks_total", "Provider callbacks received", ["provider", "status", "result"]
)


async def apply_callbacks(rt: Runtime, provider: str, updates: Sequence[StatusUpdate]) -> int:
    """Store and apply ``updates`` from ``provider`` in one transaction; return how many
    changed a delivery. Deliveries are locked in message order, as everywhere."""
    changed = 0
    async with rt.uow() as uow:
        now = uow.clock.now()
        ids = sorted({u.provider_message_id for u in updates})
        found = {
            row.provider_message_id: row
            for row in (
                await uow.session.execute(
                    sa.select(
                        deliveries.c.id,
                        deliveries.c.message_id,
                        deliveries.c.provider_message_id,
                        deliveries.c.status,
                    ).where(
                        deliveries.c.provider == provider,
                        deliveries.c.provider_message_id.in_(ids),
                    )
                )
            ).all()
        }
        unknown = (uuid.UUID(int=0), uuid.UUID(int=0))

        def lock_order(update: StatusUpdate) -> tuple[uuid.UUID, uuid.UUID]:
            row = found.get(update.provider_message_id)
            return (row.message_id, row.id) if row is not None else unknown

        ordered = sorted(updates, key=lock_order)
        for update in ordered:
            current = found.get(update.provider_message_id)
            matched = current is not None
            applied = False
            # statuses only move forward: one that cannot advance now never will, so it
            # needs no lock (most "sent" callbacks, which the dispatcher recorded already)
            if current is not None and domain.advances(current.status, update.status):
                await lifecycle.lock_messages(uow, [current.message_id])
                row = await lifecycle.delivery_for_update(uow, current.id, message_locked=True)
                if row is not None:
                    policy = (
                        await rt.policy(uow, row["ans_registry"])
                        if update.status == "failed"
                        else None
                    )
                    applied = await lifecycle.apply_status(
                        uow, row, update, source="webhook", policy=policy
                    )
                    changed += int(applied)
            await uow.session.execute(
                callbacks.insert().values(
                    provider=provider,
                    provider_message_id=update.provider_message_id,
                    status=update.status,
                    at=update.at,
                    error_code=update.error_code,
                    received_at=now,
                    # kept unapplied only when the send's record must apply it later
                    applied_at=(
                        now if matched or not domain.beyond_acceptance(update.status) else None
                    ),
                )
            )
            result = "applied" if applied else ("ignored" if matched else "unmatched")
            uow.after_commit(CALLBACKS.labels(provider, update.status, result).inc)
        await uow.commit()
    return changed
