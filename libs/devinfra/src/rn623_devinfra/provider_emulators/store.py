"""The emulators' in-memory state: received messages, request counts and injected faults."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

ProviderName = Literal["zenvia", "twilio", "meta", "smtp"]
FaultMode = Literal[
    "rate_limit",
    "server_error",
    "timeout",
    "reject",
    "no_callback",
    "late_callback",
    "undelivered",
]
PROVIDERS: tuple[str, ...] = get_args(ProviderName)
REQUEST_FAULTS: frozenset[str] = frozenset({"rate_limit", "server_error", "timeout", "reject"})
"""Modes that change the provider's answer to the request."""
CALLBACK_FAULTS: frozenset[str] = frozenset({"no_callback", "late_callback", "undelivered"})
"""Modes that change the delivery callbacks of an accepted message."""

DEFAULT_TIMEOUT_SECONDS = 30.0
"""How long a ``timeout`` fault holds the response when ``seconds`` is not given."""
DEFAULT_LATE_CALLBACK_SECONDS = 5.0
"""How late a ``late_callback`` fault sends ``delivered`` when ``seconds`` is not given."""


@dataclass
class Fault:
    """One injected fault; ``count`` is how many more requests it applies to (None: all)."""

    id: int
    provider: ProviderName
    mode: FaultMode
    channel: str | None = None
    count: int | None = None
    seconds: float | None = None
    retry_after: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fault as JSON."""
        return {
            "id": self.id,
            "provider": self.provider,
            "channel": self.channel,
            "mode": self.mode,
            "count": self.count,
            "seconds": self.seconds,
            "retry_after": self.retry_after,
        }


@dataclass
class CallbackRecord:
    """One delivery callback the emulator sent (or tried to send)."""

    status: str
    url: str
    attempts: int = 0
    http_status: int | None = None
    ok: bool = False
    sent_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """The callback as JSON."""
        return {
            "status": self.status,
            "url": self.url,
            "attempts": self.attempts,
            "http_status": self.http_status,
            "ok": self.ok,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


@dataclass
class ReceivedMessage:
    """A message a provider endpoint accepted, or an e-mail the SMTP sink received."""

    seq: int
    provider: ProviderName
    channel: str
    id: str
    to: list[str]
    sender: str
    received_at: datetime
    text: str | None = None
    template: dict[str, Any] | None = None
    subject: str | None = None
    html: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    external_id: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    status: str = "accepted"
    callbacks: list[CallbackRecord] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The first e-mail header called ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def as_dict(self) -> dict[str, Any]:
        """The message as JSON."""
        return {
            "seq": self.seq,
            "provider": self.provider,
            "channel": self.channel,
            "id": self.id,
            "to": self.to,
            "from": self.sender,
            "received_at": self.received_at.isoformat(),
            "text": self.text,
            "template": self.template,
            "subject": self.subject,
            "html": self.html,
            "headers": [list(pair) for pair in self.headers],
            "external_id": self.external_id,
            "request": self.request,
            "status": self.status,
            "callbacks": [callback.as_dict() for callback in self.callbacks],
        }


class EmulatorStore:
    """Everything the emulators received, and the faults to inject (one event loop)."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMessage] = []
        self.request_counts: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self._seq = itertools.count(1)
        self._fault_ids = itertools.count(1)

    def count_request(self, provider: ProviderName) -> None:
        """Count one request to a provider endpoint (accepted or not)."""
        self.request_counts[provider] += 1

    def add(self, **fields: Any) -> ReceivedMessage:
        """Record a received message (``seq`` and ``received_at`` are set here)."""
        message = ReceivedMessage(seq=next(self._seq), received_at=datetime.now(UTC), **fields)
        self.messages.append(message)
        return message

    def add_fault(
        self,
        provider: ProviderName,
        mode: FaultMode,
        *,
        channel: str | None = None,
        count: int | None = None,
        seconds: float | None = None,
        retry_after: float | None = None,
    ) -> Fault:
        """Inject a fault; the oldest matching fault applies first."""
        if mode == "timeout" and seconds is None:
            seconds = DEFAULT_TIMEOUT_SECONDS
        if mode == "late_callback" and seconds is None:
            seconds = DEFAULT_LATE_CALLBACK_SECONDS
        fault = Fault(
            id=next(self._fault_ids),
            provider=provider,
            mode=mode,
            channel=channel,
            count=count,
            seconds=seconds,
            retry_after=retry_after,
        )
        self.faults.append(fault)
        return fault

    def take_fault(
        self, provider: ProviderName, channel: str, modes: frozenset[str]
    ) -> Fault | None:
        """The first fault for this request among ``modes``, counted down (a snapshot)."""
        for fault in self.faults:
            if (
                fault.provider == provider
                and fault.mode in modes
                and fault.channel in (None, channel)
            ):
                taken = replace(fault)
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                return taken
        return None

    def clear_faults(self, provider: str | None = None) -> None:
        """Remove the faults (of one provider, or all)."""
        self.faults = [f for f in self.faults if provider is not None and f.provider != provider]

    def reset(self) -> None:
        """Forget messages, request counts and faults."""
        self.messages.clear()
        self.request_counts.clear()
        self.faults.clear()

    def find(
        self, provider: str | None = None, channel: str | None = None
    ) -> list[ReceivedMessage]:
        """Received messages in arrival order, optionally of one provider and/or channel."""
        return [
            message
            for message in self.messages
            if provider in (None, message.provider) and channel in (None, message.channel)
        ]

    def by_id(self, provider: str, message_id: str) -> ReceivedMessage | None:
        """The message a provider accepted under ``message_id``."""
        return next(
            (m for m in self.messages if m.provider == provider and m.id == message_id), None
        )
