"""HTTP API of notification-svc (v1): notifications with their timelines, operator
profiles, and the providers' delivery callbacks."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_svc import webhooks
from notification_svc.content import MessageContent
from notification_svc.models import deliveries, delivery_events, messages, profiles
from notification_svc.providers.base import WebhookRejected
from notification_svc.providers.meta import verify_subscription
from notification_svc.rendering import render
from notification_svc.runtime import Runtime
from notification_svc.schemas import (
    ANS_PATTERN,
    PROTOCOL_PATTERN,
    DeliveryOut,
    MessageStatus,
    NotificationOut,
    NotificationPage,
    ProfileIn,
    ProfileOut,
    TimelineEntry,
)
from rn623_events.auth import ADMIN_SCOPE, Principal, ensure_operator, require_scopes
from rn623_events.contracts.notifications import NotificationPurpose, ProviderName
from rn623_events.cursors import bad_cursor, decode_cursor, encode_cursor
from rn623_events.group_commit import BatchCommitter
from rn623_events.http import app_runtime
from rn623_events.openapi import problem_responses
from rn623_events.problems import ProblemError, problem_type

READ_SCOPE = "notifications:read"

RuntimeDep = Annotated[Runtime, Depends(app_runtime)]


async def _callbacks(request: Request) -> BatchCommitter[webhooks.CallbackBatch, int]:
    """The app's committer of provider callbacks, set up in its lifespan (async, so it
    needs no worker thread)."""
    committer: BatchCommitter[webhooks.CallbackBatch, int] = request.app.state.callbacks
    return committer


CallbacksDep = Annotated[BatchCommitter[webhooks.CallbackBatch, int], Depends(_callbacks)]
Reader = Annotated[Principal, Depends(require_scopes(READ_SCOPE))]
Admin = Annotated[Principal, Depends(require_scopes(ADMIN_SCOPE))]
Operator = Annotated[str, Path(pattern=ANS_PATTERN, description="ANS registration (6 digits).")]

router = APIRouter(prefix="/v1")


# ---- notifications -----------------------------------------------------------------------


@router.get("/notifications", response_model=NotificationPage, tags=["notifications"])
async def list_notifications(
    rt: RuntimeDep,
    principal: Reader,
    protocol: Annotated[
        str | None, Query(pattern=PROTOCOL_PATTERN, description="Protocol number.")
    ] = None,
    operator: Annotated[
        str | None, Query(pattern=ANS_PATTERN, description="ANS registration (6 digits).")
    ] = None,
    status: Annotated[MessageStatus | None, Query()] = None,
    purpose: Annotated[NotificationPurpose | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> NotificationPage:
    """Messages the caller may see, newest first, each with every channel's timeline."""
    if operator is not None:
        ensure_operator(principal, operator)
    query = sa.select(messages)
    if not principal.all_operators:
        query = query.where(messages.c.ans_registry.in_(sorted(principal.operators)))
    if protocol is not None:
        query = query.where(messages.c.protocol_number == protocol)
    if operator is not None:
        query = query.where(messages.c.ans_registry == operator)
    if status is not None:
        query = query.where(messages.c.status == status)
    if purpose is not None:
        query = query.where(messages.c.purpose == purpose)
    if cursor is not None:
        created_at, message_id = _decode_cursor(cursor)
        query = query.where(
            sa.tuple_(messages.c.created_at, messages.c.id) < (created_at, message_id)
        )
    query = query.order_by(messages.c.created_at.desc(), messages.c.id.desc()).limit(limit + 1)
    async with rt.sessions() as session:
        rows = (await session.execute(query)).mappings().all()
        page = rows[:limit]
        items = await _notifications_out(session, page)
    next_cursor = (
        encode_cursor((page[-1]["created_at"].isoformat(), page[-1]["id"]))
        if len(rows) > limit
        else None
    )
    return NotificationPage(items=items, next_cursor=next_cursor)


@router.get(
    "/notifications/{notification_id}",
    response_model=NotificationOut,
    tags=["notifications"],
    responses=problem_responses(404),
)
async def get_notification(
    notification_id: uuid.UUID, rt: RuntimeDep, principal: Reader
) -> NotificationOut:
    """One message (404 when unknown or of an operator the caller may not act for)."""
    async with rt.sessions() as session:
        row = (
            (await session.execute(sa.select(messages).where(messages.c.id == notification_id)))
            .mappings()
            .first()
        )
        if row is None or not principal.can_act_for(row["ans_registry"]):
            raise ProblemError(404, "Not Found", "no such notification")
        return (await _notifications_out(session, [row]))[0]


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    created_at, message_id = decode_cursor(cursor, 2)
    try:
        moment = datetime.fromisoformat(created_at)
        if moment.utcoffset() is None:
            raise ValueError(cursor)
        return moment, uuid.UUID(message_id)
    except ValueError:
        raise bad_cursor() from None


def mask(address: str | None) -> str | None:
    """An address with most of it hidden: enough to recognise it, not to use it."""
    if not address:
        return None
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return address[:6] + "*" * max(0, len(address) - 10) + address[-4:]


async def _notifications_out(
    session: AsyncSession, rows: Sequence[Mapping[Any, Any]]
) -> list[NotificationOut]:
    ids = [row["id"] for row in rows]
    if not ids:
        return []
    delivery_rows = (
        (
            await session.execute(
                sa.select(deliveries)
                .where(deliveries.c.message_id.in_(ids))
                .order_by(deliveries.c.position)
            )
        )
        .mappings()
        .all()
    )
    events = (
        (
            await session.execute(
                sa.select(delivery_events)
                .where(delivery_events.c.delivery_id.in_([d["id"] for d in delivery_rows]))
                .order_by(delivery_events.c.id)
            )
        )
        .mappings()
        .all()
    )
    timelines: dict[uuid.UUID, list[TimelineEntry]] = {}
    for event in events:
        timelines.setdefault(event["delivery_id"], []).append(
            TimelineEntry(
                status=event["status"],
                at=event["at"],
                source=event["source"],
                provider=event["provider"],
                detail=event["detail"],
            )
        )
    by_message: dict[uuid.UUID, list[DeliveryOut]] = {}
    for d in delivery_rows:
        by_message.setdefault(d["message_id"], []).append(
            DeliveryOut(
                id=d["id"],
                channel=d["channel"],
                position=d["position"],
                recipient=mask(d["recipient"]),
                status=d["status"],
                provider=d["provider"],
                provider_message_id=d["provider_message_id"],
                attempts=d["attempts"],
                queued_at=d["queued_at"],
                sent_at=d["sent_at"],
                delivered_at=d["delivered_at"],
                failed_at=d["failed_at"],
                last_error=d["last_error"],
                timeline=timelines.get(d["id"], []),
            )
        )
    out = []
    for row in rows:
        rendered = render(MessageContent.model_validate(row["content"]))
        out.append(
            NotificationOut(
                id=row["id"],
                operator=row["ans_registry"],
                protocol_number=row["protocol_number"],
                purpose=row["purpose"],
                demand_id=row["demand_id"],
                status=row["status"],
                channels=row["channels"],
                delivered_channel=row["delivered_channel"],
                delivered_at=row["delivered_at"],
                created_at=row["created_at"],
                subject=rendered.subject,
                text=rendered.text,
                deliveries=by_message.get(row["id"], []),
            )
        )
    return out


# ---- operator profiles -------------------------------------------------------------------


@router.put(
    "/operators/{ans_registry}/notification-profile",
    response_model=ProfileOut,
    tags=["profiles"],
)
async def put_profile(
    ans_registry: Operator, body: ProfileIn, rt: RuntimeDep, principal: Admin
) -> ProfileOut:
    """Set an operator's branding, senders, channel order, providers and timeouts."""
    ensure_operator(principal, ans_registry)
    stored = body.model_dump(mode="json", exclude_none=True)
    async with rt.uow() as uow:
        now = uow.clock.now()
        stmt = insert(profiles).values(
            ans_registry=ans_registry, profile=stored, revision=1, updated_at=now
        )
        row = (
            await uow.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[profiles.c.ans_registry],
                    set_={
                        "profile": stmt.excluded.profile,
                        "updated_at": now,
                        "revision": profiles.c.revision + 1,
                    },
                ).returning(profiles.c.revision, profiles.c.updated_at)
            )
        ).one()
        await uow.commit()
    return ProfileOut(
        operator=ans_registry, revision=row.revision, updated_at=row.updated_at, **stored
    )


@router.get(
    "/operators/{ans_registry}/notification-profile",
    response_model=ProfileOut,
    tags=["profiles"],
    responses=problem_responses(404),
)
async def get_profile(ans_registry: Operator, rt: RuntimeDep, principal: Reader) -> ProfileOut:
    """An operator's profile (404 when it has none: the defaults apply)."""
    ensure_operator(principal, ans_registry)
    async with rt.sessions() as session:
        row = (
            (
                await session.execute(
                    sa.select(profiles).where(profiles.c.ans_registry == ans_registry)
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise ProblemError(404, "Not Found", "no profile for this operator: defaults apply")
    return ProfileOut(
        operator=ans_registry,
        revision=row["revision"],
        updated_at=row["updated_at"],
        **row["profile"],
    )


# ---- provider callbacks ------------------------------------------------------------------


@router.post(
    "/webhooks/{provider}",
    status_code=204,
    tags=["webhooks"],
    responses={
        401: {"description": "The signature or token of the callback is not accepted."},
        404: {"description": "This provider is not configured."},
    },
)
async def provider_callback(
    provider: ProviderName, request: Request, rt: RuntimeDep, intake: CallbacksDep
) -> None:
    """A provider's delivery-status callback, verified by its signature or token.

    No bearer token: providers cannot send one. Zenvia sends the configured token
    header, Twilio signs with ``X-Twilio-Signature``, Meta with ``X-Hub-Signature-256``.
    """
    adapter = rt.providers.get(provider)
    if adapter is None:
        raise ProblemError(404, "Not Found", "this provider is not configured")
    body = await request.body()
    url = f"{rt.settings.public_webhook_url.rstrip('/')}/{provider}"
    try:
        updates = adapter.parse_webhook(url, dict(request.headers), body)
    except WebhookRejected:
        raise ProblemError(
            401,
            "Unauthorized",
            "callback signature or format not accepted",
            problem_type("webhook-rejected"),
        ) from None
    await intake.submit((provider, updates))


@router.get(
    "/webhooks/meta",
    response_class=PlainTextResponse,
    tags=["webhooks"],
    responses={403: {"description": "The verify token does not match."}},
)
async def meta_subscription(request: Request, rt: RuntimeDep) -> str:
    """Meta's subscription handshake: echo ``hub.challenge`` when the verify token matches."""
    token = rt.settings.meta_verify_token
    challenge = (
        verify_subscription(dict(request.query_params), token.get_secret_value())
        if token is not None
        else None
    )
    if challenge is None:
        raise ProblemError(403, "Forbidden", "verify token does not match")
    return challenge
