"""Twilio Programmable Messaging adapter: SMS and WhatsApp.

Sending: ``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP basic
auth (account SID, auth token) and the form fields ``To``, ``From``, ``Body`` and
``StatusCallback`` (our public webhook URL). WhatsApp addresses carry the
``whatsapp:`` prefix. A WhatsApp template whose name is in ``content_sids`` is sent as
``ContentSid`` + ``ContentVariables`` (``{"1": …, "2": …}`` from our ordered
parameters); any other message is sent as ``Body``.

Callbacks: form-encoded ``MessageSid``, ``MessageStatus`` and ``ErrorCode``, signed in
``X-Twilio-Signature`` = base64(HMAC-SHA1(auth token, URL + every POST parameter's
name and value, sorted by name)). The URL is the one Twilio called, i.e. the
``StatusCallback`` given when sending: the signature is checked against the URL the
request reached and, failing that, against the configured ``status_callback_url`` (so a
proxy that rewrites the host or scheme does not break it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit, urlunsplit

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
)
from notification_svc.providers.http import HttpProvider, json_object

if TYPE_CHECKING:
    from notification_svc.providers.base import Provider

TWILIO_BASE_URL = "https://api.twilio.com"
SIGNATURE_HEADER = "X-Twilio-Signature"

_STATUSES: dict[str, DeliveryStatus] = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` of a form POST to ``url`` with ``params``."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TwilioProvider(HttpProvider):
    """Twilio Programmable Messaging (SMS and WhatsApp)."""

    name: str = "twilio"
    channels: frozenset[ChannelName] = frozenset({"sms", "whatsapp"})

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        status_callback_url: str | None = None,
        base_url: str = TWILIO_BASE_URL,
        content_sids: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._status_callback_url = status_callback_url
        self._base_url = base_url.rstrip("/")
        self._content_sids = dict(content_sids or {})
        super().__init__(timeout=timeout, client=client)

    async def send(self, message: OutboundMessage) -> SendResult:
        """Create the Message resource; its ``sid`` is the provider message id."""
        if message.channel not in self.channels:
            raise ProviderError("unsupported_channel", retryable=False)
        url = f"{self._base_url}/2010-04-01/Accounts/{self._account_sid}/Messages.json"
        response = await self._post(
            url,
            data=self._form(message),
            auth=(self._account_sid, self._auth_token),
            headers={"Accept": "application/json"},
        )
        body = json_object(response)
        if not response.is_success:
            code = body.get("code") if body is not None else None
            raise http_status_error(
                response.status_code,
                str(code) if isinstance(code, int | str) and str(code) else None,
                response.headers.get("Retry-After"),
            )
        sid = body.get("sid") if body is not None else None
        if not isinstance(sid, str) or not sid:
            raise ProviderError("invalid_response", retryable=False)
        status = _STATUSES.get(str(body.get("status") if body is not None else ""), "sent")
        return SendResult(provider_message_id=sid, status=status)

    def _form(self, message: OutboundMessage) -> dict[str, str]:
        to, sender = message.to, message.sender
        if message.channel == "whatsapp":
            to, sender = _whatsapp(to), _whatsapp(sender)
        form = {"To": to, "From": sender}
        template = message.template
        content_sid = (
            self._content_sids.get(template.name)
            if message.channel == "whatsapp" and template is not None
            else None
        )
        if template is not None and content_sid is not None:
            form["ContentSid"] = content_sid
            variables = {str(i): value for i, value in enumerate(template.parameters, 1)}
            form["ContentVariables"] = json.dumps(variables, ensure_ascii=False)
        else:
            form["Body"] = message.text
        if self._status_callback_url:
            form["StatusCallback"] = self._status_callback_url
        return form

    def parse_webhook(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> list[StatusUpdate]:
        """Verify ``X-Twilio-Signature`` and read the status callback."""
        signature = header_value(headers, SIGNATURE_HEADER)
        if not signature:
            raise WebhookRejected("twilio callback without signature")
        try:
            params = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError) as exc:
            raise WebhookRejected("twilio callback is not form-encoded") from exc
        if not any(
            hmac.compare_digest(
                twilio_signature(self._auth_token, candidate, params).encode(),
                signature.encode(),
            )
            for candidate in self._signed_url_candidates(url)
        ):
            raise WebhookRejected("twilio signature does not verify")
        fields = dict(params)
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        raw_status = fields.get("MessageStatus") or fields.get("SmsStatus")
        if not sid or not raw_status:
            raise WebhookRejected("twilio callback without MessageSid/MessageStatus")
        status = _STATUSES.get(raw_status)
        if status is None:
            return []  # e.g. "received": an inbound message, not a delivery status
        error_code = fields.get("ErrorCode") or None
        if status == "failed" and error_code is None:
            error_code = raw_status
        return [StatusUpdate(provider_message_id=sid, status=status, error_code=error_code)]

    def _signed_url_candidates(self, url: str) -> list[str]:
        """The URL the request reached, then the configured public ``StatusCallback`` URL
        (what Twilio signed when a proxy rewrote the request), each with/without port."""
        candidates = _url_variants(url) if url else []
        if self._status_callback_url and self._status_callback_url != url:
            candidates += _url_variants(self._status_callback_url)
        return candidates


def _whatsapp(address: str) -> str:
    return address if address.startswith("whatsapp:") else f"whatsapp:{address}"


def _url_variants(url: str) -> list[str]:
    """``url`` as given, and with/without the scheme's default port (Twilio may use either)."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    variants = [url]
    if default is None or parts.hostname is None:
        return variants
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if parts.port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    elif parts.port == default:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
    return variants


if TYPE_CHECKING:
    _conforms: type[Provider] = TwilioProvider
