"""Fixtures of the event-backbone tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from events_backbone import Backbone, make_backbone


@pytest_asyncio.fixture(loop_scope="session")
async def backbone(
    database_url: str, kafka_bootstrap_servers: str, unique_suffix: str
) -> AsyncIterator[Backbone]:
    """A fresh database with outbox/inbox/effects tables, a topic and a DLQ topic."""
    bb = await make_backbone(database_url, kafka_bootstrap_servers, unique_suffix)
    try:
        yield bb
    finally:
        await bb.close()
