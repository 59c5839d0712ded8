"""Fixtures of notification-svc's tests: a migrated database, the provider emulators and
the SMTP sink on loopback, the service's API on a real port (providers call it back),
the runtime the consumers and the dispatcher share, and tokens."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from notification_svc.provider_setup import build_providers
from notification_svc.runtime import Runtime
from notification_svc.settings import NotificationSettings
from notification_svc_testdata import SECRET, migrate, service_settings
from rn623_devinfra.ports import free_port
from rn623_devinfra.provider_emulators import (
    EmulatorConfig,
    running_emulators,
)
from rn623_devinfra.provider_emulators.serving import serve_asgi
from rn623_events.auth import bearer_headers
from rn623_events.clock import ManualClock
from rn623_events.db import create_engine, session_factory


@pytest_asyncio.fixture(loop_scope="session")
async def migrated_database(database_url: str) -> str:
    """A fresh database with notification-svc's schema."""
    await asyncio.to_thread(migrate, database_url)
    return database_url


@pytest.fixture
def clock() -> ManualClock:
    """Service time: a Friday morning in São Paulo (21 Nov 2025, 10:00 -03:00)."""
    return ManualClock(datetime(2025, 11, 21, 13, 0, tzinfo=UTC))


@pytest_asyncio.fixture(loop_scope="session")
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated database."""
    engine = create_engine(migrated_database, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
def api_port() -> int:
    """The port the service's API listens on (providers call it back there)."""
    return free_port()


@pytest_asyncio.fixture(loop_scope="session")
async def emulators(api_port: int) -> AsyncIterator[Any]:
    """The Zenvia, Twilio and Meta emulators and the SMTP sink, calling back the API."""
    webhooks = f"http://127.0.0.1:{api_port}/v1/webhooks"
    config = EmulatorConfig(
        zenvia_webhook_url=f"{webhooks}/zenvia", meta_webhook_url=f"{webhooks}/meta"
    )
    async with running_emulators(config) as emu:
        yield emu


@pytest.fixture
def settings(migrated_database: str, emulators: Any, api_port: int) -> NotificationSettings:
    """The service's settings for a test."""
    return service_settings(migrated_database, emulators, api_port)


@pytest_asyncio.fixture(loop_scope="session")
async def runtime(
    engine: AsyncEngine, clock: ManualClock, settings: NotificationSettings
) -> AsyncIterator[Runtime]:
    """The runtime the consumers, the dispatcher and the timer share."""
    providers = build_providers(settings)
    yield Runtime(
        sessions=session_factory(engine), clock=clock, settings=settings, providers=providers
    )
    await providers.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def api(
    settings: NotificationSettings, clock: ManualClock, api_port: int
) -> AsyncIterator[httpx.AsyncClient]:
    """The service's API on a real loopback port, and a client of it."""
    from notification_svc.app import create_app

    async with (
        serve_asgi(create_app(settings, clock=clock), "127.0.0.1", api_port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as client,
    ):
        yield client


@pytest.fixture
def token() -> Callable[..., dict[str, str]]:
    """Authorization headers for a dev token (default: admin of every operator)."""
    return functools.partial(bearer_headers, SECRET)
