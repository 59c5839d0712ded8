"""Worker components: a periodic action keeps running through failures until stopped; the
worker's probes and metrics are served until the worker stops."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from rn623_devinfra.ports import free_port
from rn623_events.worker import (
    REPLAY_DEAD_LETTERS,
    RUN,
    periodic,
    run_components,
    worker_command,
)
from rn623_events.worker_http import worker_endpoints

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


async def test_the_worker_serves_its_probes_and_metrics_until_stopped() -> None:
    port = free_port()

    async def ok() -> None:
        return None

    async def broker_down() -> None:
        raise ConnectionError("broker unreachable")

    stop = asyncio.Event()
    served = asyncio.create_task(
        run_components(
            [worker_endpoints("127.0.0.1", port, {"database": ok, "broker": broker_down})], stop
        )
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):  # until the server listens
                try:
                    live = await client.get("/livez")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert live.status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"database": "ok", "broker": "failed: ConnectionError"}
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert "python_info" in metrics.text or "process_" in metrics.text
    finally:
        stop.set()
        await asyncio.wait_for(served, 10)
    assert served.done()
    assert served.exception() is None


def test_the_worker_command_runs_by_default_and_can_replay_dead_letters() -> None:
    assert worker_command("protocol-svc", []).command == RUN
    replay = worker_command("protocol-svc", ["replay-dead-letters", "--max-seconds", "5"])
    assert (replay.command, replay.max_seconds) == (REPLAY_DEAD_LETTERS, 5.0)
    with pytest.raises(SystemExit):
        worker_command("protocol-svc", ["purge-everything"])
