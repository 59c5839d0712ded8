"""Worker components: a periodic action keeps running through failures until stopped."""

from __future__ import annotations

import asyncio

import pytest

from rn623_events.worker import periodic, run_components

pytestmark = pytest.mark.unit


async def test_a_periodic_action_survives_failures_and_stops_when_told() -> None:
    calls = 0
    stop = asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("database restarting")
        if calls == 4:
            stop.set()

    await asyncio.wait_for(run_components([periodic(flaky, 0.001, what="flaky")], stop), 5)
    assert calls == 4  # the failure on the second run did not end the component
