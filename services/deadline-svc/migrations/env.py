"""Alembic environment of deadline-svc (see rn623_events.migrations)."""

from deadline_svc.models import metadata
from rn623_events.migrations import run_migrations

run_migrations(metadata)
