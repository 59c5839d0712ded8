"""The purge runner: asks the owners to purge records whose retention is over.

Each tick claims batches of schedule entries past their ``retain_until`` that no legal
hold covers, with ``FOR UPDATE SKIP LOCKED`` so replicas share the work. In the same
transaction it records one purge request per protocol and set of owners, marks the
entries ``purge_requested`` and emits ``retention.purge_requested`` through the outbox.
A runner that dies mid-batch rolls back and nothing was asked; an owner that is down
reads the request from the topic when it comes back, so a purge is delayed, never lost.
The disposal is certified only when every owner has confirmed (see consumers).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from retention_svc import domain
from retention_svc import repository as repo
from retention_svc.runtime import Runtime
from rn623_events.contracts.retention import PurgeRequested
from rn623_events.worker import Component, periodic

log = logging.getLogger(__name__)

PURGES_REQUESTED = Counter(
    "retention_purges_requested_total", "Purge requests sent to owners", ["operator"]
)
TICK_SECONDS = Histogram("retention_purge_tick_seconds", "Time of one purge-runner tick")
DUE = Gauge(
    "retention_records_due_for_purge",
    "Record classes past retention, not yet requested",
    ["operator"],
)
PENDING = Gauge(
    "retention_purges_pending_confirmation", "Purge requests waiting for an owner", ["operator"]
)
ACCESS_OPEN = Gauge("retention_access_requests_open", "Records-access requests open", ["operator"])
ACCESS_DUE_SOON = Gauge(
    "retention_access_requests_due_within_24h",
    "Records-access requests open and due within 24 hours",
    ["operator"],
)
ACCESS_OVERDUE = Gauge(
    "retention_access_requests_overdue", "Records-access requests open past their due", ["operator"]
)


class PurgeRunner:
    """Sends due purge requests and refreshes the retention gauges."""

    def __init__(
        self,
        rt: Runtime,
        *,
        batch_size: int = 2000,
        interval: float = 5.0,
        dry_run: bool = False,
        gauges_interval: float = 30.0,
        yield_ratio: float = 0.25,
    ) -> None:
        self.rt = rt
        self.batch_size = batch_size
        self.interval = interval
        self.dry_run = dry_run
        self.gauges_interval = gauges_interval
        # after each batch, pause this fraction of its duration: the consumer and the
        # collector share the worker's event loop and must keep up during a backlog
        self.yield_ratio = yield_ratio

    def components(self) -> list[Component]:
        """The worker components: the ticks and the gauge refreshes, each on its interval."""
        return [
            periodic(self.tick, self.interval, what="purge tick"),
            periodic(self.refresh_gauges, self.gauges_interval, what="retention gauges"),
        ]

    async def tick(self) -> int:
        """Request the purge of every entry due now; return how many entries were requested.

        In dry-run mode nothing is requested: the tick only logs how many entries are due.
        """
        with TICK_SECONDS.time():
            if self.dry_run:
                async with self.rt.sessions() as session:
                    due = len(await repo.claim_due(session, self.rt.clock.now(), self.batch_size))
                log.info("purge dry run", extra={"due_entries": due})
                return 0
            requested = 0
            while True:
                started = time.monotonic()
                count = await self._batch()
                requested += count
                if count < self.batch_size:
                    return requested
                await asyncio.sleep((time.monotonic() - started) * self.yield_ratio)

    async def _batch(self) -> int:
        now = self.rt.clock.now()
        async with self.rt.uow() as uow:
            await repo.lock_holds(uow.session)  # a hold being placed waits for this batch
            rows = await repo.claim_due(uow.session, now, self.batch_size)
            by_protocol: dict[tuple[str, str], list[str]] = defaultdict(list)
            for row in rows:
                by_protocol[(row["protocol_number"], row["ans_registry"])].append(
                    row["record_class"]
                )
            requests: list[dict[str, Any]] = []
            entries: list[tuple[str, str, uuid.UUID]] = []
            for (number, registry), classes in by_protocol.items():
                for owners, group in domain.owner_groups(classes, self.rt.owners):
                    request_id = uuid.uuid4()
                    requests.append(
                        {
                            "id": request_id,
                            "protocol_number": number,
                            "ans_registry": registry,
                            "record_classes": list(group),
                            "owners": list(owners),
                            "requested_at": now,
                            "disposed_at": None,
                        }
                    )
                    entries.extend((number, record_class, request_id) for record_class in group)
                    uow.publish(
                        PurgeRequested(
                            purge_request_id=request_id,
                            protocol_number=number,
                            ans_registry=registry,
                            record_classes=group,
                            owners=owners,
                            requested_at=now,
                        )
                    )
            await repo.insert_purge_requests(uow.session, requests)
            await repo.mark_requested(uow.session, entries, now)
            await uow.commit()
        for request in requests:  # counted once committed
            PURGES_REQUESTED.labels(request["ans_registry"]).inc()
        return len(rows)

    async def refresh_gauges(self) -> None:
        """Set the due, pending and access-request gauges from the database."""
        async with self.rt.sessions() as session:
            counts = await repo.gauge_counts(session, self.rt.clock.now())
        for gauge in (DUE, PENDING, ACCESS_OPEN, ACCESS_OVERDUE, ACCESS_DUE_SOON):
            gauge.clear()
        for row in counts["due"]:
            DUE.labels(row["ans_registry"]).set(row["count"])
        for row in counts["pending"]:
            PENDING.labels(row["ans_registry"]).set(row["count"])
        for row in counts["access"]:
            ACCESS_OPEN.labels(row["ans_registry"]).set(row["open"])
            ACCESS_OVERDUE.labels(row["ans_registry"]).set(row["overdue"])
            ACCESS_DUE_SOON.labels(row["ans_registry"]).set(row["due_soon"])
