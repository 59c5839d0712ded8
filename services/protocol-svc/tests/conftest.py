"""Fixtures of protocol-svc's tests: a migrated database, the app, tokens."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from protocol_svc.app import create_app
from protocol_svc.settings import ProtocolSettings
from protocol_svc_testdata import migrate
from rn623_events.auth import bearer_headers
from rn623_events.clock import ManualClock
from rn623_events.settings import AuthSettings, KafkaSettings

SECRET = "protocol-svc-tests-secret-0123456789abcdef"


@pytest_asyncio.fixture(loop_scope="session")
async def migrated_database(database_url: str) -> str:
    """A fresh database with protocol-svc's schema."""
    await asyncio.to_thread(migrate, database_url)
    return database_url


@pytest.fixture
def clock() -> ManualClock:
    """Service time: a Friday morning in São Paulo (21 Nov 2025, 10:00 -03:00)."""
    return ManualClock(datetime(2025, 11, 21, 13, 0, tzinfo=UTC))


@pytest_asyncio.fixture(loop_scope="session")
async def app_client(
    migrated_database: str, clock: ManualClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, its lifespan running."""
    settings = ProtocolSettings(
        database_url=migrated_database,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        auth=AuthSettings(secret=SECRET),
        sequence_block_size=5,
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
