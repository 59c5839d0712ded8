"""HTTP API of retention-svc (v1): retention schedules, legal holds, records-access requests,
disposal certificates and purges.

Scopes: ``retention:read`` to read, ``retention:write`` to place or release holds and open
access requests, ``records:read`` for an access request's bundle (personal data). Every
query is scoped to the operators the caller may act for; another tenant's resources are
reported as unknown (404).
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import anyio.from_thread
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from retention_svc import domain
from retention_svc import queries as q
from retention_svc import repository as repo
from retention_svc.runtime import Runtime
from retention_svc.schemas import (
    ANS_PATTERN,
    PROTOCOL_PATTERN,
    AccessRequestIn,
    AccessRequestOut,
    AccessRequestPage,
    AccessStatus,
    CertificateOut,
    CertificatePage,
    ChainVerificationOut,
    HoldAuditOut,
    HoldDetailOut,
    HoldIn,
    HoldOut,
    HoldPage,
    PurgeOut,
    PurgePage,
    PurgePreviewItem,
    PurgePreviewOut,
    PurgeStatus,
    RetentionEntryOut,
    RetentionOut,
)
from rn623_events.auth import Principal, ensure_operator, require_scopes
from rn623_events.contracts.retention import AccessRequestOpened
from rn623_events.cursors import bad_cursor, decode_cursor, encode_cursor
from rn623_events.http import app_runtime
from rn623_events.openapi import problem_responses
from rn623_events.problems import ProblemError, field_problem, problem_type
from rn623_rulebook import registries_of
from rn623_rulebook.calendars import DEFAULT_TIMEZONE

log = logging.getLogger(__name__)

READ_SCOPE, WRITE_SCOPE, RECORDS_SCOPE = "retention:read", "retention:write", "records:read"
CHAIN_PAGE = 1000  # certificates read per query while verifying a chain


RuntimeDep = Annotated[Runtime, Depends(app_runtime)]
Reader = Annotated[Principal, Depends(require_scopes(READ_SCOPE))]
Writer = Annotated[Principal, Depends(require_scopes(WRITE_SCOPE))]
RecordsReader = Annotated[Principal, Depends(require_scopes(RECORDS_SCOPE))]
OperatorFilter = Annotated[
    str | None, Query(pattern=ANS_PATTERN, description="ANS registration (6 digits).")
]
OperatorRequired = Annotated[
    str, Query(pattern=ANS_PATTERN, description="ANS registration (6 digits).")
]
ProtocolFilter = Annotated[str | None, Query(pattern=PROTOCOL_PATTERN, description="Protocol.")]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=200)]

router = APIRouter(prefix="/v1")


# ---- retention -----------------------------------------------------------------------------


@router.get(
    "/retention",
    response_model=RetentionOut,
    tags=["retention"],
    responses=problem_responses(404),
)
async def get_retention(
    rt: RuntimeDep,
    principal: Reader,
    protocol: Annotated[str, Query(pattern=PROTOCOL_PATTERN, description="Protocol number.")],
) -> RetentionOut:
    """A protocol's retention facts and, per record class, until when it is kept, its purge
    status and the legal holds suspending its purge."""
    async with rt.sessions() as session:
        facts = await q.get_protocol(session, protocol)
        if facts is None or not principal.can_act_for(facts["ans_registry"]):
            raise _not_found("protocol")
        schedule = await repo.schedule_of(session, protocol)
        hold_ids = await q.holds_covering(session, facts)
    zone = _zone(facts["timezone"])
    return RetentionOut(
        protocol_number=facts["protocol_number"],
        operator=facts["ans_registry"],
        timezone=facts["timezone"],
        contact_at=facts["contact_at"].astimezone(zone),
        complaint_at=_local(facts["complaint_at"], zone),
        beneficiary_known=facts["beneficiary_key"] is not None,
        held=bool(hold_ids),
        hold_ids=hold_ids,
        entries=[
            RetentionEntryOut(
                record_class=record_class,
                retain_until=_local(entry["retain_until"], zone),
                status=entry["status"],
                purge_request_id=entry["purge_request_id"],
                held=bool(hold_ids),
                hold_ids=hold_ids,
            )
            for record_class, entry in sorted(schedule.items())
        ],
    )


# ---- legal holds ---------------------------------------------------------------------------


@router.post("/legal-holds", status_code=201, response_model=HoldOut, tags=["legal holds"])
async def place_hold(
    body: HoldIn, response: Response, rt: RuntimeDep, principal: Writer
) -> HoldOut:
    """Place a legal hold: no record it covers (a protocol, a beneficiary's protocols or the
    whole operator) is purged until it is released."""
    ensure_operator(principal, body.operator)
    mismatch = body.scope_problem()
    if mismatch is not None:
        field, message, kind = mismatch
        raise field_problem(f"body.{field}", message, kind)
    key = None
    if body.beneficiary is not None:
        key = domain.beneficiary_key(
            rt.beneficiary_secret,
            body.operator,
            cpf=body.beneficiary.cpf,
            card_number=body.beneficiary.card_number,
        )
    now = rt.clock.now()
    hold: dict[str, Any] = {
        "id": uuid.uuid4(),
        "ans_registry": body.operator,
        "scope": body.scope,
        "protocol_number": body.protocol_number,
        "beneficiary_key": key,
        "reason": body.reason,
        "placed_by": principal.subject,
        "placed_at": now,
        "released_by": None,
        "released_at": None,
        "release_reason": None,
    }
    async with rt.uow() as uow:
        # waits for a purge batch in flight: once this commits, no batch requests held records
        await repo.lock_holds(uow.session, placing=True)
        if body.protocol_number is not None:
            await _check_protocol_operator(uow.session, body.protocol_number, body.operator)
        await q.insert_hold(uow.session, hold)
        await q.add_hold_audit(
            uow.session, hold["id"], "placed", principal.subject, now, body.reason
        )
        await uow.commit()
    log.info(
        "legal hold placed",
        extra={"hold_id": str(hold["id"]), "operator": body.operator, "scope": body.scope},
    )
    response.headers["Location"] = f"/v1/legal-holds/{hold['id']}"
    return _hold_out(hold)


@router.get("/legal-holds", response_model=HoldPage, tags=["legal holds"])
async def list_holds(
    rt: RuntimeDep,
    principal: Reader,
    operator: OperatorFilter = None,
    active: Annotated[bool | None, Query(description="Only active or only released.")] = None,
    protocol: Annotated[
        str | None,
        Query(pattern=PROTOCOL_PATTERN, description="Holds placed on this protocol."),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> HoldPage:
    """Legal holds the caller may see, newest first."""
    if operator is not None:
        ensure_operator(principal, operator)
    after = _decode_time_id(cursor) if cursor is not None else None
    async with rt.sessions() as session:
        rows = await q.list_holds(
            session,
            operators=_operators(principal),
            ans_registry=operator,
            active=active,
            protocol_number=protocol,
            after=after,
            limit=limit + 1,
        )
    page = rows[:limit]
    return HoldPage(
        items=[_hold_out(row) for row in page],
        next_cursor=_time_id_cursor(page[-1], "placed_at") if len(rows) > limit else None,
    )


@router.get(
    "/legal-holds/{hold_id}",
    response_model=HoldDetailOut,
    tags=["legal holds"],
    responses=problem_responses(404),
)
async def get_hold(hold_id: uuid.UUID, rt: RuntimeDep, principal: Reader) -> HoldDetailOut:
    """A legal hold with its audit trail."""
    async with rt.sessions() as session:
        hold = await q.get_hold(session, hold_id)
        if hold is None or not principal.can_act_for(hold["ans_registry"]):
            raise _not_found("legal hold")
        audit = await q.hold_audit_of(session, hold_id)
    return HoldDetailOut(
        **_hold_out(hold).model_dump(),
        audit=[
            HoldAuditOut(action=a["action"], actor=a["actor"], at=_utc(a["at"]), reason=a["reason"])
            for a in audit
        ],
    )


@router.delete(
    "/legal-holds/{hold_id}",
    response_model=HoldOut,
    tags=["legal holds"],
    responses=problem_responses(404, 409),
)
async def release_hold(
    hold_id: uuid.UUID,
    rt: RuntimeDep,
    principal: Writer,
    reason: Annotated[
        str, Query(min_length=1, max_length=1000, description="Why the hold is released.")
    ],
) -> HoldOut:
    """Release a legal hold; the purges it suspended resume (409 if already released)."""
    reason = reason.strip()
    if not reason:
        raise field_problem("query.reason", "must not be blank", "string_too_short")
    now = rt.clock.now()
    async with rt.uow() as uow:
        hold = await q.get_hold(uow.session, hold_id, lock=True)
        if hold is None or not principal.can_act_for(hold["ans_registry"]):
            raise _not_found("legal hold")
        if hold["released_at"] is not None:
            raise ProblemError(
                409,
                "Hold already released",
                "this legal hold was already released",
                problem_type("hold-already-released"),
            )
        released = await q.release_hold(uow.session, hold_id, principal.subject, now, reason)
        await q.add_hold_audit(uow.session, hold_id, "released", principal.subject, now, reason)
        await uow.commit()
    log.info(
        "legal hold released",
        extra={"hold_id": str(hold_id), "operator": hold["ans_registry"]},
    )
    return _hold_out(released)


# ---- access requests -----------------------------------------------------------------------


@router.post(
    "/access-requests", status_code=202, response_model=AccessRequestOut, tags=["access requests"]
)
async def open_access_request(
    body: AccessRequestIn, response: Response, rt: RuntimeDep, principal: Writer
) -> AccessRequestOut:
    """Open a records-access request (a free copy of the records, due in 72 hours); the
    bundle is collected in the background. Publishes ``access_request.opened``."""
    ensure_operator(principal, body.operator)
    now = rt.clock.now()
    async with rt.uow() as uow:
        known = await _check_protocol_operator(uow.session, body.protocol_number, body.operator)
        timezone = known["timezone"] if known is not None else DEFAULT_TIMEZONE
        deadline = await run_in_threadpool(domain.access_deadline, now, timezone)
        request: dict[str, Any] = {
            "id": uuid.uuid4(),
            "ans_registry": body.operator,
            "protocol_number": body.protocol_number,
            "scope": body.scope,
            "requested_by": principal.subject,
            "requested_at": now,
            "due_at": deadline.due_at,
            "rule_id": deadline.rule_id,
            "legal_basis": deadline.legal_basis,
            "ruleset_id": deadline.ruleset_id,
            "status": "open",
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": None,
            "fulfilled_at": None,
        }
        await q.insert_access_request(uow.session, request)
        uow.publish(
            AccessRequestOpened(
                request_id=request["id"],
                protocol_number=body.protocol_number,
                ans_registry=body.operator,
                requested_at=now,
                due_at=deadline.due_at,
                rule_id=deadline.rule_id,
                legal_basis=deadline.legal_basis,
                ruleset_id=deadline.ruleset_id,
            )
        )
        await uow.commit()
    log.info(
        "access request opened",
        extra={"request_id": str(request["id"]), "operator": body.operator, "scope": body.scope},
    )
    response.headers["Location"] = f"/v1/access-requests/{request['id']}"
    return _access_out({**request, "timezone": timezone})


@router.get("/access-requests", response_model=AccessRequestPage, tags=["access requests"])
async def list_access_requests(
    rt: RuntimeDep,
    principal: Reader,
    operator: OperatorFilter = None,
    status: Annotated[AccessStatus | None, Query()] = None,
    protocol: ProtocolFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AccessRequestPage:
    """Access requests the caller may see, newest first."""
    if operator is not None:
        ensure_operator(principal, operator)
    after = _decode_time_id(cursor) if cursor is not None else None
    async with rt.sessions() as session:
        rows = await q.list_access_requests(
            session,
            operators=_operators(principal),
            ans_registry=operator,
            status=status,
            protocol_number=protocol,
            after=after,
            limit=limit + 1,
        )
    page = rows[:limit]
    return AccessRequestPage(
        items=[_access_out(row) for row in page],
        next_cursor=_time_id_cursor(page[-1], "requested_at") if len(rows) > limit else None,
    )


@router.get(
    "/access-requests/{request_id}",
    response_model=AccessRequestOut,
    tags=["access requests"],
    responses=problem_responses(404),
)
async def get_access_request(
    request_id: uuid.UUID, rt: RuntimeDep, principal: Reader
) -> AccessRequestOut:
    """An access request's status and deadline (the bundle itself needs ``records:read``)."""
    async with rt.sessions() as session:
        row = await q.get_access_request(session, request_id)
    if row is None or not principal.can_act_for(row["ans_registry"]):
        raise _not_found("access request")
    return _access_out(row)


@router.get(
    "/access-requests/{request_id}/bundle",
    tags=["access requests"],
    response_class=JSONResponse,
    responses={
        200: {"description": "The records bundle as collected (personal data)."},
        409: {"description": "The request is still open, or was rejected."},
        **problem_responses(404, 410),
    },
)
async def get_access_bundle(
    request_id: uuid.UUID, rt: RuntimeDep, principal: RecordsReader
) -> JSONResponse:
    """The bundle of a fulfilled access request: the beneficiary's records (personal data)."""
    async with rt.sessions() as session:
        row = await q.access_bundle(session, request_id)
    if row is None or not principal.can_act_for(row["ans_registry"]):
        raise _not_found("access request")
    if row["status"] == "fulfilled" and row["bundle"] is None:
        raise ProblemError(
            410,
            "Bundle removed",
            "the records it held reached the end of their retention and were disposed of",
            problem_type("access-bundle-removed"),
        )
    if row["status"] != "fulfilled":
        raise ProblemError(
            409,
            "Access request not fulfilled",
            "the records are still being collected; retry later"
            if row["status"] == "open"
            else "the request names a protocol of another operator and was rejected",
            problem_type(f"access-request-{row['status']}"),
        )
    log.info(
        "access bundle read", extra={"request_id": str(request_id), "subject": principal.subject}
    )
    return JSONResponse(row["bundle"], headers={"Cache-Control": "no-store"})


# ---- disposal certificates -----------------------------------------------------------------


@router.get(
    "/disposal-certificates/verify",
    response_model=ChainVerificationOut,
    tags=["disposal certificates"],
)
async def verify_certificates(
    rt: RuntimeDep, principal: Reader, operator: OperatorRequired
) -> ChainVerificationOut:
    """Recompute every hash and link of an operator's certificate chain and compare its last
    certificate with the chain head (which reveals certificates removed from the end)."""
    ensure_operator(principal, operator)
    async with rt.sessions() as session:
        # one snapshot: certificates appended meanwhile neither break nor extend the walk
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
        head = await q.chain_head(session, operator)
        total = await q.count_certificates(session, operator)
        last: list[Mapping[str, Any]] = []

        def chain() -> Iterator[Mapping[str, Any]]:
            """The chain page by page (runs in a worker thread, queries on the event loop)."""
            after = 0
            while True:
                page = anyio.from_thread.run(repo.chain_of, session, operator, after, CHAIN_PAGE)
                for certificate in page:
                    last[:] = [certificate]
                    yield certificate
                if len(page) < CHAIN_PAGE:
                    return
                after = page[-1]["sequence"]

        # hashing thousands of certificates is CPU work: keep it off the event loop
        check = await run_in_threadpool(domain.verify_chain, chain())
    valid, broken_at, problem = check.valid, check.broken_at_sequence, check.problem
    if valid:
        valid, broken_at, problem = _check_head(head, check.certificates, last)
    if not valid:
        log.warning("certificate chain broken", extra={"operator": operator, "problem": problem})
    return ChainVerificationOut(
        operator=operator,
        certificates=total,
        valid=valid,
        broken_at_sequence=broken_at,
        problem=problem,
        head_sequence=head["sequence"] if head is not None else None,
    )


def _check_head(
    head: Mapping[str, Any] | None, walked: int, last: list[Mapping[str, Any]]
) -> tuple[bool, int | None, str | None]:
    """Compare an intact chain of ``walked`` certificates with its head row."""
    if head is None:
        return (False, None, "head_missing") if walked else (True, None, None)
    if head["sequence"] != walked:
        return False, min(head["sequence"], walked) + 1, "head_sequence_mismatch"
    if head["hash"] != (last[0]["hash"] if last else domain.GENESIS_HASH):
        return False, walked or None, "head_hash_mismatch"
    return True, None, None


@router.get(
    "/disposal-certificates", response_model=CertificatePage, tags=["disposal certificates"]
)
async def list_certificates(
    rt: RuntimeDep,
    principal: Reader,
    operator: OperatorFilter = None,
    protocol: ProtocolFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CertificatePage:
    """Disposal certificates the caller may see, in chain order per operator."""
    if operator is not None:
        ensure_operator(principal, operator)
    after = _decode_chain_cursor(cursor) if cursor is not None else None
    async with rt.sessions() as session:
        rows = await q.list_certificates(
            session,
            operators=_operators(principal),
            ans_registry=operator,
            protocol_number=protocol,
            after=after,
            limit=limit + 1,
        )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor((page[-1]["ans_registry"], page[-1]["sequence"]))
    return CertificatePage(items=[_certificate_out(row) for row in page], next_cursor=next_cursor)


@router.get(
    "/disposal-certificates/{certificate_id}",
    response_model=CertificateOut,
    tags=["disposal certificates"],
    responses=problem_responses(404),
)
async def get_certificate(
    certificate_id: uuid.UUID, rt: RuntimeDep, principal: Reader
) -> CertificateOut:
    """One disposal certificate."""
    async with rt.sessions() as session:
        row = await q.get_certificate(session, certificate_id)
    if row is None or not principal.can_act_for(row["ans_registry"]):
        raise _not_found("disposal certificate")
    return _certificate_out(row)


# ---- purges --------------------------------------------------------------------------------


@router.get("/purges/preview", response_model=PurgePreviewOut, tags=["purges"])
async def preview_purges(
    rt: RuntimeDep,
    principal: Reader,
    operator: OperatorRequired,
    as_of: Annotated[
        AwareDatetime | None, Query(description="Judge retention at this instant (default: now).")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PurgePreviewOut:
    """Dry run: the records the purge runner would ask their owners to purge at ``as_of``
    (past their retention and not under a legal hold). Nothing is changed."""
    ensure_operator(principal, operator)
    moment = as_of or rt.clock.now()
    after = _decode_preview_cursor(cursor) if cursor is not None else None
    async with rt.sessions() as session:
        rows = await q.preview_due(session, moment, operator, after=after, limit=limit + 1)
        total = await q.count_due(session, moment, operator)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        tail = page[-1]
        next_cursor = encode_cursor(
            (tail["retain_until"].isoformat(), tail["protocol_number"], tail["record_class"])
        )
    return PurgePreviewOut(
        operator=operator,
        as_of=moment,
        total=total,
        items=[
            PurgePreviewItem(
                protocol_number=row["protocol_number"],
                record_class=row["record_class"],
                retain_until=_utc(row["retain_until"]),
                owners=list(rt.owners.get(row["record_class"], ())),
            )
            for row in page
        ],
        next_cursor=next_cursor,
    )


@router.get("/purges", response_model=PurgePage, tags=["purges"])
async def list_purges(
    rt: RuntimeDep,
    principal: Reader,
    operator: OperatorFilter = None,
    status: Annotated[PurgeStatus | None, Query()] = None,
    protocol: ProtocolFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PurgePage:
    """Purge requests the caller may see, newest first, with the owners still to confirm."""
    if operator is not None:
        ensure_operator(principal, operator)
    after = _decode_time_id(cursor) if cursor is not None else None
    async with rt.sessions() as session:
        rows = await q.list_purges(
            session,
            operators=_operators(principal),
            ans_registry=operator,
            status=status,
            protocol_number=protocol,
            after=after,
            limit=limit + 1,
        )
    page = rows[:limit]
    return PurgePage(
        items=[_purge_out(row) for row in page],
        next_cursor=_time_id_cursor(page[-1], "requested_at") if len(rows) > limit else None,
    )


# ---- helpers -------------------------------------------------------------------------------


def _operators(principal: Principal) -> list[str] | None:
    """The operators a list is restricted to (None: every operator)."""
    return None if principal.all_operators else sorted(principal.operators)


def _not_found(what: str) -> ProblemError:
    """The same answer for unknown resources and other tenants' ones."""
    return ProblemError(404, "Not Found", f"no such {what}")


async def _check_protocol_operator(
    session: AsyncSession, protocol_number: str, ans_registry: str
) -> Mapping[str, Any] | None:
    """The protocol's facts if known here; a 422 when it belongs to another operator.

    A protocol number carries its operator's ANS registration, so another operator's
    number is refused whether or not it is known here: answering only for known ones would
    tell a caller which of another operator's numbers exist.
    """
    carried = registries_of(protocol_number)
    if carried and ans_registry not in carried:
        raise field_problem(
            "body.protocol_number", "is not a protocol of this operator", "wrong_operator"
        )
    known = await q.get_protocol(session, protocol_number)
    if known is not None and known["ans_registry"] != ans_registry:
        raise field_problem(
            "body.protocol_number", "is not a protocol of this operator", "wrong_operator"
        )
    return known


@functools.cache
def _zone(name: str | None) -> tzinfo:
    """The IANA zone ``name`` (the default Brazilian zone when unknown)."""
    return ZoneInfo(name or DEFAULT_TIMEZONE)


def _local(moment: datetime | None, zone: tzinfo) -> datetime | None:
    return moment.astimezone(zone) if moment is not None else None


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _hold_out(row: Mapping[str, Any]) -> HoldOut:
    released_at = row["released_at"]
    return HoldOut(
        id=row["id"],
        operator=row["ans_registry"],
        scope=row["scope"],
        protocol_number=row["protocol_number"],
        has_beneficiary=row["beneficiary_key"] is not None,
        reason=row["reason"],
        placed_by=row["placed_by"],
        placed_at=_utc(row["placed_at"]),
        released_by=row["released_by"],
        released_at=_utc(released_at) if released_at is not None else None,
        release_reason=row["release_reason"],
        active=released_at is None,
    )


def _access_out(row: Mapping[str, Any]) -> AccessRequestOut:
    """An access request, its times in its protocol's zone (the default zone when unknown)."""
    zone = _zone(row["timezone"])
    fulfilled = row["status"] == "fulfilled"
    return AccessRequestOut(
        id=row["id"],
        operator=row["ans_registry"],
        protocol_number=row["protocol_number"],
        scope=row["scope"],
        status=row["status"],
        requested_by=row["requested_by"],
        requested_at=row["requested_at"].astimezone(zone),
        due_at=row["due_at"].astimezone(zone),
        rule_id=row["rule_id"],
        legal_basis=row["legal_basis"],
        ruleset_id=row["ruleset_id"],
        fulfilled_at=_local(row["fulfilled_at"], zone),
        attempts=row["attempts"],
        last_error=row["last_error"],
        bundle_url=f"/v1/access-requests/{row['id']}/bundle" if fulfilled else None,
    )


def _certificate_out(row: Mapping[str, Any]) -> CertificateOut:
    return CertificateOut(
        id=row["id"],
        operator=row["ans_registry"],
        sequence=row["sequence"],
        purge_request_id=row["purge_request_id"],
        protocol_number=row["protocol_number"],
        record_classes=list(row["record_classes"]),
        confirmations=list(row["confirmations"]),
        requested_at=_utc(row["requested_at"]),
        disposed_at=_utc(row["disposed_at"]),
        previous_hash=row["previous_hash"],
        hash=row["hash"],
    )


def _purge_out(row: Mapping[str, Any]) -> PurgeOut:
    confirmed = list(row["confirmed_by"] or ())
    disposed_at = row["disposed_at"]
    return PurgeOut(
        id=row["id"],
        operator=row["ans_registry"],
        protocol_number=row["protocol_number"],
        record_classes=list(row["record_classes"]),
        owners=list(row["owners"]),
        status="pending" if disposed_at is None else "disposed",
        requested_at=_utc(row["requested_at"]),
        disposed_at=_utc(disposed_at) if disposed_at is not None else None,
        confirmed_by=confirmed,
        waiting_for=[owner for owner in row["owners"] if owner not in confirmed],
    )


def _time_id_cursor(row: Mapping[str, Any], column: str) -> str:
    """An opaque keyset cursor: the last item's (instant, id)."""
    return encode_cursor((row[column].isoformat(), row["id"]))


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        raise ValueError(text)
    return moment


def _decode_time_id(cursor: str) -> tuple[datetime, uuid.UUID]:
    moment, ident = decode_cursor(cursor, 2)
    try:
        return _aware(moment), uuid.UUID(ident)
    except ValueError:
        raise bad_cursor() from None


def _decode_chain_cursor(cursor: str) -> tuple[str, int]:
    ans_registry, sequence = decode_cursor(cursor, 2)
    if not (re.fullmatch(ANS_PATTERN, ans_registry) and re.fullmatch(r"[0-9]{1,18}", sequence)):
        raise bad_cursor()
    return ans_registry, int(sequence)


def _decode_preview_cursor(cursor: str) -> tuple[datetime, str, str]:
    retain_until, protocol_number, record_class = decode_cursor(cursor, 3)
    try:
        moment = _aware(retain_until)
    except ValueError:
        raise bad_cursor() from None
    if not (re.fullmatch(PROTOCOL_PATTERN, protocol_number) and record_class):
        raise bad_cursor()
    return moment, protocol_number, record_class
