"""Test data shared by igr-svc's test modules."""

from __future__ import annotations

from pathlib import Path

from rn623_devinfra import migrations

SERVICE_DIR = Path(__file__).resolve().parent.parent


def migrate(database_url: str) -> None:
    """Run the service's real Alembic migrations up to head."""
    migrations.migrate(SERVICE_DIR, database_url)


OPERATOR_A, OPERATOR_B = "123456", "654321"
SECRET = "igr-svc-tests-secret-0123456789abcdef"
