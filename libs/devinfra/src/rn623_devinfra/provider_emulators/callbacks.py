"""Delivery callbacks: sent in the background, in order, retried while the receiver is down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import aiohttp

from rn623_devinfra.provider_emulators.config import EmulatorConfig
from rn623_devinfra.provider_emulators.store import CallbackRecord, ReceivedMessage

logger = logging.getLogger(__name__)

DeliveryKind = Literal["sent", "delivered", "failed"]
"""What a callback reports, before each provider words it its own way."""


@dataclass(frozen=True)
class Callback:
    """One HTTP callback, ready to POST (body already signed in ``headers``)."""

    url: str
    headers: dict[str, str]
    body: bytes
    status: str  # the provider's own word for it, e.g. "undelivered"


CallbackBuilder = Callable[[DeliveryKind], Callback | None]
"""Builds the callback of one step when it is due; None when there is nowhere to send it."""


class CallbackDispatcher:
    """Runs the callback sequences of accepted messages as background tasks."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        # aiohttp rather than httpx: a callback costs the emulators about a third of the CPU,
        # and they share the benchmark's cores with the service they call back.
        self._client: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Bounds the callbacks in flight, so that a callback's timeout counts from its send,
        # not from the time it waited for a connection.
        self._slots = asyncio.Semaphore(max(1, config.callback_concurrency))

    def deliver(
        self,
        message: ReceivedMessage,
        steps: Sequence[tuple[float, DeliveryKind]],
        build: CallbackBuilder,
    ) -> None:
        """Send each step's callback after its delay (seconds), one after the other."""
        task = asyncio.get_running_loop().create_task(self._run(message, steps, build))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        message: ReceivedMessage,
        steps: Sequence[tuple[float, DeliveryKind]],
        build: CallbackBuilder,
    ) -> None:
        for delay, kind in steps:
            if delay > 0:
                await asyncio.sleep(delay)
            message.status = kind
            callback = build(kind)
            if callback is None:
                continue
            record = CallbackRecord(status=callback.status, url=callback.url)
            message.callbacks.append(record)
            await self._post(callback, record)

    async def _post(self, callback: Callback, record: CallbackRecord) -> None:
        if self._client is None:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max(1, self._config.callback_concurrency)),
                timeout=aiohttp.ClientTimeout(total=self._config.callback_timeout),
            )
        attempts = max(1, self._config.callback_attempts)
        for attempt in range(1, attempts + 1):
            record.attempts = attempt
            try:
                async with (
                    self._slots,
                    self._client.post(
                        callback.url, data=callback.body, headers=callback.headers
                    ) as response,
                ):
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                record.http_status = None
                logger.debug("callback attempt %d failed: %s", attempt, type(exc).__name__)
            else:
                record.http_status = status
                if status < 500 and status != 429:
                    record.ok = 200 <= status < 300
                    record.sent_at = datetime.now(UTC)
                    return
            if attempt < attempts:
                await asyncio.sleep(min(self._config.callback_backoff * 2 ** (attempt - 1), 2.0))
        logger.warning("callback to %s gave up after %d attempts", callback.url, attempts)

    @property
    def pending(self) -> int:
        """How many callback sequences are still running."""
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until every scheduled callback has been sent (or given up)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Drop every pending callback."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel pending callbacks and close the HTTP client."""
        await self.cancel_all()
        if self._client is not None:
            await self._client.close()
            self._client = None
