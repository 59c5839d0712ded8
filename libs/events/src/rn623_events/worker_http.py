"""The worker's own small HTTP server: ``/livez``, ``/readyz`` and ``/metrics``.

A worker has no API, but it holds the metrics that matter most (consumer lag, dead
letters, outbox depth, scheduler gauges) and must be probed like any other process.
The server runs on the worker's event loop, so a loop stuck in a long computation stops
answering ``/livez`` and the orchestrator restarts it. Off unless ``WORKER_PORT`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping

import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from rn623_events.health import Check, database_check, health_router, kafka_check
from rn623_events.metrics import metrics_app
from rn623_events.settings import ServiceSettings
from rn623_events.worker import Component


class _Server(uvicorn.Server):
    """A uvicorn server that leaves the signals to the worker (run_components)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handler: the worker's stop event ends the server."""
        yield


def worker_endpoints(host: str, port: int, checks: Mapping[str, Check]) -> Component:
    """A component serving the probes and the process's metrics until stopped."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(health_router(checks))
    app.add_route("/metrics", metrics_app(), include_in_schema=False)  # type: ignore[arg-type]

    async def run(stop: asyncio.Event) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        server = _Server(config)
        serving = asyncio.create_task(server.serve())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        stopping.cancel()
        await serving  # a port already taken raises here and stops the worker

    return run


def worker_http(settings: ServiceSettings, engine: AsyncEngine) -> list[Component]:
    """The worker's HTTP component when ``WORKER_PORT`` is set (database and broker checks)."""
    if settings.worker_port is None:
        return []
    checks: dict[str, Check] = {
        "database": database_check(engine),
        "broker": kafka_check(settings.kafka),
    }
    return [worker_endpoints(settings.worker_host, settings.worker_port, checks)]
