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


def create_backbone_tables() -> None:
    """In a service's first migration: the outbox and inbox tables (version 1).

    Frozen with the migrations that call it: a later change to these tables is a new
    function here and a new migration in each service, never an edit of this one.
    """
    from alembic import op
    from sqlalchemy.dialects import postgresql

    now = sa.text("now()")
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"], unique=False)
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    )


def drop_backbone_tables() -> None:
    """The downgrade of :func:`create_backbone_tables`."""
    from alembic import op

    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    )
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_inbox_processed_at", table_name="inbox")
    op.drop_table("inbox")
