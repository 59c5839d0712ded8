"""Run the emulators (HTTP app + SMTP sink) on loopback, in-process, for tests and dev runs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from rn623_devinfra.ports import LOCALHOST
from rn623_devinfra.provider_emulators.app import create_app
from rn623_devinfra.provider_emulators.config import EmulatorConfig, require_loopback
from rn623_devinfra.provider_emulators.serving import serve_asgi
from rn623_devinfra.provider_emulators.smtp_sink import start_smtp_sink
from rn623_devinfra.provider_emulators.state import EmulatorState
from rn623_devinfra.provider_emulators.store import (
    EmulatorStore,
    Fault,
    FaultMode,
    ProviderName,
    ReceivedMessage,
)


@dataclass
class RunningEmulators:
    """Handle on running emulators: their addresses, faults and what they received."""

    config: EmulatorConfig
    state: EmulatorState
    host: str
    http_port: int
    smtp_port: int

    @property
    def store(self) -> EmulatorStore:
        """The in-memory store (messages, request counts, faults)."""
        return self.state.store

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP app (inbox page at ``/``)."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def zenvia_base_url(self) -> str:
        """What to give ``ZenviaProvider(base_url=...)``."""
        return f"{self.http_url}/zenvia"

    @property
    def twilio_base_url(self) -> str:
        """What to give ``TwilioProvider(base_url=...)``."""
        return f"{self.http_url}/twilio"

    @property
    def meta_base_url(self) -> str:
        """What to give ``MetaWhatsAppProvider(base_url=...)``."""
        return f"{self.http_url}/meta"

    @property
    def smtp_host(self) -> str:
        """Host of the SMTP sink."""
        return self.host

    def set_fault(
        self,
        provider: ProviderName,
        mode: FaultMode,
        *,
        channel: str | None = None,
        count: int | None = None,
        seconds: float | None = None,
        retry_after: float | None = None,
    ) -> Fault:
        """Inject a fault (same meaning as ``POST /_emulator/faults``)."""
        return self.store.add_fault(
            provider, mode, channel=channel, count=count, seconds=seconds, retry_after=retry_after
        )

    def clear_faults(self, provider: ProviderName | None = None) -> None:
        """Remove the faults (of one provider, or all)."""
        self.store.clear_faults(provider)

    async def reset(self) -> None:
        """Drop pending callbacks and forget messages, counts and faults."""
        await self.state.callbacks.cancel_all()
        self.store.reset()

    def messages(
        self, provider: ProviderName | None = None, channel: str | None = None
    ) -> list[ReceivedMessage]:
        """What was received, oldest first."""
        return self.store.find(provider, channel)

    def request_count(self, provider: ProviderName) -> int:
        """How many requests reached the provider's endpoint (accepted or not)."""
        return self.store.request_counts.get(provider, 0)

    async def wait_for_messages(
        self,
        count: int = 1,
        *,
        provider: ProviderName | None = None,
        channel: str | None = None,
        max_seconds: float = 5.0,
    ) -> list[ReceivedMessage]:
        """Wait until at least ``count`` matching messages arrived; return them."""
        deadline = time.monotonic() + max_seconds
        while len(found := self.messages(provider, channel)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} messages within {max_seconds} s")
            await asyncio.sleep(0.01)
        return found

    async def wait_for_callbacks(self) -> None:
        """Wait until every scheduled delivery callback was sent (or given up)."""
        await self.state.callbacks.idle()


@contextlib.asynccontextmanager
async def running_emulators(
    config: EmulatorConfig | None = None,
    *,
    host: str = LOCALHOST,
    http_port: int = 0,
    smtp_port: int = 0,
) -> AsyncIterator[RunningEmulators]:
    """Run the HTTP emulators and the SMTP sink on loopback (port 0: a free port)."""
    require_loopback(host)
    config = config or EmulatorConfig()
    state = EmulatorState.create(config)
    app = create_app(config, state)
    smtp = await start_smtp_sink(state.store, host, smtp_port)
    try:
        async with serve_asgi(app, host, http_port) as bound_http_port:
            yield RunningEmulators(
                config=config,
                state=state,
                host=host,
                http_port=bound_http_port,
                smtp_port=smtp.sockets[0].getsockname()[1],
            )
    finally:
        smtp.close()
        await smtp.wait_closed()
