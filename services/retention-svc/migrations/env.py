"""Alembic environment: runs migrations on DATABASE_URL with an async engine."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from retention_svc.models import metadata
from rn623_events.db import EVENTS_METADATA

target_metadata = [metadata, EVENTS_METADATA]


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    url = context.config.attributes.get("database_url") or os.environ["DATABASE_URL"]
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.config.attributes.get("connection") is not None:
    _run(context.config.attributes["connection"])
else:
    asyncio.run(_main())
