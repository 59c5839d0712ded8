"""Zenvia API v2 adapter: SMS and WhatsApp.

Sending: ``POST {base}/v2/channels/{sms|whatsapp}/messages`` with the ``X-API-TOKEN``
header and ``{"from", "to", "contents": [...], "externalId"}``; ``externalId`` is our
delivery id. A WhatsApp message with a template is sent as a ``template`` content whose
``templateId`` comes from ``template_ids`` (our template name → Zenvia template id; an
unmapped name is sent as the id itself, so a missing mapping fails loudly with a 400).
Our ordered template parameters become the fields ``"1"``, ``"2"``, … of the template,
so the Zenvia templates must name their variables that way. Recipients are sent as
digits only (``+5511…`` → ``5511…``), as Zenvia expects.

Callbacks: ``MESSAGE_STATUS`` events of a subscription. Zenvia does not sign webhooks,
but a subscription may carry custom headers: when a ``webhook_token`` is configured,
the subscription must send it in ``X-Zenvia-Webhook-Token`` and every callback without
it is rejected.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from notification_svc.providers.base import (
    ERROR_CODE,
    ChannelName,
    DeliveryStatus,
    OutboundMessage,
    ProviderError,
    SendResult,
    StatusUpdate,
    WebhookRejected,
    header_value,
    http_status_error,
)
from notification_svc.providers.http import HttpProvider, json_object

if TYPE_CHECKING:
    from notification_svc.providers.base import Provider

ZENVIA_BASE_URL = "https://api.zenvia.com"
WEBHOOK_AUTH_HEADER = "X-Zenvia-Webhook-Token"

_STATUSES: dict[str, DeliveryStatus] = {
    "SENT": "sent",
    "DELIVERED": "delivered",
    "READ": "read",
    "NOT_DELIVERED": "failed",
    "REJECTED": "failed",
}


class ZenviaProvider(HttpProvider):
    """Zenvia API v2 (SMS and WhatsApp)."""

    name: str = "zenvia"
    channels: frozenset[ChannelName] = frozenset({"sms", "whatsapp"})

    def __init__(
        self,
        *,
        api_token: str,
        base_url: str = ZENVIA_BASE_URL,
        webhook_token: str | None = None,
        template_ids: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api_token = api_token
        self._base_url = base_url.rstrip("/")
        self._webhook_token = webhook_token
        self._template_ids = dict(template_ids or {})
        super().__init__(timeout=timeout, client=client)

    async def send(self, message: OutboundMessage) -> SendResult:
        """Post the message to Zenvia; its ``id`` is the provider message id."""
        if message.channel not in self.channels:
            raise ProviderError("unsupported_channel", retryable=False)
        payload = {
            "from": message.sender,
            "to": message.to.removeprefix("+"),
            "contents": [self._content(message)],
            "externalId": str(message.delivery_id),
        }
        url = f"{self._base_url}/v2/channels/{message.channel}/messages"
        response = await self._post(
            url,
            json=payload,
            headers={"X-API-TOKEN": self._api_token, "Accept": "application/json"},
        )
        body = json_object(response)
        if not response.is_success:
            code = body.get("code") if body is not None else None
            raise http_status_error(
                response.status_code,
                code if isinstance(code, str) and code else None,
                response.headers.get("Retry-After"),
            )
        message_id = body.get("id") if body is not None else None
        if not isinstance(message_id, str) or not message_id:
            raise ProviderError("invalid_response", retryable=False)
        return SendResult(provider_message_id=message_id, status="sent")

    def _content(self, message: OutboundMessage) -> dict[str, Any]:
        template = message.template
        if message.channel == "whatsapp" and template is not None:
            return {
                "type": "template",
                "templateId": self._template_ids.get(template.name, template.name),
                "fields": {str(i): value for i, value in enumerate(template.parameters, 1)},
            }
        return {"type": "text", "text": message.text}

    def parse_webhook(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> list[StatusUpdate]:
        """Check the shared token and read a ``MESSAGE_STATUS`` event.

        Zenvia does not sign callbacks: without a configured token anyone could forge a
        delivery proof, so every callback is refused until one is set.
        """
        if self._webhook_token is None:
            raise WebhookRejected("no zenvia webhook token configured")
        given = header_value(headers, WEBHOOK_AUTH_HEADER)
        if given is None or not hmac.compare_digest(given.encode(), self._webhook_token.encode()):
            raise WebhookRejected("zenvia webhook token missing or wrong")
        try:
            event = json.loads(body)
        except ValueError as exc:
            raise WebhookRejected("zenvia callback is not JSON") from exc
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise WebhookRejected("zenvia callback is not an event")
        if event["type"] != "MESSAGE_STATUS":
            return []  # e.g. an inbound MESSAGE event: valid, but no delivery status
        message_id = event.get("messageId")
        status = event.get("messageStatus")
        if not isinstance(message_id, str) or not isinstance(status, dict):
            raise WebhookRejected("zenvia MESSAGE_STATUS event without messageId/messageStatus")
        normalized = _STATUSES.get(str(status.get("code")))
        if normalized is None:
            return []
        error_code = None
        if normalized == "failed":
            error_code = _cause_code(status) or _code_token(status.get("code"))
        return [
            StatusUpdate(
                provider_message_id=message_id,
                status=normalized,
                at=_timestamp(status.get("timestamp") or event.get("timestamp")),
                error_code=error_code,
            )
        ]


_REASON_CODE = re.compile(r"[A-Z][A-Z0-9_]{1,63}")


def _cause_code(status: Mapping[str, Any]) -> str | None:
    """The code of a failure: the channel's error code, or the cause's reason when it is
    an upper-case code word; never free text, which may quote the recipient."""
    causes = status.get("causes")
    if isinstance(causes, list) and causes and isinstance(causes[0], dict):
        code = causes[0].get("channelErrorCode")
        if isinstance(code, str | int) and ERROR_CODE.fullmatch(str(code)):
            return str(code)
        reason = causes[0].get("reason")
        if isinstance(reason, str) and _REASON_CODE.fullmatch(reason):
            return reason
    return None


def _code_token(value: object) -> str | None:
    """A status code that is a short token, or None."""
    text = str(value) if isinstance(value, str | int) else ""
    return text if ERROR_CODE.fullmatch(text) else None


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


if TYPE_CHECKING:
    _conforms: type[Provider] = ZenviaProvider
