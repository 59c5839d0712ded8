"""protocol-svc application factory (uvicorn protocol_svc.app:create_app --factory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from protocol_svc.api import router
from protocol_svc.numbering import SequenceAllocator
from protocol_svc.operations import Runtime
from protocol_svc.settings import ProtocolSettings
from rn623_events.clock import Clock
from rn623_events.db import create_engine, session_factory
from rn623_events.health import database_check, kafka_check
from rn623_events.http import create_service_app
from rn623_events.telemetry import exporting_traces, instrument_engine


def create_app(settings: ProtocolSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """Build the protocol-svc API."""
    settings = settings or ProtocolSettings()
    clock = clock or settings.make_clock()
    engine = create_engine(
        settings.database_url, pool_size=settings.database_pool_size, pre_ping=False
    )
    # Sequence blocks are reserved while a request's transaction holds a connection:
    # a pool of their own means a full request pool can never starve them (deadlock).
    sequences_engine = create_engine(settings.database_url, pool_size=2)
    if exporting_traces(settings.telemetry):
        # a span per SQL statement only pays off where a trace backend reads it
        instrument_engine(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = Runtime(
            engine=engine,
            sessions=session_factory(engine),
            allocator=SequenceAllocator(sequences_engine, settings.sequence_block_size),
            clock=clock,
            source=settings.service_name,
            issue_group_max=settings.issue_group_max,
            issue_concurrency=settings.issue_concurrency,
        )
        try:
            yield
        finally:
            await app.state.runtime.issuance.close()
            await engine.dispose()
            await sequences_engine.dispose()

    return create_service_app(
        settings=settings,
        title="protocol-svc",
        version="1.0.0",
        routers=[router],
        readiness_checks={
            "database": database_check(engine),
            "broker": kafka_check(settings.kafka),
        },
        lifespan=lifespan,
        clock=clock,
    )
