"""What every emulated endpoint shares: configuration, store, callbacks, fault handling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import Response

from rn623_devinfra.provider_emulators.callbacks import (
    CallbackBuilder,
    CallbackDispatcher,
    DeliveryKind,
)
from rn623_devinfra.provider_emulators.config import EmulatorConfig
from rn623_devinfra.provider_emulators.store import (
    CALLBACK_FAULTS,
    REQUEST_FAULTS,
    EmulatorStore,
    ProviderName,
    ReceivedMessage,
)


@dataclass
class EmulatorState:
    """The state of one emulator app (shared with the SMTP sink)."""

    config: EmulatorConfig
    store: EmulatorStore
    callbacks: CallbackDispatcher

    @classmethod
    def create(cls, config: EmulatorConfig) -> EmulatorState:
        """A fresh state: empty store, no pending callbacks."""
        return cls(config, EmulatorStore(), CallbackDispatcher(config))


@dataclass(frozen=True)
class FaultResponses:
    """A provider's own error responses for the request faults."""

    rate_limit: Callable[[], Response]
    server_error: Callable[[], Response]
    reject: Callable[[], Response]


def format_retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds when whole (fractions kept for fast tests)."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


async def request_fault(
    state: EmulatorState, provider: ProviderName, channel: str, responses: FaultResponses
) -> Response | None:
    """The error response of the request fault that applies now, if any.

    A ``timeout`` fault holds the request ``seconds`` and then lets it proceed, as a slow
    provider does: a client that gave up may still find its message sent.
    """
    fault = state.store.take_fault(provider, channel, REQUEST_FAULTS)
    if fault is None:
        return None
    if fault.mode == "timeout":
        await asyncio.sleep(fault.seconds or 0)
        return None
    if fault.mode == "rate_limit":
        response = responses.rate_limit()
        if fault.retry_after is not None:
            response.headers["Retry-After"] = format_retry_after(fault.retry_after)
        return response
    if fault.mode == "server_error":
        return responses.server_error()
    return responses.reject()


def schedule_delivery(
    state: EmulatorState,
    provider: ProviderName,
    message: ReceivedMessage,
    build: CallbackBuilder,
) -> None:
    """Plan ``sent`` now and ``delivered`` (or ``failed``) later, as the faults say."""
    fault = state.store.take_fault(provider, message.channel, CALLBACK_FAULTS)
    if fault is not None and fault.mode == "no_callback":
        return
    final: DeliveryKind = (
        "failed" if fault is not None and fault.mode == "undelivered" else "delivered"
    )
    delay = state.config.delivered_delay
    if fault is not None and fault.mode == "late_callback":
        delay = fault.seconds or 0.0
    state.callbacks.deliver(message, [(0.0, "sent"), (delay, final)], build)
