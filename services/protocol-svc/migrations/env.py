"""Alembic environment of protocol-svc (see rn623_events.migrations)."""

from protocol_svc.models import metadata
from rn623_events.migrations import run_migrations

run_migrations(metadata)
