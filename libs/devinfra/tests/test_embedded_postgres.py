"""Integration tests of the embedded PostgreSQL server and the database helpers."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest

from rn623_devinfra.databases import (
    create_database,
    database_exists,
    drop_database,
    with_database,
    with_driver,
)
from rn623_devinfra.ports import free_port
from rn623_devinfra.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration


async def test_database_fixture_gives_a_fresh_database(database_url: str) -> None:
    assert database_url.startswith("postgresql+asyncpg://")
    conn = await asyncpg.connect(with_driver(database_url, "postgresql"))
    try:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO t VALUES (1), (2)")
        assert await conn.fetchval("SELECT count(*) FROM t") == 2
        assert await conn.fetchval("SHOW max_connections") == "300"
        assert await conn.fetchval("SELECT lower('ÇÃO')") == "ção"
    finally:
        await conn.close()


async def test_create_database_is_idempotent_and_drop_forces(
    postgres_admin_url: str, unique_suffix: str
) -> None:
    name = f"idem_{unique_suffix}"
    assert await create_database(postgres_admin_url, name) is True
    assert await create_database(postgres_admin_url, name) is False
    holder = await asyncpg.connect(with_database(postgres_admin_url, name, "postgresql"))
    try:
        await drop_database(postgres_admin_url, name)  # WITH (FORCE) ends the open session
        assert not await database_exists(postgres_admin_url, name)
    finally:
        holder.terminate()


async def test_restart_reuse_and_adoption(server_tmp_path: Path) -> None:
    server = EmbeddedPostgres(server_tmp_path / "data", free_port(), fsync=False)
    started = time.monotonic()
    server.start()
    first_start = time.monotonic() - started
    try:
        assert server.is_running
        await create_database(server.admin_url(), "kept")
        server.restart()
        assert server.is_running
        assert await database_exists(server.admin_url(), "kept")

        # A second object on the same directory and port adopts the running server.
        twin = EmbeddedPostgres(server_tmp_path / "data", server.port, fsync=False)
        twin.start()
        assert await database_exists(twin.admin_url(), "kept")
    finally:
        server.stop()
    assert not server.is_running
    assert (server_tmp_path / "postgres.log").exists()

    # Starting again reuses the data directory (no initdb) and keeps the data.
    server.start()
    try:
        assert await database_exists(server.admin_url(), "kept")
    finally:
        server.stop()
    print(f"first start incl. initdb: {first_start:.2f}s")


async def test_stale_pid_file_is_ignored(server_tmp_path: Path) -> None:
    server = EmbeddedPostgres(server_tmp_path / "data", free_port(), fsync=False)
    server.start()
    server.stop()
    (server_tmp_path / "data" / "postmaster.pid").write_text("999999\n")
    server.start()
    try:
        assert server.is_running
    finally:
        server.stop()
