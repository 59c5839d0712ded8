"""HTTP API of protocol-svc (v1)."""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from protocol_svc import repository as repo
from protocol_svc.answers import check_answer, reanalysis_allowed
from protocol_svc.contact_data import InvalidField, normalize_cpf
from protocol_svc.domain import (
    DEMAND_OPEN,
    PROTOCOL_ANSWERED,
    PROTOCOL_OPEN,
    calendar_spec,
    request_fingerprint,
)
from protocol_svc.numbering import SequenceAllocator
from protocol_svc.schemas import (
    ANS_PATTERN,
    AnswerIn,
    AnswerOut,
    BeneficiaryIn,
    ComplaintIn,
    ComplaintOut,
    DemandIn,
    DemandOut,
    InteractionIn,
    InteractionOut,
    OperatorIn,
    OperatorOut,
    ProtocolCreated,
    ProtocolIn,
    ProtocolOut,
    ProtocolPage,
    ProtocolSummary,
    ReanalysisIn,
    StatusChange,
)
from rn623_events.auth import Principal, ensure_operator, require_scopes
from rn623_events.clock import Clock
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import (
    ComplaintRegistered,
    DemandAnswered,
    DemandReanalysisRequested,
    DemandRegistered,
    InteractionRecorded,
    ProtocolOpened,
)
from rn623_events.db import UnitOfWork
from rn623_events.problems import ProblemError, problem_type
from rn623_rulebook import NoDeadlineRuleError, calendar_for, deadline_for, get_layout
from rn623_rulebook.protocol_numbers import ProtocolLayout, SequenceExhausted

PROTOCOLS_OPENED = Counter(
    "protocols_opened_total", "Protocol numbers issued", ["operator", "channel"]
)
DEMANDS_REGISTERED = Counter(
    "demands_registered_total", "Demands registered", ["operator", "demand_type"]
)


@functools.cache
def time_zone(name: str) -> ZoneInfo:
    """The time zone called ``name`` (ZoneInfo's own cache is weak and reloads often)."""
    return ZoneInfo(name)


# A demand may be registered with the moment the beneficiary asked; a little clock skew
# between the contact center and us is tolerated, a request from the future is not.
MAX_CLOCK_SKEW = timedelta(minutes=5)


# Operator registrations change rarely and are read by every issuance: each process
# keeps them this long (a PUT through this process refreshes its copy at once).
OPERATOR_CACHE_SECONDS = 10.0


@dataclass
class Runtime:
    """What handlers need: the database, the sequence allocator, the clock."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    allocator: SequenceAllocator
    clock: Clock
    source: str
    _operators: dict[str, tuple[float, Mapping[Any, Any]]] = field(default_factory=dict)

    def uow(self) -> UnitOfWork:
        """A new unit of work."""
        return UnitOfWork(self.sessions, source=self.source, clock=self.clock)

    async def operator(self, session: AsyncSession, ans_registry: str) -> Mapping[Any, Any] | None:
        """The operator's registration, from this process's short-lived cache or the database."""
        cached = self._operators.get(ans_registry)
        now = self.clock.monotonic()
        if cached is not None and now - cached[0] < OPERATOR_CACHE_SECONDS:
            return cached[1]
        row = await repo.get_operator(session, ans_registry)
        if row is not None:
            self._operators[ans_registry] = (now, dict(row))
        return row

    def forget_operator(self, ans_registry: str) -> None:
        """Drop a cached registration (it just changed)."""
        self._operators.pop(ans_registry, None)


def runtime(request: Request) -> Runtime:
    """The app's runtime (set up in the lifespan)."""
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]
AnsPath = Annotated[str, Path(pattern=ANS_PATTERN, description="ANS registration (6 digits).")]
NumberPath = Annotated[str, Path(pattern=r"^[0-9]{20,30}$", description="Protocol number.")]

router = APIRouter(prefix="/v1")


# ---- operators -------------------------------------------------------------------------


@router.put("/operators/{ans_registry}", response_model=OperatorOut, tags=["operators"])
async def put_operator(
    ans_registry: AnsPath,
    body: OperatorIn,
    response: Response,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("admin"))],
) -> OperatorOut:
    """Register an operator or change its registration; publishes ``operator.upserted``."""
    ensure_operator(principal, ans_registry)
    now = rt.clock.now()
    async with rt.uow() as uow:
        current = await repo.lock_operator(uow.session, ans_registry)
        values = {
            **body.model_dump(mode="json"),
            "ans_registry": ans_registry,
            "revision": (current["revision"] + 1) if current else 1,
            "updated_at": now,
        }
        await repo.save_operator(uow.session, values, exists=current is not None)
        uow.publish(OperatorUpserted.model_validate(values))
        await uow.commit()
    rt.forget_operator(ans_registry)
    response.status_code = 200 if current else 201
    return OperatorOut.model_validate(values)


@router.get("/operators/{ans_registry}", response_model=OperatorOut, tags=["operators"])
async def get_operator(
    ans_registry: AnsPath,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("protocols:read"))],
) -> OperatorOut:
    """An operator's registration."""
    ensure_operator(principal, ans_registry)
    async with rt.sessions() as session:
        operator = await repo.get_operator(session, ans_registry)
    if operator is None:
        raise ProblemError(404, "Not Found", "operator is not registered")
    return OperatorOut.model_validate(dict(operator))


# ---- protocols ---------------------------------------------------------------------------


@router.post(
    "/protocols",
    status_code=201,
    response_model=ProtocolCreated,
    tags=["protocols"],
    responses={200: {"model": ProtocolCreated, "description": "A retry: the same protocol."}},
)
async def open_protocol(
    body: ProtocolIn,
    response: Response,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("protocols:write"))],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> ProtocolCreated:
    """Issue a protocol number at the start of a contact (optionally with its first demand).

    Retries with the same ``Idempotency-Key`` header or ``contact_id`` return the same
    protocol with 200, never a second number.
    """
    ensure_operator(principal, body.operator)
    fingerprint = request_fingerprint(body.model_dump(mode="json"))
    try:
        async with rt.uow() as uow:
            operator = await rt.operator(uow.session, body.operator)
            if operator is None:
                raise _unknown_operator()
            existing = await repo.find_protocol_by_key(
                uow.session,
                body.operator,
                idempotency_key=idempotency_key,
                contact_id=body.contact_id,
            )
            if existing is not None:
                return await _replay(uow.session, existing, fingerprint, response)
            number, opened_at = await _issue(
                uow,
                rt,
                operator,
                body.channel,
                body.direction,
                body.contact_id,
                idempotency_key,
                fingerprint,
                body.beneficiary,
            )
            demand = None
            if body.demand is not None:
                demand = await _register_demand(uow, operator, number, body.demand, opened_at)
            await uow.commit()
    except IntegrityError:
        # a concurrent retry with the same key committed first: answer with its protocol
        async with rt.sessions() as session:
            existing = await repo.find_protocol_by_key(
                session, body.operator, idempotency_key=idempotency_key, contact_id=body.contact_id
            )
            if existing is None:
                raise
            return await _replay(session, existing, fingerprint, response)
    return ProtocolCreated(protocol_number=number, opened_at=opened_at, demand=demand)


@router.get("/protocols", response_model=ProtocolPage, tags=["protocols"])
async def list_protocols(
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("protocols:read"))],
    operator: Annotated[str | None, Query(pattern=ANS_PATTERN)] = None,
    cpf: Annotated[
        str | None, Query(max_length=20, description="Beneficiary's CPF (digits or masked).")
    ] = None,
    status: Annotated[Literal["open", "answered"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ProtocolPage:
    """Protocols the caller may see, newest first, by operator, beneficiary and status."""
    if operator is not None:
        ensure_operator(principal, operator)
    try:
        digits = normalize_cpf(cpf, field="query.cpf") if cpf is not None else None
    except InvalidField as exc:
        raise _field_problem(exc.field, exc.reason, "invalid_cpf") from None
    after = _decode_cursor(cursor) if cursor is not None else None
    async with rt.sessions() as session:
        rows = await repo.list_protocols(
            session,
            operators=None if principal.all_operators else sorted(principal.operators),
            ans_registry=operator,
            cpf=digits,
            status=status,
            after=after,
            limit=limit + 1,
        )
    page = rows[:limit]
    return ProtocolPage(
        items=[
            ProtocolSummary(
                protocol_number=row["number"],
                operator=row["ans_registry"],
                channel=row["channel"],
                direction=row["direction"],
                opened_at=row["opened_at"].astimezone(time_zone(row["timezone"])),
                status=row["status"],
            )
            for row in page
        ],
        next_cursor=_encode_cursor(page[-1]) if len(rows) > limit else None,
    )


@router.get("/protocols/{number}", response_model=ProtocolOut, tags=["protocols"])
async def get_protocol(
    number: NumberPath,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("protocols:read"))],
) -> ProtocolOut:
    """A protocol with its demands and status history."""
    async with rt.sessions() as session:
        protocol = await _visible_protocol(session, number, principal)
        demand_rows, answer_rows, interaction_rows, history = await repo.protocol_details(
            session, number
        )
    zone = time_zone(protocol["timezone"])
    return ProtocolOut(
        protocol_number=protocol["number"],
        operator=protocol["ans_registry"],
        layout_id=protocol["layout_id"],
        channel=protocol["channel"],
        direction=protocol["direction"],
        opened_at=protocol["opened_at"].astimezone(zone),
        status=protocol["status"],
        contact_id=protocol["contact_id"],
        demands=[_demand_out(row, zone) for row in demand_rows],
        answers=[_answer_out(row, zone) for row in answer_rows],
        interactions=[_interaction_out(row, zone) for row in interaction_rows],
        status_history=[
            StatusChange(status=h["status"], reason=h["reason"], at=h["at"].astimezone(zone))
            for h in history
        ],
    )


@router.post(
    "/protocols/{number}/demands", status_code=201, response_model=DemandOut, tags=["demands"]
)
async def register_demand(
    number: NumberPath,
    body: DemandIn,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("protocols:write"))],
) -> DemandOut:
    """Register a demand on a protocol; its deadline comes from the rulebook."""
    async with rt.uow() as uow:
        protocol = await _visible_protocol(uow.session, number, principal)
        operator = await _operator_of(rt, uow.session, protocol)
        now = rt.clock.now().astimezone(time_zone(operator["timezone"]))
        demand = await _register_demand(uow, operator, number, body, now)
        await uow.commit()
    return demand


@router.post(
    "/protocols/{number}/demands/{demand_id}/answer",
    status_code=201,
    response_model=AnswerOut,
    tags=["demands"],
)
async def answer_demand(
    number: NumberPath,
    demand_id: uuid.UUID,
    body: AnswerIn,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("protocols:write"))],
) -> AnswerOut:
    """Give a demand its conclusive answer; generic or stalling texts are refused (422)."""
    problems = check_answer(body.outcome, body.text, body.legal_basis)
    if problems:
        raise ProblemError(
            422,
            "The answer is not conclusive",
            "; ".join(p.message for p in problems),
            problem_type("inconclusive-answer"),
            errors=[
                {"field": f"body.{p.field}", "message": p.message, "type": p.rule_id}
                for p in problems
            ],
        )
    async with rt.uow() as uow:
        protocol, demand = await _visible_demand(uow.session, number, demand_id, principal)
        if demand["status"] != DEMAND_OPEN:
            raise ProblemError(
                409,
                "Already answered",
                "this demand already has its answer",
                problem_type("answered"),
            )
        zone = time_zone(protocol["timezone"])
        now = rt.clock.now().astimezone(zone)
        values = {
            "id": uuid.uuid4(),
            "demand_id": demand_id,
            "protocol_number": number,
            "outcome": body.outcome,
            "text": body.text,
            "legal_basis": body.legal_basis,
            "answered_at": now,
            "answered_by": body.answered_by,
        }
        await repo.insert_answer(uow.session, values)
        remaining = await repo.open_demands(uow.session, number)
        await repo.record_status(
            uow.session,
            number,
            PROTOCOL_OPEN if remaining else PROTOCOL_ANSWERED,
            "demand answered",
            now,
        )
        uow.publish(
            DemandAnswered(
                protocol_number=number,
                ans_registry=protocol["ans_registry"],
                demand_id=demand_id,
                outcome=body.outcome,
                text=body.text,
                legal_basis=body.legal_basis,
                answered_at=now,
                answered_by=body.answered_by,
                reanalysis_allowed=reanalysis_allowed(body.outcome),
            )
        )
        await uow.commit()
    return _answer_out(values, zone)


@router.post(
    "/protocols/{number}/demands/{demand_id}/reanalysis",
    status_code=201,
    response_model=DemandOut,
    tags=["demands"],
)
async def request_reanalysis(
    number: NumberPath,
    demand_id: uuid.UUID,
    body: ReanalysisIn,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("protocols:write"))],
) -> DemandOut:
    """Ask the ouvidoria to re-analyse a denial or partial authorization."""
    async with rt.uow() as uow:
        protocol, demand = await _visible_demand(uow.session, number, demand_id, principal)
        answer = await repo.get_answer(uow.session, demand_id)
        if answer is None or not reanalysis_allowed(answer["outcome"]):
            raise ProblemError(
                409,
                "Re-analysis not allowed",
                "only a denial or a partial authorization can be re-analysed",
                problem_type("reanalysis-not-allowed"),
            )
        operator = await _operator_of(rt, uow.session, protocol)
        now = rt.clock.now().astimezone(time_zone(operator["timezone"]))
        request = DemandIn(
            demand_type="reanalysis",
            category=demand["category"],
            description=body.description,
            requested_at=body.requested_at,
        )
        created = await _register_demand(
            uow, operator, number, request, now, reanalysis_of=demand_id
        )
        uow.publish(
            DemandReanalysisRequested(
                protocol_number=number,
                ans_registry=protocol["ans_registry"],
                demand_id=demand_id,
                reanalysis_demand_id=created.id,
                requested_at=created.requested_at,
                registered_at=created.registered_at,
                due_at=created.due_at,
                deadline_rule_id=created.deadline_rule_id,
                deadline_legal_basis=created.deadline_legal_basis,
            )
        )
        await repo.record_status(uow.session, number, PROTOCOL_OPEN, "re-analysis requested", now)
        await uow.commit()
    return created


@router.post(
    "/protocols/{number}/interactions",
    status_code=201,
    response_model=InteractionOut,
    tags=["interactions"],
)
async def record_interaction(
    number: NumberPath,
    body: InteractionIn,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("protocols:write"))],
) -> InteractionOut:
    """Add a transcript, message, note or recording reference to the attendance."""
    async with rt.uow() as uow:
        protocol = await _visible_protocol(uow.session, number, principal)
        zone = time_zone(protocol["timezone"])
        now = rt.clock.now().astimezone(zone)
        occurred_at = (body.occurred_at or now).astimezone(zone)
        if occurred_at > now + MAX_CLOCK_SKEW:
            raise _field_problem("body.occurred_at", "is in the future", "future_instant")
        values = {
            "id": uuid.uuid4(),
            "protocol_number": number,
            "kind": body.kind,
            "occurred_at": occurred_at,
            "author": body.author,
            "content": body.content,
            "recording_uri": body.recording_uri,
            "duration_seconds": body.duration_seconds,
        }
        await repo.insert_interaction(uow.session, values)
        uow.publish(
            InteractionRecorded(
                protocol_number=number,
                ans_registry=protocol["ans_registry"],
                interaction_id=values["id"],
                kind=body.kind,
                occurred_at=occurred_at,
                author=body.author,
                content=body.content,
                recording_uri=body.recording_uri,
                duration_seconds=body.duration_seconds,
            )
        )
        await uow.commit()
    return _interaction_out(values, zone)


@router.post("/complaints", status_code=201, response_model=ComplaintOut, tags=["complaints"])
async def register_complaint(
    body: ComplaintIn,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("protocols:write"))],
) -> ComplaintOut:
    """Register a complaint (NIP, ouvidoria, SAC, consumidor.gov, Procon) on a protocol,
    opening one when none is given; publishes ``complaint.registered``."""
    ensure_operator(principal, body.operator)
    async with rt.uow() as uow:
        operator = await rt.operator(uow.session, body.operator)
        if operator is None:
            raise _unknown_operator()
        zone = time_zone(operator["timezone"])
        now = rt.clock.now().astimezone(zone)
        if body.protocol_number is not None:
            protocol = await _visible_protocol(uow.session, body.protocol_number, principal)
            if protocol["ans_registry"] != body.operator:
                raise _field_problem(
                    "body.protocol_number", "belongs to another operator", "wrong_operator"
                )
            number = body.protocol_number
        else:
            assert body.beneficiary is not None  # checked by ComplaintIn
            number, _ = await _issue(
                uow, rt, operator, body.channel, "inbound", None, None, None, body.beneficiary
            )
        if (
            body.demand_id is not None
            and await repo.get_demand(uow.session, number, body.demand_id) is None
        ):
            raise _field_problem(
                "body.demand_id", "is not a demand of this protocol", "unknown_demand"
            )
        received_at = (body.received_at or now).astimezone(zone)
        values = {
            "id": uuid.uuid4(),
            "protocol_number": number,
            "ans_registry": body.operator,
            "source": body.source,
            "classification": body.classification,
            "external_reference": body.external_reference,
            "received_at": received_at,
            "registered_at": now,
            "demand_id": body.demand_id,
        }
        await repo.insert_complaint(uow.session, values)
        uow.publish(
            ComplaintRegistered(
                protocol_number=number,
                ans_registry=body.operator,
                complaint_id=values["id"],
                source=body.source,
                classification=body.classification,
                external_reference=body.external_reference,
                received_at=received_at,
                registered_at=now,
                demand_id=body.demand_id,
            )
        )
        await uow.commit()
    return ComplaintOut(
        id=values["id"],
        protocol_number=number,
        source=body.source,
        received_at=received_at,
        registered_at=now,
    )


# ---- helpers -----------------------------------------------------------------------------


async def _issue(
    uow: UnitOfWork,
    rt: Runtime,
    operator: Mapping[Any, Any],
    channel: str,
    direction: str,
    contact_id: str | None,
    idempotency_key: str | None,
    fingerprint: str | None,
    beneficiary_in: BeneficiaryIn,
) -> tuple[str, datetime]:
    """Issue a protocol number and record the protocol; publishes ``protocol.opened``."""
    layout = get_layout(operator["protocol_layout"])
    opened_at = rt.clock.now().astimezone(time_zone(operator["timezone"]))
    ans_registry = operator["ans_registry"]
    number = layout.format(
        ans_registry, opened_at.date(), await _next_sequence(rt, ans_registry, opened_at, layout)
    )
    beneficiary = beneficiary_in.model_dump(mode="json")
    await repo.insert_protocol(
        uow.session,
        {
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
            "beneficiary": beneficiary,
            "beneficiary_cpf": beneficiary_in.cpf,
        },
    )
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
            beneficiary=beneficiary,
        )
    )
    PROTOCOLS_OPENED.labels(ans_registry, channel).inc()
    return number, opened_at


async def _next_sequence(
    rt: Runtime, ans_registry: str, opened_at: datetime, layout: ProtocolLayout
) -> int:
    """The next sequence number of the operator's local day (409 when the day is full)."""
    try:
        return await rt.allocator.next(ans_registry, opened_at.date(), layout)
    except SequenceExhausted as exc:
        raise ProblemError(
            409,
            "Daily protocol capacity exhausted",
            str(exc),
            problem_type("sequence-exhausted"),
            layout=exc.layout_id,
            daily_capacity=exc.daily_capacity,
            suggested_layout=exc.suggested_layout_id,
        ) from None


async def _register_demand(
    uow: UnitOfWork,
    operator: Mapping[Any, Any],
    number: str,
    body: DemandIn,
    now: datetime,
    *,
    reanalysis_of: uuid.UUID | None = None,
) -> DemandOut:
    requested_at = (body.requested_at or now).astimezone(now.tzinfo)
    if requested_at > now + MAX_CLOCK_SKEW:
        raise _field_problem("body.demand.requested_at", "is in the future", "future_instant")
    try:
        deadline = deadline_for(
            body.demand_type, body.category, requested_at, calendar_for(calendar_spec(operator))
        )
    except NoDeadlineRuleError as exc:
        raise _field_problem("body.demand.demand_type", str(exc), "no_deadline_rule") from None
    values = {
        "id": uuid.uuid4(),
        "protocol_number": number,
        "ans_registry": operator["ans_registry"],
        "demand_type": body.demand_type,
        "category": body.category,
        "description": body.description,
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
            demand_type=body.demand_type,
            category=body.category,
            description=body.description,
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
        )
    )
    DEMANDS_REGISTERED.labels(operator["ans_registry"], body.demand_type).inc()
    return _demand_out(values, now.tzinfo)


async def _replay(
    session: AsyncSession, protocol: Mapping[Any, Any], fingerprint: str, response: Response
) -> ProtocolCreated:
    """Answer a retry with the protocol it already produced."""
    if protocol["request_fingerprint"] not in (None, fingerprint):
        raise ProblemError(
            422,
            "Idempotency key reused",
            "this Idempotency-Key or contact_id was used for a different request",
            problem_type("idempotency-key-reused"),
        )
    zone = time_zone(protocol["timezone"])
    demand_rows, *_ = await repo.protocol_details(session, protocol["number"])
    response.status_code = 200
    return ProtocolCreated(
        protocol_number=protocol["number"],
        opened_at=protocol["opened_at"].astimezone(zone),
        demand=_demand_out(demand_rows[0], zone) if demand_rows else None,
    )


async def _visible_protocol(
    session: AsyncSession, number: str, principal: Principal
) -> Mapping[Any, Any]:
    """The protocol if it exists and the caller may act for its operator; else 404."""
    protocol = await repo.get_protocol(session, number)
    if protocol is None or not principal.can_act_for(protocol["ans_registry"]):
        raise ProblemError(404, "Not Found", "no such protocol")
    return protocol


async def _visible_demand(
    session: AsyncSession, number: str, demand_id: uuid.UUID, principal: Principal
) -> tuple[Mapping[Any, Any], Mapping[Any, Any]]:
    """The protocol and one of its demands (locked), if the caller may see them; else 404."""
    protocol = await _visible_protocol(session, number, principal)
    demand = await repo.get_demand(session, number, demand_id)
    if demand is None:
        raise ProblemError(404, "Not Found", "no such demand on this protocol")
    return protocol, demand


async def _operator_of(
    rt: Runtime, session: AsyncSession, protocol: Mapping[Any, Any]
) -> Mapping[Any, Any]:
    """The registration of a protocol's operator (protocols always reference one)."""
    operator = await rt.operator(session, protocol["ans_registry"])
    assert operator is not None
    return operator


def _demand_out(row: Mapping[Any, Any], zone: Any) -> DemandOut:
    return DemandOut(
        id=row["id"],
        demand_type=row["demand_type"],
        category=row["category"],
        description=row["description"],
        status=row["status"],
        requested_at=row["requested_at"].astimezone(zone),
        registered_at=row["registered_at"].astimezone(zone),
        due_at=row["due_at"].astimezone(zone),
        immediate=row["immediate"],
        deadline_rule_id=row["deadline_rule_id"],
        deadline_legal_basis=row["deadline_legal_basis"],
    )


def _answer_out(row: Mapping[Any, Any], zone: Any) -> AnswerOut:
    return AnswerOut(
        id=row["id"],
        demand_id=row["demand_id"],
        outcome=row["outcome"],
        text=row["text"],
        legal_basis=row["legal_basis"],
        answered_at=row["answered_at"].astimezone(zone),
        answered_by=row["answered_by"],
        reanalysis_allowed=reanalysis_allowed(row["outcome"]),
    )


def _interaction_out(row: Mapping[Any, Any], zone: Any) -> InteractionOut:
    return InteractionOut(
        id=row["id"],
        kind=row["kind"],
        occurred_at=row["occurred_at"].astimezone(zone),
        author=row["author"],
        content=row["content"],
        recording_uri=row["recording_uri"],
        duration_seconds=row["duration_seconds"],
    )


def _encode_cursor(row: Mapping[Any, Any]) -> str:
    """An opaque keyset cursor: the last item's (opened_at, number)."""
    raw = f"{row['opened_at'].isoformat()}|{row['number']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        opened_at, number = raw.split("|")
        return datetime.fromisoformat(opened_at), number
    except ValueError:
        raise _field_problem(
            "query.cursor", "is not a cursor from this API", "bad_cursor"
        ) from None


def _unknown_operator() -> ProblemError:
    return _field_problem("body.operator", "operator is not registered", "unknown_operator")


def _field_problem(field: str, message: str, kind: str) -> ProblemError:
    return ProblemError(
        422,
        "Request validation failed",
        "1 invalid field(s)",
        problem_type("validation"),
        errors=[{"field": field, "message": message, "type": kind}],
    )
