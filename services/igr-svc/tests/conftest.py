"""Fixtures of igr-svc's tests: a migrated database, the runtime, the app, tokens."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from igr_svc.runtime import Runtime
from igr_svc.settings import IgrSettings
from igr_svc_testdata import SECRET, migrate
from rn623_events.auth import bearer_headers
from rn623_events.clock import ManualClock
from rn623_events.db import create_engine, session_factory
from rn623_events.settings import AuthSettings, KafkaSettings


@pytest_asyncio.fixture(loop_scope="session")
async def migrated_database(database_url: str) -> str:
    """A fresh database with igr-svc's schema."""
    await asyncio.to_thread(migrate, database_url)
    return database_url


@pytest.fixture
def clock() -> ManualClock:
    """Service time: 21 Nov 2025, 10:00 in Brasília (the middle of 2025Q4)."""
    return ManualClock(datetime(2025, 11, 21, 13, 0, tzinfo=UTC))


@pytest_asyncio.fixture(loop_scope="session")
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated database."""
    engine = create_engine(migrated_database, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
def runtime(engine: AsyncEngine, clock: ManualClock) -> Runtime:
    """The runtime the consumer and the closer share."""
    return Runtime(sessions=session_factory(engine), clock=clock, source="igr-svc")


@pytest_asyncio.fixture(loop_scope="session")
async def app_client(
    migrated_database: str, clock: ManualClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, its lifespan running."""
    from igr_svc.app import create_app

    settings = IgrSettings(
        database_url=migrated_database,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        auth=AuthSettings(secret=SECRET),
    )
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            yield client


@pytest.fixture
def token() -> Callable[..., dict[str, str]]:
    """Authorization headers for a dev token (default: admin of every operator)."""
    return functools.partial(bearer_headers, SECRET)
