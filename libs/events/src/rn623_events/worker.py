"""Running a service's ``worker`` role: relay and consumers until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from rn623_events.dlq import replay_service_dead_letters
from rn623_events.settings import ServiceSettings
from rn623_events.topics import dlq_topic

log = logging.getLogger(__name__)

Component = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

RUN = "run"
REPLAY_DEAD_LETTERS = "replay-dead-letters"


def worker_command(service: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The worker's command line: ``run`` (the default) or ``replay-dead-letters``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {service.replace('-', '_')}.worker",
        description=f"{service} worker.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default=RUN,
        choices=[RUN, REPLAY_DEAD_LETTERS],
        help=(
            f"{RUN}: the consumers, timers and outbox relay until SIGTERM; "
            f"{REPLAY_DEAD_LETTERS}: feed this service's dead letters back through its "
            "consumers once (after fixing what made them fail), print how many, and exit"
        ),
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="how long a replay may read the dead-letter topic (default 60)",
    )
    return parser.parse_args(argv)


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


async def sleep_unless_stopped(
    stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None
) -> None:
    """Sleep ``seconds`` with up to 50 % jitter, returning early when ``stop`` is set
    (or ``wake``: there is work again)."""
    delay = seconds * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto
    await wait_for_any([stop] if wake is None else [stop, wake], delay)


async def wait_for_any(events: Sequence[asyncio.Event], seconds: float) -> None:
    """Return as soon as one of ``events`` is set, or after ``seconds``."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


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


async def run_worker(
    command: argparse.Namespace | None,
    settings: ServiceSettings,
    consumers: Sequence[Any],
    components: Sequence[Component],
) -> None:
    """Do what the worker's command line asks: replay the service's dead letters through
    ``consumers`` and return, or run ``components`` until SIGTERM (the default)."""
    if command is not None and command.command == REPLAY_DEAD_LETTERS:
        counts = await replay_service_dead_letters(
            settings.kafka,
            dlq_topic(settings.service_name),
            consumers,
            max_seconds=command.max_seconds,
        )
        for consumer, count in counts.items():
            print(f"{consumer}: {count} dead letters replayed")  # the command's output
        return
    await run_components(components)
