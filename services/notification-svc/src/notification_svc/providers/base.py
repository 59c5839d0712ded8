"""What every provider adapter offers: send one message, read its delivery callbacks.

An adapter speaks one provider's real API (Zenvia v2, Twilio, the Meta WhatsApp Cloud
API, SMTP). It never decides about retries or fallback: it raises a
:class:`ProviderError` that says whether trying again can help and when, and the
dispatcher decides. Errors and log lines never carry the recipient or the text.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol

ChannelName = Literal["email", "sms", "whatsapp"]
DeliveryStatus = Literal["sent", "delivered", "read", "failed"]


@dataclass(frozen=True)
class WhatsAppTemplate:
    """A pre-approved WhatsApp template: its name, language and body parameters in order."""

    name: str
    language: str = "pt_BR"
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboundMessage:
    """One message to hand to a provider (personal data: never logged)."""

    delivery_id: uuid.UUID
    channel: ChannelName
    to: str  # E.164 for sms/whatsapp, an address for email
    sender: str  # e-mail From, SMS sender id or number, WhatsApp number or Meta phone id
    text: str  # SMS body, WhatsApp text, e-mail text part
    subject: str | None = None
    html: str | None = None
    template: WhatsAppTemplate | None = None
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message: its id for it, and the status it reported."""

    provider_message_id: str
    status: DeliveryStatus = "sent"


@dataclass(frozen=True)
class StatusUpdate:
    """One delivery-status callback, normalized."""

    provider_message_id: str
    status: DeliveryStatus
    at: datetime | None = None
    error_code: str | None = None


class ProviderError(Exception):
    """A send that failed. ``code`` is the provider's error code or an HTTP status, never
    personal data; ``retryable`` says whether the same call may succeed later, and
    ``retry_after`` (seconds) how soon the provider allows it (429 ``Retry-After``)."""

    def __init__(
        self,
        code: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.http_status = http_status

    @property
    def account_refused(self) -> bool:
        """The provider refused our credentials or account (401/403): another provider
        may well accept the same message."""
        return self.http_status in (401, 403)


class WebhookRejected(Exception):
    """A callback whose signature or token does not verify, or whose body is not the
    provider's format."""


class Provider(Protocol):
    """A provider adapter."""

    name: str
    channels: frozenset[ChannelName]

    async def send(self, message: OutboundMessage) -> SendResult:
        """Hand the message to the provider; raise :class:`ProviderError` on failure."""
        ...

    def parse_webhook(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> list[StatusUpdate]:
        """Verify and parse a callback; raise :class:`WebhookRejected` when it is not one."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


# Helpers shared by the HTTP adapters (additions; the protocol above is unchanged).

ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` in ``headers``, whatever the case of the keys."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, item in headers.items():
        if key.lower() == wanted:
            return item
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def http_status_error(
    status: int, provider_code: str | None, retry_after: str | None
) -> ProviderError:
    """The error for a failed HTTP response: 429 and 5xx are retryable, other 4xx are not.

    ``code`` is the provider's error code when it gave one (a short token; anything else,
    which could echo request data, is dropped), else ``http_<status>``.
    """
    usable = provider_code is not None and ERROR_CODE.fullmatch(provider_code) is not None
    code = provider_code if usable and provider_code else f"http_{status}"
    if status == 429 or status >= 500:
        return ProviderError(
            code, retryable=True, retry_after=parse_retry_after(retry_after), http_status=status
        )
    return ProviderError(code, retryable=False, http_status=status)
