"""Meta WhatsApp Cloud API emulator: ``/meta/{version}/{phone_number_id}/messages``.

Bearer-token auth, the Cloud API message JSON (``text`` or ``template``); answers 200
with ``{"messaging_product", "contacts", "messages": [{"id": "wamid.…"}]}``. Status
notifications go to the configured webhook URL, signed with ``X-Hub-Signature-256``
(and the legacy ``X-Hub-Signature``) using the app secret.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from rn623_devinfra.provider_emulators.callbacks import Callback, DeliveryKind
from rn623_devinfra.provider_emulators.signing import meta_signature_256, meta_signature_sha1
from rn623_devinfra.provider_emulators.state import (
    EmulatorState,
    FaultResponses,
    request_fault,
    schedule_delivery,
)

_VERSION = re.compile(r"^v\d+\.\d+$")
_PHONE = re.compile(r"^\+?[1-9]\d{7,14}$")
UNDELIVERABLE_ERROR_CODE = 131026
"""Error code of the emulated ``failed`` status (Message undeliverable)."""


def meta_error(
    status: int,
    code: int,
    message: str,
    *,
    error_type: str = "OAuthException",
    subcode: int | None = None,
    details: str | None = None,
) -> JSONResponse:
    """An error in the Graph API format."""
    error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = base64.b64encode(secrets.token_bytes(16)).decode().rstrip("=")
    return JSONResponse({"error": error}, status_code=status)


def _invalid_parameter(details: str) -> JSONResponse:
    return meta_error(400, 100, "(#100) Invalid parameter", details=details)


FAULTS = FaultResponses(
    rate_limit=lambda: meta_error(
        429, 130429, "(#130429) Rate limit hit", details="Cloud API message throughput reached"
    ),
    server_error=lambda: meta_error(
        500, 131000, "(#131000) Something went wrong", details="Something went wrong"
    ),
    reject=lambda: meta_error(
        400,
        131030,
        "(#131030) Recipient phone number not in allowed list",
        details="Recipient phone number not in allowed list",
    ),
)


def _wamid() -> str:
    return "wamid." + base64.b64encode(b"\x1c\x18" + secrets.token_bytes(40)).decode()


def _validate(body: object) -> JSONResponse | None:
    if not isinstance(body, dict):
        return _invalid_parameter("Request body must be a JSON object")
    if body.get("messaging_product") != "whatsapp":
        return meta_error(400, 100, "(#100) The parameter messaging_product is required.")
    if body.get("recipient_type", "individual") != "individual":
        return _invalid_parameter("recipient_type must be individual")
    to = body.get("to")
    if not isinstance(to, str) or not _PHONE.match(to):
        return _invalid_parameter("Parameter 'to' must be a phone number")
    kind = body.get("type", "text")
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"]:
            return meta_error(400, 100, "(#100) The parameter text['body'] is required.")
        return None
    if kind != "template":
        return _invalid_parameter("Param type must be one of {text, template}")
    template = body.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("name"), str):
        return meta_error(400, 100, "(#100) The parameter template['name'] is required.")
    language = template.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        return meta_error(400, 100, "(#100) The parameter template['language'] is required.")
    components = template.get("components", [])
    if not isinstance(components, list):
        return _invalid_parameter("template['components'] must be a list")
    for component in components:
        if not isinstance(component, dict) or not isinstance(component.get("type"), str):
            return _invalid_parameter("each component needs a type")
        parameters = component.get("parameters", [])
        if not isinstance(parameters, list):
            return _invalid_parameter("component parameters must be a list")
        for parameter in parameters:
            if (
                not isinstance(parameter, dict)
                or parameter.get("type") != "text"
                or not isinstance(parameter.get("text"), str)
            ):
                return _invalid_parameter("only text parameters are emulated")
    return None


def _template_summary(template: dict[str, Any]) -> dict[str, Any]:
    parameters = [
        parameter["text"]
        for component in template.get("components", [])
        if component.get("type") == "body"
        for parameter in component.get("parameters", [])
    ]
    return {
        "name": template["name"],
        "language": template["language"]["code"],
        "parameters": parameters,
    }


def meta_router(state: EmulatorState) -> APIRouter:
    """The Cloud API send-message endpoint."""
    router = APIRouter(prefix="/meta", tags=["meta"])

    @router.post("/{version}/{phone_number_id}/messages")
    async def send_message(version: str, phone_number_id: str, request: Request) -> Response:
        """Send a WhatsApp message from the business phone ``phone_number_id``."""
        state.store.count_request("meta")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return meta_error(401, 190, "An active access token must be used to query information.")
        if not hmac.compare_digest(token.encode(), state.config.meta_access_token.encode()):
            return meta_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if not _VERSION.match(version):
            return meta_error(400, 2500, "Unknown path components: /" + version)
        if phone_number_id != state.config.meta_phone_number_id:
            return meta_error(
                400,
                100,
                f"Unsupported post request. Object with ID '{phone_number_id}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this operation.",
                error_type="GraphMethodException",
                subcode=33,
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _invalid_parameter("Request body must be valid JSON")
        invalid = _validate(body)
        if invalid is not None:
            return invalid
        faulty = await request_fault(state, "meta", "whatsapp", FAULTS)
        if faulty is not None:
            return faulty
        wamid = _wamid()
        to: str = body["to"]
        text = body.get("text", {}).get("body") if body.get("type", "text") == "text" else None
        template = _template_summary(body["template"]) if body.get("type") == "template" else None
        message = state.store.add(
            provider="meta",
            channel="whatsapp",
            id=wamid,
            to=[to],
            sender=phone_number_id,
            text=text,
            template=template,
            request=body,
        )
        recipient_id = to.removeprefix("+")

        def build(kind: DeliveryKind) -> Callback | None:
            """The status notification of one step, signed with the app secret."""
            url = state.config.meta_webhook_url
            if not url:
                return None
            status: dict[str, Any] = {
                "id": wamid,
                "status": kind,
                "timestamp": str(int(time.time())),
                "recipient_id": recipient_id,
            }
            if kind == "failed":
                status["errors"] = [
                    {
                        "code": UNDELIVERABLE_ERROR_CODE,
                        "title": "Message undeliverable",
                        "message": "Message undeliverable",
                        "error_data": {"details": "Message Undeliverable."},
                    }
                ]
            else:
                status["conversation"] = {
                    "id": secrets.token_hex(16),
                    "origin": {"type": "utility"},
                }
                status["pricing"] = {
                    "billable": True,
                    "pricing_model": "CBP",
                    "category": "utility",
                }
            notification = {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": state.config.meta_waba_id,
                        "changes": [
                            {
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": (
                                            state.config.meta_display_phone_number
                                        ),
                                        "phone_number_id": phone_number_id,
                                    },
                                    "statuses": [status],
                                },
                                "field": "messages",
                            }
                        ],
                    }
                ],
            }
            raw = json.dumps(notification, separators=(",", ":")).encode()
            secret = state.config.meta_app_secret
            return Callback(
                url=url,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": meta_signature_256(secret, raw),
                    "X-Hub-Signature": meta_signature_sha1(secret, raw),
                    "User-Agent": "facebookexternalua",
                },
                body=raw,
                status=kind,
            )

        schedule_delivery(state, "meta", message, build)
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": recipient_id}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            }
        )

    return router
