"""Running a service's ``worker`` role: relay and consumers until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

log = logging.getLogger(__name__)

Component = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def run_components(
    components: Sequence[Component], stop: asyncio.Event | None = None
) -> None:
    """Run every component until ``stop`` is set or a signal arrives; a crash stops all.

    Each component receives the shared stop event and must return soon after it is set.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(component(stop)) for component in components]
    try:
        done, _ = await asyncio.wait(
            [*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            if task in tasks and task.exception() is not None:
                log.error(
                    "worker component crashed; stopping",
                    extra={"error_type": type(task.exception()).__name__},
                )
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` with up to 50 % jitter, returning early when ``stop`` is set."""
    delay = seconds * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay)


def periodic(action: Callable[[], Awaitable[Any]], interval: float, *, what: str) -> Component:
    """A component that runs ``action`` every ``interval`` seconds (with jitter) until
    stopped; a failed run (the database restarting, say) is logged and tried again."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await action()
            except Exception as exc:
                log.warning(f"{what} failed", extra={"error_type": type(exc).__name__})  # noqa: G004
            await sleep_unless_stopped(stop, interval)

    return run
