"""Gauges of notification-svc, refreshed from the database (whole-database figures: every
worker replica reports the same value, so dashboards and alerts take the max)."""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import Gauge

from notification_svc.models import deliveries, messages
from notification_svc.runtime import Runtime

PENDING = Gauge("notification_messages_pending", "Messages with no channel settled yet")
QUEUED = Gauge("notification_deliveries_queued", "Deliveries waiting for a provider call")
OLDEST_QUEUED = Gauge(
    "notification_oldest_queued_seconds", "Age of the oldest delivery due and not yet sent"
)
AWAITING_PROOF = Gauge(
    "notification_deliveries_awaiting_proof", "Deliveries sent, waiting for a delivery callback"
)


async def refresh_gauges(rt: Runtime) -> None:
    """Read the figures from the database and set the gauges."""
    async with rt.sessions() as session:
        now = rt.clock.now()
        pending = await session.scalar(
            sa.select(sa.func.count()).where(messages.c.status == "pending")
        )
        queued, oldest = (
            await session.execute(
                sa.select(sa.func.count(), sa.func.min(deliveries.c.next_attempt_at)).where(
                    deliveries.c.status == "queued", deliveries.c.next_attempt_at <= now
                )
            )
        ).one()
        awaiting = await session.scalar(
            sa.select(sa.func.count()).where(
                deliveries.c.status == "sent", deliveries.c.fallback_at.isnot(None)
            )
        )
    PENDING.set(pending or 0)
    QUEUED.set(queued or 0)
    OLDEST_QUEUED.set(max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
    AWAITING_PROOF.set(awaiting or 0)
