"""igr-svc's consumer of ``operator.events``, ``protocol.events`` and ``deadline.events``.

Every event becomes increments of counters, summed in memory over a batch and written
with one statement per table, so an IGR query reads a handful of rows and never scans:

- ``complaint.registered``: NIP complaints per (operator, coverage, month of the
  complaint's own date, Brasília time), and every complaint by source and classification
  per quarter. A complaint whose quarter is already closed is also counted as late, for
  the quarter's next revision (a closed quarter's figures never change silently).
- ``deadline.scheduled`` / ``deadline.met`` / ``deadline.breached``: deadlines per kind,
  met on time or late (with the time to answer), breached.
- ``demand.registered`` (re-analyses) and ``demand.answered``: answers by outcome and
  re-analysis requests and outcomes.
- ``operator.upserted``: the operator's name and segment (its coverages).

Redelivery is harmless: the inbox records each event in the counters' transaction.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from igr_svc import domain
from igr_svc import repository as repo
from igr_svc.runtime import Runtime
from rn623_events.consumer import (
    BatchHandler,
    ConsumerConfig,
    ConsumerRunner,
    PermanentError,
    typed_handler,
)
from rn623_events.contracts.deadlines import DeadlineBreached, DeadlineMet, DeadlineScheduled
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import (
    ComplaintRegistered,
    DemandAnswered,
    DemandRegistered,
)
from rn623_events.db import UnitOfWork
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope
from rn623_events.registry import Event
from rn623_events.settings import KafkaSettings

log = logging.getLogger(__name__)

COMPLAINTS = Counter("igr_complaints_counted_total", "Complaints counted", ["source"])
UNASSIGNED = Counter(
    "igr_complaints_unassigned_total",
    "NIP complaints whose coverage neither the event nor the operator's segment gave",
)
LATE = Counter("igr_complaints_late_total", "Complaints counted into a closed quarter")

Items = Sequence[tuple[Event, Envelope]]


class IgrHandlers:
    """Batch handlers by event type, and the operator handler."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def batch_handlers(self) -> dict[str, BatchHandler]:
        """Batch handlers keyed by event type."""
        return {
            "complaint.registered": self.complaints,
            "deadline.scheduled": self.deadlines,
            "deadline.met": self.deadlines,
            "deadline.breached": self.deadlines,
            "demand.registered": self.demands_registered,
            "demand.answered": self.demands_answered,
        }

    async def operator_upserted(self, event: OperatorUpserted, uow: UnitOfWork) -> None:
        """Keep the operator's name and segment."""
        await repo.save_operator(
            uow.session,
            {
                "ans_registry": event.ans_registry,
                "name": event.name,
                "segment": event.segment,
                "revision": event.revision,
                "updated_at": event.updated_at,
            },
        )

    async def complaints(self, items: Items, uow: UnitOfWork) -> None:
        """Count a batch of complaints (NIP ones toward the IGR)."""
        events = [_expect(event, ComplaintRegistered) for event, _ in items]
        await repo.lock_counting(uow.session)
        closed = await repo.closed(uow.session)
        segment_of = await repo.segments(
            uow.session, (e.ans_registry for e in events if e.source == "nip" and not e.coverage)
        )
        nip: Tally[tuple[str, str, Any]] = Tally()
        late: Tally[tuple[str, str]] = Tally()
        increments = _Increments()
        unassigned = 0
        for event in events:
            month = domain.month_of(event.received_at)
            quarter = domain.quarter_of(month)
            increments.add(event.ans_registry, quarter, f"complaints.source.{event.source}")
            if event.classification:
                increments.add(
                    event.ans_registry, quarter, f"complaints.classification.{event.classification}"
                )
            if event.source != "nip":
                continue
            coverage = domain.complaint_coverage(event.coverage, segment_of.get(event.ans_registry))
            unassigned += coverage == domain.UNASSIGNED
            nip[(event.ans_registry, coverage, month)] += 1
            if quarter in closed:
                late[(event.ans_registry, quarter)] += 1
        await repo.add_complaints(uow.session, nip)
        await repo.add_late(uow.session, late)
        await repo.add_indicators(uow.session, increments)
        sources = Tally(e.source for e in events)
        uow.after_commit(lambda: _count_complaints(sources, unassigned, sum(late.values())))

    async def deadlines(self, items: Items, uow: UnitOfWork) -> None:
        """Count deadlines scheduled, met (on time or late) and breached."""
        increments = _Increments()
        for event, _ in items:
            if isinstance(event, DeadlineScheduled):
                quarter = domain.quarter_of(domain.month_of(event.started_at))
                increments.add(event.ans_registry, quarter, f"deadlines.scheduled.{event.kind}")
            elif isinstance(event, DeadlineMet):
                quarter = domain.quarter_of(domain.month_of(event.answered_at))
                outcome = "met_late" if event.late else "met_on_time"
                increments.add(
                    event.ans_registry,
                    quarter,
                    f"deadlines.{outcome}.{event.kind}",
                    total=event.elapsed_seconds,
                )
                increments.add(
                    event.ans_registry,
                    quarter,
                    f"deadlines.business_days.{event.kind}",
                    total=event.elapsed_business_days,
                )
            elif isinstance(event, DeadlineBreached):
                quarter = domain.quarter_of(domain.month_of(event.breached_at))
                increments.add(event.ans_registry, quarter, f"deadlines.breached.{event.kind}")
            else:
                raise PermanentError(f"unexpected {type(event).__name__} payload")
        await repo.add_indicators(uow.session, increments)

    async def demands_registered(self, items: Items, uow: UnitOfWork) -> None:
        """Remember re-analysis demands and count their requests."""
        increments = _Increments()
        rows = []
        for event, _ in items:
            demand = _expect(event, DemandRegistered)
            if demand.reanalysis_of is None:
                continue
            rows.append({"demand_id": demand.demand_id, "ans_registry": demand.ans_registry})
            quarter = domain.quarter_of(domain.month_of(demand.registered_at))
            increments.add(demand.ans_registry, quarter, "reanalysis.requested")
        await repo.add_reanalyses(uow.session, rows)
        await repo.add_indicators(uow.session, increments)

    async def demands_answered(self, items: Items, uow: UnitOfWork) -> None:
        """Count answers by outcome, re-analyses' separately."""
        answers = [_expect(event, DemandAnswered) for event, _ in items]
        reanalyses = await repo.reanalysis_ids(uow.session, (a.demand_id for a in answers))
        increments = _Increments()
        for answer in answers:
            quarter = domain.quarter_of(domain.month_of(answer.answered_at))
            kind = "reanalysis" if answer.demand_id in reanalyses else "answers"
            increments.add(answer.ans_registry, quarter, f"{kind}.outcome.{answer.outcome}")
        await repo.add_indicators(uow.session, increments)


class _Increments(dict[tuple[str, str, str], tuple[int, float]]):
    """(operator, quarter, metric) → (count, total), summed over a batch."""

    def add(self, ans: str, quarter: str, metric: str, total: float = 0.0) -> None:
        count, sum_ = self.get((ans, quarter, metric), (0, 0.0))
        self[(ans, quarter, metric)] = (count + 1, sum_ + total)


def _expect(event: Event, model: type[Any]) -> Any:
    if not isinstance(event, model):
        raise PermanentError(f"unexpected {type(event).__name__} payload")
    return event


def _count_complaints(sources: Tally[str], unassigned: int, late: int) -> None:
    for source, count in sources.items():
        COMPLAINTS.labels(source).inc(count)
    UNASSIGNED.inc(unassigned)
    LATE.inc(late)


def event_consumer(
    rt: Runtime,
    kafka: KafkaSettings,
    dead_letters: DeadLetterPublisher,
    *,
    name: str = "igr-svc",
    config: ConsumerConfig | None = None,
) -> ConsumerRunner:
    """The consumer of the operator, protocol and deadline topics (one group)."""
    handlers = IgrHandlers(rt)
    return ConsumerRunner(
        name=name,
        topics=["operator.events", "protocol.events", "deadline.events"],
        handlers={"operator.upserted": typed_handler(OperatorUpserted, handlers.operator_upserted)},
        batch_handlers=handlers.batch_handlers(),
        sessions=rt.sessions,
        kafka=kafka,
        clock=rt.clock,
        source=rt.source,
        dead_letters=dead_letters,
        config=config,
    )
