"""igr-svc application factory (uvicorn igr_svc.app:create_app --factory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from igr_svc.api import router
from igr_svc.runtime import Runtime
from igr_svc.settings import IgrSettings
from rn623_events.clock import Clock
from rn623_events.db import create_engine, session_factory
from rn623_events.health import database_check, kafka_check
from rn623_events.http import create_service_app
from rn623_events.telemetry import exporting_traces, instrument_engine


def create_app(settings: IgrSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """Build the igr-svc API."""
    settings = settings or IgrSettings()
    clock = clock or settings.make_clock()
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    if exporting_traces(settings.telemetry):
        instrument_engine(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = Runtime.build(settings, session_factory(engine), clock)
        try:
            yield
        finally:
            await engine.dispose()

    return create_service_app(
        settings=settings,
        title="igr-svc",
        version="1.0.0",
        routers=[router],
        readiness_checks={
            "database": database_check(engine),
            "broker": kafka_check(settings.kafka),
        },
        lifespan=lifespan,
        clock=clock,
    )
