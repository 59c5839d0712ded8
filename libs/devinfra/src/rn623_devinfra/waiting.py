"""Waiting in tests for something another task or process will make true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]], max_seconds: float = 60, interval: float = 0.1
) -> None:
    """Return once ``check`` holds; raise AssertionError if it does not within ``max_seconds``."""
    deadline = time.monotonic() + max_seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {max_seconds} s")
        await asyncio.sleep(interval)
