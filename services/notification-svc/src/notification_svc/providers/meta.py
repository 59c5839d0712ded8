"""Meta WhatsApp Cloud API adapter: WhatsApp only.

Sending: ``POST {base}/{version}/{phone_number_id}/messages`` with ``Authorization:
Bearer <access token>``; the phone number id is the message's ``sender``. A message with
a template is sent as ``type: template`` (name, language, one body component with our
ordered parameters as text parameters); one without is sent as ``type: text`` (allowed
only inside the 24-hour customer service window). The response's ``messages[0].id``
(``wamid.…``) is the provider message id.

Errors are ``{"error": {"code": …}}``; the rate-limit codes (4, 80007, 130429, 131056)
and the transient ones (1, 2, 131000, 131016, 133004) are retryable whatever the HTTP
status, with ``Retry-After`` when the response has it.

Callbacks: ``whatsapp_business_account`` objects whose ``messages`` changes carry
``statuses``; verified with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret,
raw body)>``. :func:`verify_subscription` answers the GET verification handshake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from notification_svc.providers.base import (
    ChannelName,
    DeliveryStatus,
    OutboundMessage,
    ProviderError,
    SendResult,
    StatusUpdate,
    WebhookRejected,
    header_value,
    http_status_error,
    parse_retry_after,
)
from notification_svc.providers.http import HttpProvider, json_object

if TYPE_CHECKING:
    from notification_svc.providers.base import Provider

META_GRAPH_BASE_URL = "https://graph.facebook.com"
META_API_VERSION = "v21.0"
SIGNATURE_HEADER = "X-Hub-Signature-256"

RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131056})
"""Graph/WhatsApp error codes that mean "too many requests, try later"."""
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})
"""Graph/WhatsApp error codes of temporary server-side failures."""

_STATUSES: dict[str, DeliveryStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}


def meta_signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` header value of a callback ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_subscription(params: Mapping[str, str], verify_token: str) -> str | None:
    """The ``hub.challenge`` to echo when the GET handshake's mode and token match, else None."""
    token = params.get("hub.verify_token")
    if params.get("hub.mode") != "subscribe" or token is None:
        return None
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return params.get("hub.challenge")


class MetaWhatsAppProvider(HttpProvider):
    """Meta WhatsApp Cloud API (WhatsApp only)."""

    name: str = "meta"
    channels: frozenset[ChannelName] = frozenset({"whatsapp"})

    def __init__(
        self,
        *,
        access_token: str,
        app_secret: str,
        base_url: str = META_GRAPH_BASE_URL,
        api_version: str = META_API_VERSION,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._access_token = access_token
        self._app_secret = app_secret
        self._base_url = base_url.rstrip("/")
        self._api_version = api_version
        super().__init__(timeout=timeout, client=client)

    async def send(self, message: OutboundMessage) -> SendResult:
        """Post the message; the returned ``wamid`` is the provider message id."""
        if message.channel not in self.channels:
            raise ProviderError("unsupported_channel", retryable=False)
        url = f"{self._base_url}/{self._api_version}/{message.sender}/messages"
        response = await self._post(
            url,
            json=_payload(message),
            headers={
                "Authorization": f"Bearer {self._access_token}",
                "Accept": "application/json",
            },
        )
        body = json_object(response)
        if not response.is_success:
            raise _error(response, body)
        messages = body.get("messages") if body is not None else None
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not isinstance(wamid, str) or not wamid:
            raise ProviderError("invalid_response", retryable=False)
        return SendResult(provider_message_id=wamid, status="sent")

    def parse_webhook(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> list[StatusUpdate]:
        """Verify ``X-Hub-Signature-256`` and read every status of the notification."""
        signature = header_value(headers, SIGNATURE_HEADER)
        if not signature or not hmac.compare_digest(
            signature.strip().encode(), meta_signature(self._app_secret, body).encode()
        ):
            raise WebhookRejected("meta signature missing or wrong")
        try:
            notification = json.loads(body)
        except ValueError as exc:
            raise WebhookRejected("meta callback is not JSON") from exc
        if not isinstance(notification, dict) or (
            notification.get("object") != "whatsapp_business_account"
        ):
            raise WebhookRejected("meta callback is not a whatsapp_business_account object")
        entries = notification.get("entry")
        if not isinstance(entries, list):
            raise WebhookRejected("meta callback without entries")
        updates: list[StatusUpdate] = []
        for entry in entries:
            changes = entry.get("changes") if isinstance(entry, dict) else None
            if not isinstance(changes, list):
                raise WebhookRejected("meta entry without changes")
            for change in changes:
                if not isinstance(change, dict) or change.get("field") != "messages":
                    continue
                value = change.get("value")
                statuses = value.get("statuses") if isinstance(value, dict) else None
                for status in statuses if isinstance(statuses, list) else []:
                    update = _status_update(status)
                    if update is not None:
                        updates.append(update)
        return updates


def _payload(message: OutboundMessage) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to,
    }
    template = message.template
    if template is None:
        payload["type"] = "text"
        payload["text"] = {"preview_url": False, "body": message.text}
        return payload
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if template.parameters:
        body["components"] = [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": value} for value in template.parameters],
            }
        ]
    payload["type"] = "template"
    payload["template"] = body
    return payload


def _error(response: httpx.Response, body: dict[str, Any] | None) -> ProviderError:
    error = body.get("error") if body is not None else None
    code = error.get("code") if isinstance(error, dict) else None
    retry_after = response.headers.get("Retry-After")
    if isinstance(code, int) and (code in RATE_LIMIT_CODES or code in TRANSIENT_CODES):
        return ProviderError(str(code), retryable=True, retry_after=parse_retry_after(retry_after))
    return http_status_error(
        response.status_code, str(code) if isinstance(code, int | str) else None, retry_after
    )


def _status_update(status: object) -> StatusUpdate | None:
    if not isinstance(status, dict) or not isinstance(status.get("id"), str):
        raise WebhookRejected("meta status without id")
    normalized = _STATUSES.get(str(status.get("status")))
    if normalized is None:
        return None
    at = None
    timestamp = status.get("timestamp")
    if isinstance(timestamp, str | int) and str(timestamp).isdigit():
        at = datetime.fromtimestamp(int(timestamp), UTC)
    error_code = None
    errors = status.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("code")
        error_code = str(code) if code is not None else None
    if normalized == "failed" and error_code is None:
        error_code = "failed"
    return StatusUpdate(
        provider_message_id=status["id"], status=normalized, at=at, error_code=error_code
    )


if TYPE_CHECKING:
    _conforms: type[Provider] = MetaWhatsAppProvider
