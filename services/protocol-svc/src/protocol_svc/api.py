"""HTTP API of protocol-svc (v1)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from protocol_svc import operations as ops
from protocol_svc import repository as repo
from protocol_svc.answers import reanalysis_allowed
from protocol_svc.domain import request_fingerprint
from protocol_svc.operations import Runtime, time_zone
from protocol_svc.schemas import (
    ANS_PATTERN,
    AnswerIn,
    AnswerOut,
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
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.cursors import bad_cursor, decode_cursor, encode_cursor
from rn623_events.db import UnitOfWork
from rn623_events.http import app_runtime
from rn623_events.openapi import problem_responses
from rn623_events.problems import ProblemError, field_problem, problem_type
from rn623_rulebook.contact_data import InvalidField, normalize_cpf

RuntimeDep = Annotated[Runtime, Depends(app_runtime)]
AnsPath = Annotated[str, Path(pattern=ANS_PATTERN, description="ANS registration (6 digits).")]
NumberPath = Annotated[str, Path(pattern=r"^[0-9]{20,30}$", description="Protocol number.")]

router = APIRouter(prefix="/v1")


@contextmanager
def problems(at: str = "body.") -> Iterator[None]:
    """Turn an operation's refusal into problem+json; ``at`` prefixes the fields it names."""
    try:
        yield
    except ops.InvalidInput as exc:
        raise field_problem(at + exc.field, exc.message, exc.kind) from None
    except ops.NotFound as exc:
        raise ProblemError(404, "Not Found", str(exc)) from None
    except ops.Conflict as exc:
        raise ProblemError(
            409, exc.title, exc.detail, problem_type(exc.kind), **exc.extra
        ) from None
    except ops.InconclusiveAnswer as exc:
        raise ProblemError(
            422,
            "The answer is not conclusive",
            "; ".join(p.message for p in exc.problems),
            problem_type("inconclusive-answer"),
            errors=[
                {"field": at + p.field, "message": p.message, "type": p.rule_id}
                for p in exc.problems
            ],
        ) from None


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


@router.get(
    "/operators/{ans_registry}",
    response_model=OperatorOut,
    tags=["operators"],
    responses=problem_responses(404),
)
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
    responses={
        200: {"model": ProtocolCreated, "description": "A retry: the same protocol."},
        **problem_responses(409),
    },
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

    async def issue(uow: UnitOfWork) -> ProtocolCreated:
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
        with problems():
            protocol = await ops.open_protocol(
                uow,
                rt,
                operator,
                channel=body.channel,
                direction=body.direction,
                beneficiary=body.beneficiary,
                contact_id=body.contact_id,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
            )
            demand = None
            if body.demand is not None:
                demand = await ops.register_demand(
                    uow,
                    operator,
                    protocol["number"],
                    body.demand,
                    protocol["opened_at"],
                    at="demand.",
                )
        # set both ways: this work may run twice (see rn623_events.group_commit)
        response.status_code = 201
        zone = protocol["opened_at"].tzinfo
        return ProtocolCreated(
            protocol_number=protocol["number"],
            opened_at=protocol["opened_at"],
            demand=_demand_out(demand, zone) if demand is not None else None,
        )

    try:
        return await rt.issuance.run(issue)
    except IntegrityError:
        # a concurrent retry with the same key committed first: answer with its protocol
        async with rt.sessions() as session:
            existing = await repo.find_protocol_by_key(
                session, body.operator, idempotency_key=idempotency_key, contact_id=body.contact_id
            )
            if existing is None:
                raise
            return await _replay(session, existing, fingerprint, response)


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
        raise field_problem(exc.field, exc.reason, "invalid_cpf") from None
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


@router.get(
    "/protocols/{number}",
    response_model=ProtocolOut,
    tags=["protocols"],
    responses=problem_responses(404),
)
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
        anonymized_at=(
            protocol["anonymized_at"].astimezone(zone) if protocol["anonymized_at"] else None
        ),
        demands=[_demand_out(row, zone) for row in demand_rows],
        answers=[_answer_out(row, zone) for row in answer_rows],
        interactions=[_interaction_out(row, zone) for row in interaction_rows],
        status_history=[
            StatusChange(status=h["status"], reason=h["reason"], at=h["at"].astimezone(zone))
            for h in history
        ],
    )


@router.post(
    "/protocols/{number}/demands",
    status_code=201,
    response_model=DemandOut,
    tags=["demands"],
    responses=problem_responses(404),
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
        operator = await rt.operator_of(uow.session, protocol)
        now = rt.now_in(operator["timezone"])
        with problems():
            demand = await ops.register_demand(uow, operator, number, body, now)
        await uow.commit()
    return _demand_out(demand, now.tzinfo)


@router.post(
    "/protocols/{number}/demands/{demand_id}/answer",
    status_code=201,
    response_model=AnswerOut,
    tags=["demands"],
    responses=problem_responses(404, 409),
)
async def answer_demand(
    number: NumberPath,
    demand_id: uuid.UUID,
    body: AnswerIn,
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("protocols:write"))],
) -> AnswerOut:
    """Give a demand its conclusive answer; generic or stalling texts are refused (422)."""
    async with rt.uow() as uow:
        protocol = await _visible_protocol(uow.session, number, principal)
        with problems():
            demand = await ops.find_demand(uow.session, number, demand_id)
            answer = await ops.answer_demand(
                uow,
                rt,
                protocol,
                demand,
                outcome=body.outcome,
                text=body.text,
                legal_basis=body.legal_basis,
                answered_by=body.answered_by,
            )
        await uow.commit()
    return _answer_out(answer, time_zone(protocol["timezone"]))


@router.post(
    "/protocols/{number}/demands/{demand_id}/reanalysis",
    status_code=201,
    response_model=DemandOut,
    tags=["demands"],
    responses=problem_responses(404, 409),
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
        protocol = await _visible_protocol(uow.session, number, principal)
        with problems():
            demand = await ops.find_demand(uow.session, number, demand_id)
            created = await ops.request_reanalysis(
                uow,
                rt,
                protocol,
                demand,
                requested_at=body.requested_at,
                description=body.description,
            )
        await uow.commit()
    return _demand_out(created, time_zone(protocol["timezone"]))


@router.post(
    "/protocols/{number}/interactions",
    status_code=201,
    response_model=InteractionOut,
    tags=["interactions"],
    responses=problem_responses(404),
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
        with problems():
            interaction = await ops.record_interaction(uow, rt, protocol, body)
        await uow.commit()
    return _interaction_out(interaction, time_zone(protocol["timezone"]))


@router.post(
    "/complaints",
    status_code=201,
    response_model=ComplaintOut,
    tags=["complaints"],
    responses=problem_responses(404, 409),
)
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
        with problems():
            if body.protocol_number is not None:
                protocol = await _visible_protocol(uow.session, body.protocol_number, principal)
                if protocol["ans_registry"] != body.operator:
                    raise ops.InvalidInput(
                        "protocol_number", "belongs to another operator", "wrong_operator"
                    )
            else:
                assert body.beneficiary is not None  # checked by ComplaintIn
                protocol = await ops.open_protocol(
                    uow,
                    rt,
                    operator,
                    channel=body.channel,
                    direction="inbound",
                    beneficiary=body.beneficiary,
                )
            complaint = await ops.register_complaint(
                uow,
                rt,
                operator,
                protocol,
                ops.ComplaintFacts(
                    source=body.source,
                    classification=body.classification,
                    external_reference=body.external_reference,
                    received_at=body.received_at,
                    demand_id=body.demand_id,
                    coverage=body.coverage,
                ),
            )
        await uow.commit()
    return ComplaintOut(
        id=complaint["id"],
        protocol_number=protocol["number"],
        source=body.source,
        coverage=complaint["coverage"],
        received_at=complaint["received_at"],
        registered_at=complaint["registered_at"],
    )


# ---- helpers -----------------------------------------------------------------------------


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
    return encode_cursor((row["opened_at"].isoformat(), row["number"]))


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    opened_at, number = decode_cursor(cursor, 2)
    try:
        moment = datetime.fromisoformat(opened_at)
    except ValueError:
        raise bad_cursor() from None
    if moment.utcoffset() is None:
        raise bad_cursor()
    return moment, number


def _unknown_operator() -> ProblemError:
    return field_problem("body.operator", "operator is not registered", "unknown_operator")
