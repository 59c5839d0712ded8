"""The Alembic migrations build exactly the schema the models describe, and unwind."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command

from retention_svc_testdata import alembic_config, migrate

pytestmark = pytest.mark.integration


async def test_migrations_match_the_models_and_downgrade_cleanly(database_url: str) -> None:
    await asyncio.to_thread(migrate, database_url)
    # raises when autogenerate would find any difference between models and schema
    await asyncio.to_thread(command.check, alembic_config(database_url))
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
    await asyncio.to_thread(migrate, database_url)
