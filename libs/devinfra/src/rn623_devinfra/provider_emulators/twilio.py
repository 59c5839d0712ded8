"""Twilio Programmable Messaging emulator: ``/twilio/2010-04-01/Accounts/{sid}/Messages.json``.

Basic auth (account SID, auth token), form-encoded ``To``/``From``/``Body`` or
``ContentSid``/``ContentVariables``, optional ``StatusCallback``; answers 201 with the
Message resource (``sid`` = ``SM`` + 32 hex). Status callbacks go to the request's
``StatusCallback``, form-encoded and signed with ``X-Twilio-Signature``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from rn623_devinfra.provider_emulators.callbacks import Callback, DeliveryKind
from rn623_devinfra.provider_emulators.signing import twilio_signature
from rn623_devinfra.provider_emulators.state import (
    EmulatorState,
    FaultResponses,
    request_fault,
    schedule_delivery,
)

API_VERSION = "2010-04-01"
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 +\-_&]{1,11}$")
_CONTENT_SID = re.compile(r"^HX[0-9a-f]{32}$")
_CALLBACK_STATUS: dict[DeliveryKind, str] = {
    "sent": "sent",
    "delivered": "delivered",
    "failed": "undelivered",
}
UNDELIVERED_ERROR_CODE = "30003"
"""ErrorCode of the emulated ``undelivered`` callback (Unreachable destination handset)."""


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    """An error in Twilio's REST format."""
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


FAULTS = FaultResponses(
    rate_limit=lambda: twilio_error(429, 20429, "Too Many Requests"),
    server_error=lambda: twilio_error(500, 20500, "An internal server error has occurred"),
    reject=lambda: twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
)


def _authorized(request: Request, state: EmulatorState, path_sid: str) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    config = state.config
    return (
        hmac.compare_digest(user.encode(), config.twilio_account_sid.encode())
        and hmac.compare_digest(password.encode(), config.twilio_auth_token.encode())
        and path_sid == config.twilio_account_sid
    )


def _validate(form: dict[str, str]) -> JSONResponse | None:
    to, sender = form.get("To", ""), form.get("From", "")
    if not to:
        return twilio_error(400, 21604, "A 'To' phone number is required.")
    if not sender:
        return twilio_error(400, 21603, "A 'From' phone number is required.")
    whatsapp = to.startswith("whatsapp:")
    if whatsapp != sender.startswith("whatsapp:"):
        return twilio_error(
            400, 21910, "Invalid From and To pair. From and To should be of the same channel"
        )
    if not _E164.match(to.removeprefix("whatsapp:")):
        return twilio_error(400, 21211, "Invalid 'To' Phone Number")
    plain_sender = sender.removeprefix("whatsapp:")
    if not (_E164.match(plain_sender) or (not whatsapp and _ALPHANUMERIC_SENDER.match(sender))):
        return twilio_error(400, 21212, "Invalid 'From' Phone Number")
    content_sid = form.get("ContentSid")
    if content_sid is not None:
        if not _CONTENT_SID.match(content_sid):
            return twilio_error(400, 21655, "The ContentSid is Invalid")
        try:
            variables = json.loads(form.get("ContentVariables", "{}"))
        except ValueError:
            variables = None
        if not isinstance(variables, dict):
            return twilio_error(400, 21656, "The ContentVariables Parameter is invalid")
    elif not form.get("Body"):
        return twilio_error(400, 21602, "Message body is required.")
    if len(form.get("Body", "")) > 1600:
        return twilio_error(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    callback = form.get("StatusCallback")
    if callback is not None and urlsplit(callback).scheme not in ("http", "https"):
        return twilio_error(400, 21609, "Invalid StatusCallback url")
    return None


def twilio_router(state: EmulatorState) -> APIRouter:
    """The Twilio Messages endpoint."""
    router = APIRouter(prefix="/twilio", tags=["twilio"])

    @router.post(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json")
    async def create_message(account_sid: str, request: Request) -> Response:
        """Create a Message (SMS or WhatsApp)."""
        state.store.count_request("twilio")
        if not _authorized(request, state, account_sid):
            return twilio_error(401, 20003, "Authenticate")
        try:
            pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return twilio_error(400, 21602, "Message body is required.")
        form = dict(pairs)
        invalid = _validate(form)
        if invalid is not None:
            return invalid
        channel = "whatsapp" if form["To"].startswith("whatsapp:") else "sms"
        faulty = await request_fault(state, "twilio", channel, FAULTS)
        if faulty is not None:
            return faulty
        sid = "SM" + uuid.uuid4().hex
        template = None
        if "ContentSid" in form:
            variables = json.loads(form.get("ContentVariables", "{}"))
            template = {"content_sid": form["ContentSid"], "variables": variables}
        message = state.store.add(
            provider="twilio",
            channel=channel,
            id=sid,
            to=[form["To"]],
            sender=form["From"],
            text=form.get("Body"),
            template=template,
            request=form,
        )
        now = format_datetime(datetime.now(UTC))

        def build(kind: DeliveryKind) -> Callback | None:
            """The status callback of one step, signed with the auth token."""
            url = form.get("StatusCallback")
            if not url:
                return None
            status = _CALLBACK_STATUS[kind]
            params = [
                ("AccountSid", state.config.twilio_account_sid),
                ("ApiVersion", API_VERSION),
                ("From", form["From"]),
                ("MessageSid", sid),
                ("MessageStatus", status),
                ("SmsSid", sid),
                ("SmsStatus", status),
                ("To", form["To"]),
            ]
            if channel == "whatsapp":
                params.append(("ChannelPrefix", "whatsapp"))
            if kind == "failed":
                params.append(("ErrorCode", UNDELIVERED_ERROR_CODE))
            return Callback(
                url=url,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": twilio_signature(
                        state.config.twilio_auth_token, url, params
                    ),
                    "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
                    "User-Agent": "TwilioProxy/1.1",
                },
                body=urlencode(params).encode(),
                status=status,
            )

        schedule_delivery(state, "twilio", message, build)
        resource = {
            "account_sid": state.config.twilio_account_sid,
            "api_version": API_VERSION,
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form["From"],
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json"
            },
            "to": form["To"],
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json",
        }
        return JSONResponse(resource, status_code=201)

    return router
