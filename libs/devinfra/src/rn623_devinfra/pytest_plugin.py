"""Pytest fixtures for real servers: PostgreSQL and a Kafka-protocol broker, started lazily.

Auto-loaded through the ``pytest11`` entry point. Nothing starts unless a test asks for a
fixture, so ``pytest -m unit`` starts no server. ``TEST_DATABASE_URL`` (admin URL) and
``TEST_KAFKA_BOOTSTRAP_SERVERS`` point the fixtures at existing servers instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from rn623_devinfra.broker import TansuBroker
    from rn623_devinfra.postgres import EmbeddedPostgres

_started_brokers: list[TansuBroker] = []


def _server_dir() -> Path:
    """A new temp directory outside pytest's base temp.

    As root, PostgreSQL runs as another user who must traverse the path, and every pytest
    session that starts (another engineer's, say) resets ``/tmp/pytest-of-root`` to 0700.
    """
    return Path(tempfile.mkdtemp(prefix="rn623-test-"))


@pytest.fixture
def server_tmp_path() -> Iterator[Path]:
    """A temporary directory for server data (e.g. an own ``EmbeddedPostgres``), removed after."""
    path = _server_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """The embedded PostgreSQL of this test session (skips when ``TEST_DATABASE_URL`` is set)."""
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("an external PostgreSQL is configured (TEST_DATABASE_URL)")
    from rn623_devinfra.ports import free_port
    from rn623_devinfra.postgres import EmbeddedPostgres

    base = _server_dir()
    server = EmbeddedPostgres(base / "data", free_port(), fsync=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_url(request: pytest.FixtureRequest) -> str:
    """Admin URL (``postgresql://``) of the test PostgreSQL server."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        from rn623_devinfra.databases import with_driver

        return with_driver(external, "postgresql")
    server: EmbeddedPostgres = request.getfixturevalue("postgres_server")
    return server.admin_url()


@pytest_asyncio.fixture(loop_scope="session")
async def database_url(postgres_admin_url: str) -> AsyncIterator[str]:
    """A fresh, uniquely named database (``postgresql+asyncpg://`` URL), dropped afterwards."""
    from rn623_devinfra.databases import create_database, drop_database, with_database

    name = f"test_{secrets.token_hex(6)}"
    await create_database(postgres_admin_url, name)
    try:
        yield with_database(postgres_admin_url, name, "postgresql+asyncpg")
    finally:
        await drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """The session's Tansu broker, for fault tests that freeze or thaw it.

    Skips when ``TEST_KAFKA_BOOTSTRAP_SERVERS`` points at an external broker.
    """
    if os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("an external broker is configured (TEST_KAFKA_BOOTSTRAP_SERVERS)")
    from rn623_devinfra.broker import TansuBroker
    from rn623_devinfra.ports import free_port

    log_path = tmp_path_factory.mktemp("rn623-broker") / "tansu.log"
    broker = TansuBroker(free_port(), log_path)
    broker.start()
    _started_brokers.append(broker)
    try:
        yield broker
    finally:
        _started_brokers.remove(broker)
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(request: pytest.FixtureRequest) -> str:
    """Bootstrap servers of the test broker (external or the session's Tansu)."""
    external = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        return external
    broker: TansuBroker = request.getfixturevalue("tansu_broker")
    return broker.bootstrap_servers


@pytest.fixture
def unique_suffix() -> str:
    """A short random hex string for topic and consumer-group names."""
    return secrets.token_hex(4)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Thaw a broker a failed fault test left frozen, so later tests are not stuck."""
    for broker in _started_brokers:
        if broker.frozen:
            broker.thaw()
