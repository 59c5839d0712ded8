"""The body of every service's Alembic ``env.py``: migrate DATABASE_URL with an async engine.

A service's ``migrations/env.py`` is two lines::

    from rn623_events.migrations import run_migrations
    run_migrations(metadata)

The service's tables and the outbox/inbox tables are compared together, so autogenerate
and ``alembic check`` see the whole schema.
"""

from __future__ import annotations

import asyncio
import os

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from rn623_events.db import EVENTS_METADATA


def run_migrations(metadata: sa.MetaData) -> None:
    """Run Alembic on the given connection (tests) or on ``DATABASE_URL``."""
    targets = [metadata, EVENTS_METADATA]

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=targets)
        with context.begin_transaction():
            context.run_migrations()

    async def run_on_url() -> None:
        url = context.config.attributes.get("database_url") or os.environ["DATABASE_URL"]
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
        await engine.dispose()

    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
    else:
        asyncio.run(run_on_url())
