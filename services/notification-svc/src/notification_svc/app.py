"""notification-svc application factory (uvicorn notification_svc.app:create_app --factory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from notification_svc.api import router
from notification_svc.provider_setup import build_providers
from notification_svc.runtime import Runtime
from notification_svc.settings import NotificationSettings
from notification_svc.webhooks import callback_committer
from rn623_events.clock import Clock
from rn623_events.db import create_engine, session_factory
from rn623_events.health import database_check, kafka_check
from rn623_events.http import create_service_app
from rn623_events.telemetry import exporting_traces, instrument_engine


def create_app(settings: NotificationSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """Build the notification-svc API."""
    settings = settings or NotificationSettings()
    clock = clock or settings.make_clock()
    engine = create_engine(
        settings.database_url, pool_size=settings.database_pool_size, pre_ping=False
    )
    if exporting_traces(settings.telemetry):
        instrument_engine(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the API only parses callbacks; it never sends, but it needs the adapters' keys
        providers = build_providers(settings)
        app.state.runtime = runtime = Runtime(
            sessions=session_factory(engine),
            clock=clock,
            settings=settings,
            providers=providers,
        )
        app.state.callbacks = callbacks = callback_committer(runtime)
        try:
            yield
        finally:
            await callbacks.close()
            await providers.aclose()
            await engine.dispose()

    return create_service_app(
        settings=settings,
        title="notification-svc",
        version="1.0.0",
        routers=[router],
        readiness_checks={
            "database": database_check(engine),
            "broker": kafka_check(settings.kafka),
        },
        lifespan=lifespan,
        clock=clock,
    )
