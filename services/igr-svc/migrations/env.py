"""Alembic environment of igr-svc (see rn623_events.migrations)."""

from igr_svc.models import metadata
from rn623_events.migrations import run_migrations

run_migrations(metadata)
