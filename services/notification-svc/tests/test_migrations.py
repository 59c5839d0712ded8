"""The Alembic migrations build exactly the schema the models describe, and unwind."""

from __future__ import annotations

import asyncio

import pytest

from notification_svc_testdata import SERVICE_DIR
from rn623_devinfra.migrations import check_round_trip

pytestmark = pytest.mark.integration


async def test_migrations_match_the_models_and_downgrade_cleanly(database_url: str) -> None:
    await asyncio.to_thread(check_round_trip, SERVICE_DIR, database_url)
