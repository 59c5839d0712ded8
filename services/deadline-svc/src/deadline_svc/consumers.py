"""deadline-svc's consumers of ``operator.events`` and ``protocol.events``.

- ``operator.upserted`` keeps a local copy of each operator's calendar data; a change of
  time zone, state, municipality or extra holidays recomputes the operator's open
  deadlines (never closed ones) and emits ``deadline.recomputed`` for each that moved.
- ``demand.registered`` schedules the demand's deadline (a re-analysis when it has
  ``reanalysis_of``) with the due instant protocol-svc stated, so receipts and deadlines
  agree; emits ``deadline.scheduled``.
- ``demand.answered`` closes the deadline: met, or met late; emits ``deadline.met``.
- ``access_request.opened`` / ``access_request.fulfilled`` (``retention.events``) do
  the same for a records-access request (72 clock hours). retention-svc accepts requests
  on protocols it has not seen, so their operator may be unknown here, possibly for good:
  instead of waiting for its calendar (which would hold every deadline behind it for
  minutes, whichever the operator) such a deadline uses the national calendar in
  Brasília time; its due instant is retention-svc's either way.

``demand.reanalysis_requested`` needs nothing here: the re-analysis arrives as its own
``demand.registered``. Every effect is idempotent under redelivery (inbox, unique demand
id, revision check, status check).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram

from deadline_svc import domain
from deadline_svc import repository as repo
from deadline_svc.domain import deadline_fields
from deadline_svc.recompute import recompute, recompute_open
from deadline_svc.runtime import Runtime, calendar_of
from rn623_events.consumer import (
    BatchHandler,
    ConsumerConfig,
    ConsumerRunner,
    Handler,
    NotReady,
    PermanentError,
    typed_handler,
)
from rn623_events.contracts.deadlines import DeadlineMet, DeadlineScheduled
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import DemandAnswered, DemandRegistered
from rn623_events.contracts.retention import AccessRequestFulfilled, AccessRequestOpened
from rn623_events.db import UnitOfWork
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope
from rn623_events.registry import Event
from rn623_events.settings import KafkaSettings
from rn623_rulebook import BusinessCalendar, CalendarSpec, calendar_for

log = logging.getLogger(__name__)

SCHEDULED = Counter("deadlines_scheduled_total", "Deadlines scheduled", ["operator", "kind"])
MET = Counter("deadlines_met_total", "Deadlines met", ["operator", "kind", "late"])
TIME_TO_ANSWER_HOURS = Histogram(
    "deadline_time_to_answer_hours",
    "Clock hours from the start of the count to the answer",
    ["kind"],
    buckets=(1, 4, 8, 24, 48, 72, 120, 168, 240, 336, 504, 720),
)
TIME_TO_ANSWER = Histogram(
    "deadline_time_to_answer_business_days",
    "Business days from the start of the count to the answer",
    ["kind"],
    buckets=(0, 1, 2, 3, 5, 7, 10, 15, 21, 30),
)

CALENDAR_FIELDS = ("timezone", "uf", "municipality_ibge", "extra_holidays")


class OperatorUnknown(NotReady):
    """The operator's calendar has not arrived yet: the protocol consumer waits for the
    operator consumer (a separate group, so it never waits on itself)."""


class DeadlineHandlers:
    """One handler per consumed event type."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def handlers(self) -> dict[str, Handler]:
        """Handlers keyed by event type, for the consumer runner."""
        return {
            "operator.upserted": typed_handler(OperatorUpserted, self.operator_upserted),
            "demand.answered": typed_handler(DemandAnswered, self.demand_answered),
            "access_request.opened": typed_handler(AccessRequestOpened, self.access_request_opened),
            "access_request.fulfilled": typed_handler(
                AccessRequestFulfilled, self.access_request_fulfilled
            ),
        }

    def batch_handlers(self) -> dict[str, BatchHandler]:
        """Batch handlers keyed by event type: registrations arrive in bulk."""
        return {"demand.registered": self.demands_registered}

    async def operator_upserted(self, event: OperatorUpserted, uow: UnitOfWork) -> None:
        """Keep the operator's calendar; recompute open deadlines when it changed."""
        values = {
            "ans_registry": event.ans_registry,
            "timezone": event.timezone,
            "uf": event.uf,
            "municipality_ibge": event.municipality_ibge,
            "extra_holidays": [h.model_dump(mode="json") for h in event.extra_holidays],
            "revision": event.revision,
            "updated_at": event.updated_at,
        }
        try:
            previous = await repo.save_operator(uow.session, values)
        except repo.StaleRevision:
            return
        if previous is None or all(previous[f] == values[f] for f in CALENDAR_FIELDS):
            return
        await recompute_open(self.rt, uow, values, reason="calendar_changed")

    async def demands_registered(
        self, items: Sequence[tuple[Event, Envelope]], uow: UnitOfWork
    ) -> None:
        """Schedule each demand's deadline as protocol-svc stated it (a batch at a time)."""
        registered = [(e, env) for e, env in items if isinstance(e, DemandRegistered)]
        if len(registered) != len(items):
            raise PermanentError("unexpected demand.registered payload")
        operators: dict[str, Mapping[Any, Any]] = {}
        for event, _ in registered:
            registry = event.ans_registry
            if registry not in operators:
                operator = await repo.get_operator(uow.session, registry)
                if operator is None:
                    raise OperatorUnknown("the operator's calendar has not arrived yet")
                operators[registry] = operator
            if (event.operator_revision or 0) > operators[registry]["revision"]:
                raise OperatorUnknown("the calendar revision the due date used has not arrived")
        calendars = {r: calendar_of(o) for r, o in operators.items()}
        rows = [self._deadline_row(e, calendars[e.ans_registry]) for e, _ in registered]
        inserted = await repo.insert_deadlines(uow.session, rows)
        for (event, envelope), values in zip(registered, rows, strict=True):
            if values["demand_id"] not in inserted:
                continue  # redelivered: the demand already has its deadline
            inserted.discard(values["demand_id"])
            uow.cause = envelope
            uow.publish(
                DeadlineScheduled(
                    **deadline_fields(values),
                    demand_type=event.demand_type,
                    category=event.category,
                    started_at=event.requested_at,
                    immediate=event.immediate,
                    rule_id=event.deadline_rule_id,
                    legal_basis=event.deadline_legal_basis,
                    ruleset_id=event.ruleset_id,
                )
            )
            uow.after_commit(SCHEDULED.labels(event.ans_registry, values["kind"]).inc)
            revision = event.operator_revision
            if revision is not None and revision < operators[event.ans_registry]["revision"]:
                # the calendar changed after protocol-svc set the date: apply the change
                await recompute(
                    self.rt,
                    uow,
                    values,
                    calendars[event.ans_registry],
                    reason="calendar_changed",
                )

    def _deadline_row(self, event: DemandRegistered, calendar: BusinessCalendar) -> dict[str, Any]:
        """The deadline row of a registered demand."""
        return self._open_row(
            calendar,
            # derived from the demand: a redelivered registration finds the same deadline
            id=uuid.uuid5(uuid.NAMESPACE_URL, f"rn623:deadline:{event.demand_id}"),
            protocol_number=event.protocol_number,
            ans_registry=event.ans_registry,
            demand_id=event.demand_id,
            kind="reanalysis" if event.reanalysis_of is not None else "demand",
            demand_type=event.demand_type,
            category=event.category,
            started_at=event.requested_at,
            registered_at=event.registered_at,
            due_at=event.due_at,
            immediate=event.immediate,
            rule_id=event.deadline_rule_id,
            legal_basis=event.deadline_legal_basis,
            ruleset_id=event.ruleset_id,
        )

    def _open_row(self, calendar: BusinessCalendar, **fields: Any) -> dict[str, Any]:
        """A new open deadline row with its first check; unnamed references are None."""
        instants = domain.checkpoint_instants(
            self.rt.checkpoints, fields["started_at"], fields["due_at"], calendar
        )
        return {
            "demand_id": None,
            "access_request_id": None,
            "demand_type": None,
            "category": None,
            **fields,
            "status": domain.OPEN,
            "warned": [],
            "next_check_at": domain.next_check(domain.OPEN, fields["due_at"], instants, ()),
        }

    async def demand_answered(self, event: DemandAnswered, uow: UnitOfWork) -> None:
        """Close the demand's deadline: met or met late."""
        row = await repo.lock_deadline(uow.session, demand_id=event.demand_id)
        if row is None:
            raise PermanentError("demand_id: no deadline was scheduled for this demand")
        await self._close(row, event.answered_at, uow)

    async def access_request_opened(self, event: AccessRequestOpened, uow: UnitOfWork) -> None:
        """Schedule a records-access deadline (72 clock hours, as retention-svc stated)."""
        values = self._open_row(
            await self._calendar(uow, event.ans_registry, wait=False),
            id=uuid.uuid5(uuid.NAMESPACE_URL, f"rn623:deadline:access:{event.request_id}"),
            protocol_number=event.protocol_number,
            ans_registry=event.ans_registry,
            access_request_id=event.request_id,
            kind="records_access",
            started_at=event.requested_at,
            registered_at=event.requested_at,
            due_at=event.due_at,
            immediate=False,
            rule_id=event.rule_id,
            legal_basis=event.legal_basis,
            ruleset_id=event.ruleset_id,
        )
        if not await repo.insert_access_deadline(uow.session, values):
            return
        uow.publish(
            DeadlineScheduled(
                **deadline_fields(values),
                started_at=event.requested_at,
                immediate=False,
                rule_id=event.rule_id,
                legal_basis=event.legal_basis,
                ruleset_id=event.ruleset_id,
            )
        )
        uow.after_commit(SCHEDULED.labels(event.ans_registry, "records_access").inc)

    async def access_request_fulfilled(
        self, event: AccessRequestFulfilled, uow: UnitOfWork
    ) -> None:
        """Close the records-access deadline: met or met late."""
        row = await repo.lock_deadline(uow.session, access_request_id=event.request_id)
        if row is None:
            raise PermanentError("request_id: no deadline was scheduled for this request")
        await self._close(row, event.fulfilled_at, uow)

    async def _close(self, row: Mapping[Any, Any], at: datetime, uow: UnitOfWork) -> None:
        """End an open or breached deadline with its answer at ``at``."""
        if row["status"] not in (domain.OPEN, domain.BREACHED):
            return  # already closed
        calendar = await self._calendar(
            uow, row["ans_registry"], wait=row["kind"] != "records_access"
        )
        outcome = domain.answered(row["started_at"], row["due_at"], at, calendar)
        await repo.update_deadline(
            uow.session,
            row["id"],
            status=outcome.status,
            answered_at=at,
            elapsed_business_days=outcome.elapsed_business_days,
            elapsed_seconds=outcome.elapsed_seconds,
            next_check_at=None,
        )
        uow.publish(
            DeadlineMet(
                **deadline_fields(row),
                answered_at=at,
                late=outcome.late,
                elapsed_business_days=outcome.elapsed_business_days,
                elapsed_seconds=outcome.elapsed_seconds,
            )
        )
        uow.after_commit(
            MET.labels(row["ans_registry"], row["kind"], str(outcome.late).lower()).inc
        )
        uow.after_commit(
            lambda: TIME_TO_ANSWER.labels(row["kind"]).observe(outcome.elapsed_business_days)
        )
        uow.after_commit(
            lambda: TIME_TO_ANSWER_HOURS.labels(row["kind"]).observe(outcome.elapsed_seconds / 3600)
        )

    async def _calendar(
        self, uow: UnitOfWork, ans_registry: str, *, wait: bool = True
    ) -> BusinessCalendar:
        """The operator's calendar; while it is unknown, a wait (``OperatorUnknown``) or,
        without ``wait``, the national calendar in Brasília time."""
        operator = await repo.get_operator(uow.session, ans_registry)
        if operator is not None:
            return calendar_of(operator)
        if not wait:
            return calendar_for(CalendarSpec())
        raise OperatorUnknown("the operator's calendar has not arrived yet")


def event_consumers(
    rt: Runtime,
    kafka: KafkaSettings,
    dead_letters: DeadLetterPublisher,
    *,
    name: str = "deadline-svc",
    config: ConsumerConfig | None = None,
) -> list[ConsumerRunner]:
    """The consumers: ``operator.events`` in a group of its own, so that ``protocol.events``
    can wait for an operator's calendar while the operators keep flowing."""
    deadline_handlers = DeadlineHandlers(rt)
    handlers = deadline_handlers.handlers()
    common: dict[str, Any] = {
        "sessions": rt.sessions,
        "kafka": kafka,
        "clock": rt.clock,
        "source": rt.source,
        "dead_letters": dead_letters,
        "config": config,
    }
    return [
        ConsumerRunner(
            name=f"{name}.operators",
            topics=["operator.events"],
            handlers={"operator.upserted": handlers["operator.upserted"]},
            **common,
        ),
        ConsumerRunner(
            name=name,
            topics=["protocol.events", "retention.events"],
            handlers={t: h for t, h in handlers.items() if t != "operator.upserted"},
            batch_handlers=deadline_handlers.batch_handlers(),
            **common,
        ),
    ]
