"""Alembic environment of retention-svc (see rn623_events.migrations)."""

from retention_svc.models import metadata
from rn623_events.migrations import run_migrations

run_migrations(metadata)
