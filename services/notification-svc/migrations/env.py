"""Alembic environment of notification-svc (see rn623_events.migrations)."""

from notification_svc.models import metadata
from rn623_events.migrations import run_migrations

run_migrations(metadata)
