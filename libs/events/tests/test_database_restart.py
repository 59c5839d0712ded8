"""What a real PostgreSQL restart raises is recognised as the database being away."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from rn623_devinfra.ports import free_port
from rn623_devinfra.postgres import EmbeddedPostgres
from rn623_events.db import is_infrastructure_error

pytestmark = pytest.mark.integration


async def test_every_error_a_restart_raises_is_an_infrastructure_error(
    server_tmp_path: Path,
) -> None:
    """Connections met midway by a restart see refusals, resets, and PostgreSQL's own
    "the database system is shutting down / starting up" (57P03): a worker must wait
    those out, never count them against a message or give up a provider's outcome."""
    server = EmbeddedPostgres(server_tmp_path / "data", free_port(), fsync=False)
    server.start()
    engine = create_async_engine(server.url("postgres"), pool_size=4, max_overflow=4)
    errors: list[BaseException] = []
    stopping = asyncio.Event()

    async def transact() -> None:
        while not stopping.is_set():
            try:
                async with engine.connect() as conn, conn.begin():
                    await conn.execute(sa.text("SELECT pg_sleep(0.005)"))
            except Exception as exc:
                errors.append(exc)
                await asyncio.sleep(0.002)

    workers = [asyncio.create_task(transact()) for _ in range(6)]
    try:
        await asyncio.sleep(0.5)
        for _ in range(2):
            await asyncio.to_thread(server.restart)
            await asyncio.sleep(0.5)
    finally:
        stopping.set()
        await asyncio.gather(*workers)
        with contextlib.suppress(Exception):
            await engine.dispose()
        server.stop()
    assert errors, "the restarts went unnoticed"
    misread = {f"{type(e).__name__}: {str(e).splitlines()[0][:80]}" for e in errors
               if not is_infrastructure_error(e)}  # fmt: skip
    assert not misread
