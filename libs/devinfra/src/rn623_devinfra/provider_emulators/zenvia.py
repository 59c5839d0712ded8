"""Zenvia API v2 emulator: ``/zenvia/v2/channels/{sms|whatsapp}/messages``.

``X-API-TOKEN`` auth, JSON ``{"from", "to", "contents", "externalId"}``; answers 200
with the message (``id`` = a UUID). ``MESSAGE_STATUS`` events go to the configured
webhook URL with the subscription's custom header ``X-Zenvia-Webhook-Token``.
"""

from __future__ import annotations

import hmac
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from rn623_devinfra.provider_emulators.callbacks import Callback, DeliveryKind
from rn623_devinfra.provider_emulators.state import (
    EmulatorState,
    FaultResponses,
    request_fault,
    schedule_delivery,
)

WEBHOOK_AUTH_HEADER = "X-Zenvia-Webhook-Token"
CHANNELS = ("sms", "whatsapp")
_PHONE = re.compile(r"^[1-9]\d{9,14}$")
_STATUS_CODES: dict[DeliveryKind, tuple[str, str]] = {
    "sent": ("SENT", "The message has been forwarded to the provider"),
    "delivered": ("DELIVERED", "The message has been delivered to the recipient"),
    "failed": ("NOT_DELIVERED", "The message could not be delivered to the recipient"),
}
_SUBSCRIPTION_ID = str(uuid.uuid4())


def zenvia_error(
    status: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> JSONResponse:
    """An error in Zenvia's format."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status)


def _invalid(path: str, message: str, code: str = "INVALID") -> JSONResponse:
    return zenvia_error(
        400,
        "VALIDATION_ERROR",
        "Validation error",
        [{"code": code, "path": path, "message": message}],
    )


FAULTS = FaultResponses(
    rate_limit=lambda: zenvia_error(429, "TOO_MANY_REQUESTS", "Too many requests"),
    server_error=lambda: zenvia_error(500, "INTERNAL_ERROR", "Internal error"),
    reject=lambda: _invalid("to", "Recipient is blocked or invalid", "INVALID_RECIPIENT"),
)


def _zenvia_time(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _validate(channel: str, body: object) -> JSONResponse | None:
    if not isinstance(body, dict):
        return _invalid("", "Request body must be a JSON object")
    for name in ("from", "to"):
        if not isinstance(body.get(name), str) or not body[name]:
            return _invalid(name, f"'{name}' is required", "REQUIRED")
    if not _PHONE.match(body["to"]):
        return _invalid("to", "'to' must be a phone number with country code, digits only")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return _invalid("contents", "'contents' must have at least one item", "REQUIRED")
    for index, content in enumerate(contents):
        path = f"contents[{index}]"
        if not isinstance(content, dict):
            return _invalid(path, "each content must be an object")
        kind = content.get("type")
        if kind == "text":
            if not isinstance(content.get("text"), str) or not content["text"]:
                return _invalid(f"{path}.text", "'text' is required", "REQUIRED")
        elif kind == "template" and channel == "whatsapp":
            if not isinstance(content.get("templateId"), str) or not content["templateId"]:
                return _invalid(f"{path}.templateId", "'templateId' is required", "REQUIRED")
            fields = content.get("fields", {})
            if not isinstance(fields, dict) or not all(
                isinstance(value, str) for value in fields.values()
            ):
                return _invalid(f"{path}.fields", "'fields' must map names to strings")
        else:
            return _invalid(f"{path}.type", f"content type not supported on {channel}")
    external_id = body.get("externalId")
    if external_id is not None and not isinstance(external_id, str):
        return _invalid("externalId", "'externalId' must be a string")
    return None


def zenvia_router(state: EmulatorState) -> APIRouter:
    """The Zenvia send-message endpoint."""
    router = APIRouter(prefix="/zenvia", tags=["zenvia"])

    @router.post("/v2/channels/{channel}/messages")
    async def send_message(channel: str, request: Request) -> Response:
        """Send a message on the SMS or WhatsApp channel."""
        state.store.count_request("zenvia")
        token = request.headers.get("x-api-token")
        if not token:
            return zenvia_error(401, "AUTHENTICATION_ERROR", "No authorization token was found")
        if not hmac.compare_digest(token.encode(), state.config.zenvia_api_token.encode()):
            return zenvia_error(401, "AUTHENTICATION_ERROR", "Invalid authorization token")
        if channel not in CHANNELS:
            return zenvia_error(404, "NOT_FOUND", "Not found")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _invalid("", "Request body must be valid JSON")
        invalid = _validate(channel, body)
        if invalid is not None:
            return invalid
        faulty = await request_fault(state, "zenvia", channel, FAULTS)
        if faulty is not None:
            return faulty
        message_id = str(uuid.uuid4())
        contents: list[dict[str, Any]] = body["contents"]
        texts = [c["text"] for c in contents if c["type"] == "text"]
        templates = [c for c in contents if c["type"] == "template"]
        template = (
            {"id": templates[0]["templateId"], "fields": templates[0].get("fields", {})}
            if templates
            else None
        )
        message = state.store.add(
            provider="zenvia",
            channel=channel,
            id=message_id,
            to=[body["to"]],
            sender=body["from"],
            text="\n".join(texts) or None,
            template=template,
            external_id=body.get("externalId"),
            request=body,
        )

        def build(kind: DeliveryKind) -> Callback | None:
            """The MESSAGE_STATUS event of one step, with the subscription header."""
            url = state.config.zenvia_webhook_url
            if not url:
                return None
            code, description = _STATUS_CODES[kind]
            now = _zenvia_time(datetime.now(UTC))
            status: dict[str, Any] = {"timestamp": now, "code": code, "description": description}
            if kind == "failed":
                status["causes"] = [
                    {
                        "reason": "UNREACHABLE_DESTINATION",
                        "details": "The destination could not be reached",
                    }
                ]
            event: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "timestamp": now,
                "type": "MESSAGE_STATUS",
                "subscriptionId": _SUBSCRIPTION_ID,
                "channel": channel,
                "messageId": message_id,
                "contentIndex": 0,
                "messageStatus": status,
            }
            if body.get("externalId") is not None:
                event["externalId"] = body["externalId"]
            headers = {"Content-Type": "application/json", "User-Agent": "Zenvia-Webhook/2.0"}
            if state.config.zenvia_webhook_token:
                headers[WEBHOOK_AUTH_HEADER] = state.config.zenvia_webhook_token
            return Callback(url=url, headers=headers, body=json.dumps(event).encode(), status=code)

        schedule_delivery(state, "zenvia", message, build)
        return JSONResponse(
            {
                "id": message_id,
                "from": body["from"],
                "to": body["to"],
                "direction": "OUT",
                "channel": channel,
                "contents": contents,
                "timestamp": _zenvia_time(message.received_at),
                **({"externalId": body["externalId"]} if "externalId" in body else {}),
            }
        )

    return router
