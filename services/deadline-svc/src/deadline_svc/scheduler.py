"""The scheduler: finds deadlines whose warning checkpoint or due instant has come.

Each tick claims batches of deadlines whose ``next_check_at`` has passed with
``FOR UPDATE SKIP LOCKED``, so any number of replicas share the work without taking the
same row; in the claiming transaction it emits the warnings and breaches due (through the
outbox), records them and sets the next check. A replica that dies mid-tick rolls its
transaction back: nothing was emitted and another replica takes the rows, so every
warning and breach is emitted exactly once. Time comes from the injectable clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from deadline_svc import domain
from deadline_svc import repository as repo
from deadline_svc.domain import deadline_fields
from deadline_svc.runtime import Runtime, calendar_of
from rn623_events.contracts.deadlines import DeadlineBreached, DeadlineEvent, DeadlineWarning
from rn623_events.worker import Component, periodic
from rn623_rulebook import BusinessCalendar

log = logging.getLogger(__name__)

WARNINGS = Counter(
    "deadline_warnings_total", "Deadline warnings emitted", ["operator", "checkpoint"]
)
BREACHES = Counter("deadline_breaches_total", "Deadlines breached", ["operator", "kind"])
ROW_ERRORS = Counter("deadline_scheduler_row_errors_total", "Deadline checks that failed")
TICK_SECONDS = Histogram("deadline_scheduler_tick_seconds", "Time of one scheduler tick")
OPEN = Gauge("deadlines_open", "Open deadlines", ["operator", "kind"])
DUE_SOON = Gauge(
    "deadlines_due_within_24h", "Open deadlines due within 24 hours", ["operator", "kind"]
)


RETRY_LATER = timedelta(minutes=1)


def _unchanged(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A deadline's checked columns as they are."""
    return {
        "id": row["id"],
        "warned": row["warned"],
        "next_check_at": row["next_check_at"],
        "status": row["status"],
        "breached_at": row["breached_at"],
    }


class Scheduler:
    """Emits due warnings and breaches; refreshes the open-deadline gauges."""

    def __init__(
        self,
        rt: Runtime,
        *,
        batch_size: int = 500,
        interval: float = 1.0,
        gauges_interval: float = 30.0,
    ) -> None:
        self.rt = rt
        self.batch_size = batch_size
        self.interval = interval
        self.gauges_interval = gauges_interval

    def components(self) -> list[Component]:
        """The worker components: the ticks and the gauge refreshes, each on its interval."""
        return [
            periodic(self.tick, self.interval, what="scheduler tick"),
            periodic(self.refresh_gauges, self.gauges_interval, what="deadline gauges"),
        ]

    async def tick(self) -> int:
        """Handle every deadline due for a check now; return how many were handled."""
        handled = 0
        with TICK_SECONDS.time():
            while True:
                count = await self._batch()
                handled += count
                if count < self.batch_size:
                    return handled

    async def _batch(self) -> int:
        now = self.rt.clock.now()
        emitted: list[DeadlineEvent] = []
        async with self.rt.uow() as uow:
            rows = await repo.claim_due(uow.session, now, self.batch_size)
            calendars: dict[str, BusinessCalendar | None] = {}
            changes: list[dict[str, Any]] = []
            for row in rows:
                registry = row["ans_registry"]
                if registry not in calendars:
                    operator = await repo.get_operator(uow.session, registry)
                    calendars[registry] = calendar_of(operator) if operator else None
                try:
                    change, events = self._check(row, now, calendars[registry])
                except Exception as exc:  # one bad row must not stall every other deadline
                    log.error(
                        "deadline check failed; retrying later",
                        extra={"deadline_id": str(row["id"]), "error_type": type(exc).__name__},
                    )
                    ROW_ERRORS.inc()
                    change, events = {**_unchanged(row), "next_check_at": now + RETRY_LATER}, []
                changes.append(change)
                for event in events:
                    uow.publish(event)
                emitted.extend(events)
            await repo.record_checks(uow.session, changes)
            await uow.commit()
        for event in emitted:  # counted once committed, so a retried tick counts nothing twice
            if isinstance(event, DeadlineWarning):
                WARNINGS.labels(event.ans_registry, event.checkpoint).inc()
            elif isinstance(event, DeadlineBreached):
                BREACHES.labels(event.ans_registry, event.kind).inc()
        return len(rows)

    def _check(
        self, row: Mapping[Any, Any], now: datetime, calendar: BusinessCalendar | None
    ) -> tuple[dict[str, Any], list[DeadlineEvent]]:
        """A deadline's new checked columns and the events due for it now."""
        if calendar is None:  # cannot happen (scheduled with one); look again later
            return {**_unchanged(row), "next_check_at": now + RETRY_LATER}, []
        instants = domain.checkpoint_instants(
            self.rt.checkpoints, row["started_at"], row["due_at"], calendar
        )
        verdict = domain.verdict(now, row["due_at"], instants, row["warned"])
        events: list[DeadlineEvent] = [
            DeadlineWarning(
                **deadline_fields(row),
                checkpoint=checkpoint,
                warned_at=now,
                business_days_left=domain.business_days_left(now, row["due_at"], calendar),
            )
            for checkpoint in verdict.warnings
        ]
        change = {
            **_unchanged(row),
            "warned": [*row["warned"], *verdict.warnings],
            "next_check_at": verdict.next_check_at,
        }
        if verdict.breach:
            change.update(status=domain.BREACHED, breached_at=now)
            events.append(DeadlineBreached(**deadline_fields(row), breached_at=now))
        return change, events

    async def refresh_gauges(self) -> None:
        """Set the open and due-within-24h gauges from the database."""
        horizon = self.rt.clock.now() + timedelta(hours=24)
        async with self.rt.sessions() as session:
            rows = await repo.open_counts(session, horizon)
        OPEN.clear()
        DUE_SOON.clear()
        for row in rows:
            OPEN.labels(row["ans_registry"], row["kind"]).set(row["open"])
            DUE_SOON.labels(row["ans_registry"], row["kind"]).set(row["due_soon"])
