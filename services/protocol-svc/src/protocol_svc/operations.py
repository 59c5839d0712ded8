"""What protocol-svc does, whoever asks: the HTTP API and the contact-center consumer.

Each operation runs inside the caller's unit of work, records its rows and publishes its
events through the outbox; it never commits. Input the operation cannot accept is
reported as an :class:`OperationError` naming the field relative to the request
(``demand.requested_at``); the API turns it into problem+json, the consumer into a
dead letter.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from protocol_svc import repository as repo
from protocol_svc.answers import AnswerProblem, check_answer, reanalysis_allowed
from protocol_svc.domain import (
    DEMAND_OPEN,
    PROTOCOL_ANSWERED,
    PROTOCOL_OPEN,
    PURGED_TEXT,
    purge_plan,
)
from protocol_svc.numbering import SequenceAllocator
from protocol_svc.schemas import BeneficiaryIn, DemandIn, InteractionIn
from rn623_events.clock import Clock
from rn623_events.contracts.protocols import (
    ComplaintRegistered,
    DemandAnswered,
    DemandReanalysisRequested,
    DemandRegistered,
    InteractionRecorded,
    ProtocolOpened,
    RecordsPurged,
)
from rn623_events.db import UnitOfWork
from rn623_events.group_commit import GroupCommitter
from rn623_rulebook import (
    NoDeadlineRuleError,
    RecordClass,
    calendar_for,
    deadline_for,
    get_layout,
    operator_calendar_spec,
    protocol_retention,
    purge_allowed,
)
from rn623_rulebook.protocol_numbers import SequenceExhausted

PROTOCOLS_OPENED = Counter(
    "protocols_opened_total", "Protocol numbers issued", ["operator", "channel"]
)
DEMANDS_REGISTERED = Counter(
    "demands_registered_total", "Demands registered", ["operator", "demand_type"]
)

# A demand may be registered with the moment the beneficiary asked; a little clock skew
# between the contact center and us is tolerated, a request from the future is not.
MAX_CLOCK_SKEW = timedelta(minutes=5)

# Operator registrations change rarely and are read by every issuance: each process
# keeps them this long (a PUT through this process refreshes its copy at once).
OPERATOR_CACHE_SECONDS = 10.0

Row = Mapping[Any, Any]


class OperationError(Exception):
    """An operation refused its input; the message never quotes submitted values."""


class InvalidInput(OperationError):
    """A field of the request cannot be accepted."""

    def __init__(self, field: str, message: str, kind: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.kind = kind


class NotFound(OperationError):
    """The protocol or demand named does not exist (or is not the caller's to see)."""


class Conflict(OperationError):
    """The request is well-formed but the record's state forbids it."""

    def __init__(self, kind: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.kind = kind
        self.title = title
        self.detail = detail
        self.extra = extra


class InconclusiveAnswer(OperationError):
    """The answer's text is generic or stalling, or a denial lacks its basis."""

    def __init__(self, problems: list[AnswerProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


@functools.cache
def time_zone(name: str) -> ZoneInfo:
    """The time zone called ``name`` (ZoneInfo's own cache is weak and reloads often)."""
    return ZoneInfo(name)


@dataclass
class Runtime:
    """What operations need: the database, the sequence allocator, the clock."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    allocator: SequenceAllocator
    clock: Clock
    source: str
    # POST /v1/protocols of concurrent callers share transactions (group commit)
    issue_group_max: int = 64
    issue_concurrency: int = 2
    issuance: GroupCommitter = field(init=False)
    _operators: dict[str, tuple[float, Row]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.issuance = GroupCommitter(
            self.uow,
            name="protocols",
            max_group=self.issue_group_max,
            concurrency=self.issue_concurrency,
        )

    def uow(self) -> UnitOfWork:
        """A new unit of work."""
        return UnitOfWork(self.sessions, source=self.source, clock=self.clock)

    def now_in(self, zone_name: str) -> datetime:
        """The current instant in the named time zone."""
        return self.clock.now().astimezone(time_zone(zone_name))

    async def operator(self, session: AsyncSession, ans_registry: str) -> Row | None:
        """The operator's registration, from this process's short-lived cache or the database."""
        cached = self._operators.get(ans_registry)
        now = self.clock.monotonic()
        if cached is not None and now - cached[0] < OPERATOR_CACHE_SECONDS:
            return cached[1]
        row = await repo.get_operator(session, ans_registry)
        if row is not None:
            self._operators[ans_registry] = (now, dict(row))
        return row

    async def operator_of(self, session: AsyncSession, protocol: Row) -> Row:
        """The registration of a protocol's operator (protocols always reference one)."""
        operator = await self.operator(session, protocol["ans_registry"])
        assert operator is not None
        return operator

    def forget_operator(self, ans_registry: str) -> None:
        """Drop a cached registration (it just changed)."""
        self._operators.pop(ans_registry, None)


async def open_protocol(
    uow: UnitOfWork,
    rt: Runtime,
    operator: Row,
    *,
    channel: str,
    direction: str,
    beneficiary: BeneficiaryIn,
    contact_id: str | None = None,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    opened_at: datetime | None = None,
) -> Row:
    """Issue a protocol number and record the protocol; publishes ``protocol.opened``.

    ``opened_at`` is when the contact started, if it was reported afterwards (a
    contact-center event): the number carries that day, in the operator's time zone.
    """
    layout = get_layout(operator["protocol_layout"])
    now = rt.now_in(operator["timezone"])
    if opened_at is not None and opened_at > now + MAX_CLOCK_SKEW:
        raise InvalidInput("occurred_at", "is in the future", "future_instant")
    opened_at = min(opened_at, now).astimezone(now.tzinfo) if opened_at is not None else now
    ans_registry = operator["ans_registry"]
    try:
        sequence = await rt.allocator.next(ans_registry, opened_at.date(), layout)
    except SequenceExhausted as exc:
        raise Conflict(
            "sequence-exhausted",
            "Daily protocol capacity exhausted",
            str(exc),
            layout=exc.layout_id,
            daily_capacity=exc.daily_capacity,
            suggested_layout=exc.suggested_layout_id,
        ) from None
    number = layout.format(ans_registry, opened_at.date(), sequence)
    beneficiary_data = beneficiary.model_dump(mode="json")
    values = {
        "number": number,
        "ans_registry": ans_registry,
        "layout_id": layout.id,
        "channel": channel,
        "direction": direction,
        "opened_at": opened_at,
        "timezone": operator["timezone"],
        "status": PROTOCOL_OPEN,
        "contact_id": contact_id,
        "idempotency_key": idempotency_key,
        "request_fingerprint": fingerprint,
        "beneficiary": beneficiary_data,
        "beneficiary_cpf": beneficiary.cpf,
    }
    await repo.insert_protocol(uow.session, values)
    uow.publish(
        ProtocolOpened(
            protocol_number=number,
            ans_registry=ans_registry,
            layout_id=layout.id,
            channel=channel,
            direction=direction,
            opened_at=opened_at,
            timezone=operator["timezone"],
            contact_id=contact_id,
            beneficiary=beneficiary_data,
        )
    )
    uow.after_commit(PROTOCOLS_OPENED.labels(ans_registry, channel).inc)
    return values


async def register_demand(
    uow: UnitOfWork,
    operator: Row,
    number: str,
    demand: DemandIn,
    now: datetime,
    *,
    at: str = "",
    reanalysis_of: uuid.UUID | None = None,
) -> Row:
    """Register a demand with its deadline from the rulebook; publishes ``demand.registered``.

    ``at`` is where the demand sits in the request (``demand.``), for error fields.
    """
    requested_at = (demand.requested_at or now).astimezone(now.tzinfo)
    if requested_at > now + MAX_CLOCK_SKEW:
        raise InvalidInput(f"{at}requested_at", "is in the future", "future_instant")
    try:
        deadline = deadline_for(
            demand.demand_type,
            demand.category,
            requested_at,
            calendar_for(operator_calendar_spec(operator)),
        )
    except NoDeadlineRuleError as exc:
        raise InvalidInput(f"{at}demand_type", str(exc), "no_deadline_rule") from None
    values = {
        "id": uuid.uuid4(),
        "protocol_number": number,
        "ans_registry": operator["ans_registry"],
        "demand_type": demand.demand_type,
        "category": demand.category,
        "description": demand.description,
        "status": DEMAND_OPEN,
        "requested_at": requested_at,
        "registered_at": now,
        "due_at": deadline.due_at,
        "immediate": deadline.immediate,
        "deadline_rule_id": deadline.rule_id,
        "deadline_legal_basis": deadline.legal_basis,
        "deadline_unit": str(deadline.unit),
        "deadline_amount": deadline.amount,
        "ruleset_id": deadline.ruleset_id,
        "reanalysis_of": reanalysis_of,
    }
    await repo.insert_demand(uow.session, values)
    uow.publish(
        DemandRegistered(
            protocol_number=number,
            ans_registry=operator["ans_registry"],
            demand_id=values["id"],
            demand_type=demand.demand_type,
            category=demand.category,
            description=demand.description,
            requested_at=requested_at,
            registered_at=now,
            due_at=deadline.due_at,
            immediate=deadline.immediate,
            deadline_rule_id=deadline.rule_id,
            deadline_legal_basis=deadline.legal_basis,
            deadline_unit=str(deadline.unit),
            deadline_amount=deadline.amount,
            ruleset_id=deadline.ruleset_id,
            reanalysis_of=reanalysis_of,
            operator_revision=operator["revision"],
        )
    )
    uow.after_commit(DEMANDS_REGISTERED.labels(operator["ans_registry"], demand.demand_type).inc)
    return values


async def find_demand(session: AsyncSession, number: str, demand_id: uuid.UUID) -> Row:
    """One demand of a protocol, locked until the transaction ends; NotFound otherwise."""
    demand = await repo.get_demand(session, number, demand_id)
    if demand is None:
        raise NotFound("no such demand on this protocol")
    return demand


async def answer_demand(
    uow: UnitOfWork,
    rt: Runtime,
    protocol: Row,
    demand: Row,
    *,
    outcome: str,
    text: str,
    legal_basis: str | None,
    answered_by: str | None,
    answered_at: datetime | None = None,
) -> Row:
    """Record a demand's conclusive answer; publishes ``demand.answered``.

    Generic or stalling texts and denials without a basis are refused
    (:class:`InconclusiveAnswer`); a demand is answered once (:class:`Conflict`).
    ``answered_at`` is when the agent answered (default: now), never in the future.
    """
    problems = check_answer(outcome, text, legal_basis)
    if problems:
        raise InconclusiveAnswer(problems)
    if demand["status"] != DEMAND_OPEN:
        raise Conflict("answered", "Already answered", "this demand already has its answer")
    number = protocol["number"]
    now = rt.now_in(protocol["timezone"])
    when = (answered_at or now).astimezone(now.tzinfo)
    if when > now + MAX_CLOCK_SKEW:
        raise InvalidInput("answered_at", "is in the future", "future_instant")
    if when < demand["requested_at"]:
        raise InvalidInput("answered_at", "is before the demand was made", "before_demand")
    values = {
        "id": uuid.uuid4(),
        "demand_id": demand["id"],
        "protocol_number": number,
        "outcome": outcome,
        "text": text,
        "legal_basis": legal_basis,
        "answered_at": when,
        "answered_by": answered_by,
    }
    await repo.insert_answer(uow.session, values)
    remaining = await repo.open_demands(uow.session, number)
    await repo.record_status(
        uow.session,
        number,
        PROTOCOL_OPEN if remaining else PROTOCOL_ANSWERED,
        "demand answered",
        when,
    )
    uow.publish(
        DemandAnswered(
            protocol_number=number,
            ans_registry=protocol["ans_registry"],
            demand_id=demand["id"],
            outcome=outcome,
            text=text,
            legal_basis=legal_basis,
            answered_at=when,
            answered_by=answered_by,
            reanalysis_allowed=reanalysis_allowed(outcome),
        )
    )
    return values


async def request_reanalysis(
    uow: UnitOfWork,
    rt: Runtime,
    protocol: Row,
    demand: Row,
    *,
    requested_at: datetime | None,
    description: str | None,
) -> Row:
    """Open a re-analysis of a denial or partial authorization as a new demand; publishes
    ``demand.registered`` and ``demand.reanalysis_requested``."""
    answer = await repo.get_answer(uow.session, demand["id"])
    if answer is None or not reanalysis_allowed(answer["outcome"]):
        raise Conflict(
            "reanalysis-not-allowed",
            "Re-analysis not allowed",
            "only a denial or a partial authorization can be re-analysed",
        )
    operator = await rt.operator_of(uow.session, protocol)
    now = rt.now_in(operator["timezone"])
    number = protocol["number"]
    request = DemandIn(
        demand_type="reanalysis",
        category=demand["category"],
        description=description,
        requested_at=requested_at,
    )
    created = await register_demand(uow, operator, number, request, now, reanalysis_of=demand["id"])
    uow.publish(
        DemandReanalysisRequested(
            protocol_number=number,
            ans_registry=protocol["ans_registry"],
            demand_id=demand["id"],
            reanalysis_demand_id=created["id"],
            requested_at=created["requested_at"],
            registered_at=created["registered_at"],
            due_at=created["due_at"],
            deadline_rule_id=created["deadline_rule_id"],
            deadline_legal_basis=created["deadline_legal_basis"],
        )
    )
    await repo.record_status(uow.session, number, PROTOCOL_OPEN, "re-analysis requested", now)
    return created


async def record_interaction(
    uow: UnitOfWork, rt: Runtime, protocol: Row, interaction: InteractionIn
) -> Row:
    """Add a transcript, message, note or recording reference to the attendance; publishes
    ``interaction.recorded``."""
    now = rt.now_in(protocol["timezone"])
    occurred_at = (interaction.occurred_at or now).astimezone(now.tzinfo)
    if occurred_at > now + MAX_CLOCK_SKEW:
        raise InvalidInput("occurred_at", "is in the future", "future_instant")
    values = {
        "id": uuid.uuid4(),
        "protocol_number": protocol["number"],
        "kind": interaction.kind,
        "occurred_at": occurred_at,
        "author": interaction.author,
        "content": interaction.content,
        "recording_uri": interaction.recording_uri,
        "duration_seconds": interaction.duration_seconds,
    }
    await repo.insert_interaction(uow.session, values)
    uow.publish(
        InteractionRecorded(
            protocol_number=protocol["number"],
            ans_registry=protocol["ans_registry"],
            interaction_id=values["id"],
            kind=interaction.kind,
            occurred_at=occurred_at,
            author=interaction.author,
            content=interaction.content,
            recording_uri=interaction.recording_uri,
            duration_seconds=interaction.duration_seconds,
        )
    )
    return values


@dataclass(frozen=True)
class ComplaintFacts:
    """A complaint as received, whoever reported it."""

    source: str
    classification: str | None
    external_reference: str | None
    received_at: datetime | None
    demand_id: uuid.UUID | None = None
    coverage: str | None = None


def complaint_coverage(segment: str, given: str | None) -> str | None:
    """The coverage a complaint counts under: the one given, else the operator's only one.

    An operator with both coverages and no coverage given leaves it unknown (null).
    """
    if given is None:
        return segment if segment in ("medical", "dental") else None
    if segment != "both" and given != segment:
        raise InvalidInput(
            "coverage", f"is not the operator's coverage ({segment})", "wrong_coverage"
        )
    return given


async def register_complaint(
    uow: UnitOfWork, rt: Runtime, operator: Row, protocol: Row, complaint: ComplaintFacts
) -> Row:
    """Register a complaint on a protocol; publishes ``complaint.registered``."""
    number = protocol["number"]
    coverage = complaint_coverage(operator["segment"], complaint.coverage)
    if (
        complaint.demand_id is not None
        and await repo.get_demand(uow.session, number, complaint.demand_id) is None
    ):
        raise InvalidInput("demand_id", "is not a demand of this protocol", "unknown_demand")
    now = rt.now_in(protocol["timezone"])
    received_at = (complaint.received_at or now).astimezone(now.tzinfo)
    if received_at > now + MAX_CLOCK_SKEW:
        raise InvalidInput("received_at", "is in the future", "future_instant")
    values = {
        "id": uuid.uuid4(),
        "protocol_number": number,
        "ans_registry": protocol["ans_registry"],
        "source": complaint.source,
        "classification": complaint.classification,
        "external_reference": complaint.external_reference,
        "received_at": received_at,
        "registered_at": now,
        "demand_id": complaint.demand_id,
        "coverage": coverage,
    }
    await repo.insert_complaint(uow.session, values)
    uow.publish(
        ComplaintRegistered(
            protocol_number=number,
            ans_registry=protocol["ans_registry"],
            complaint_id=values["id"],
            source=complaint.source,
            classification=complaint.classification,
            external_reference=complaint.external_reference,
            received_at=received_at,
            registered_at=now,
            demand_id=complaint.demand_id,
            coverage=coverage,
        )
    )
    return values


async def purge_records(
    uow: UnitOfWork,
    rt: Runtime,
    *,
    purge_request_id: uuid.UUID,
    protocol_number: str,
    ans_registry: str,
    record_classes: Sequence[str],
) -> bool:
    """Delete or anonymize the requested classes of a protocol's records and confirm with
    ``records.purged``; False when the request was already carried out.

    A protocol this service never held (or already purged) is confirmed all the same:
    none of its records remain here.
    """
    plan = purge_plan(record_classes)
    if not plan.record_classes:
        return False
    protocol = await repo.get_protocol(uow.session, protocol_number)
    if protocol is not None and protocol["ans_registry"] != ans_registry:
        raise InvalidInput("ans_registry", "is not the protocol's operator", "wrong_operator")
    now = rt.clock.now()
    if protocol is not None:
        # retention-svc decides, but a record is never destroyed early: a complaint it
        # has not seen yet, or an answer still pending here, keeps the records
        answers, complaint_at = await repo.retention_facts(uow.session, protocol_number)
        retain = protocol_retention(protocol["opened_at"], answers, complaint_at)
        early = [
            c
            for c in plan.record_classes
            if not purge_allowed(retain.get(RecordClass(c)), now, holds_active=False)
        ]
        if early:
            raise InvalidInput(
                "record_classes",
                f"{', '.join(early)} not at the end of retention in protocol-svc's records",
                "retention_not_over",
            )
    if not await repo.record_purge(
        uow.session,
        {
            "purge_request_id": purge_request_id,
            "protocol_number": protocol_number,
            "ans_registry": ans_registry,
            "record_classes": list(plan.record_classes),
            "anonymized": plan.anonymize_protocol,
            "purged_at": now,
        },
    ):
        return False
    if protocol is not None:
        await repo.delete_interactions(
            uow.session,
            protocol_number,
            recordings=plan.delete_recordings,
            others=plan.delete_other_interactions,
        )
        if plan.anonymize_protocol:
            await repo.anonymize_protocol(
                uow.session, protocol_number, at=now, purged_text=PURGED_TEXT
            )
    uow.publish(
        RecordsPurged(
            protocol_number=protocol_number,
            ans_registry=ans_registry,
            purge_request_id=purge_request_id,
            record_classes=plan.record_classes,
            purged_at=now,
            owner=rt.source,
            anonymized=plan.anonymize_protocol,
        )
    )
    return True
