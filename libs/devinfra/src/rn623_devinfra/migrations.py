"""Running a service's Alembic migrations from tests and tools."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def alembic_config(service_dir: Path, database_url: str) -> Config:
    """The Alembic configuration of the service in ``service_dir``, pointed at a database."""
    config = Config(str(service_dir / "alembic.ini"))
    config.set_main_option("script_location", str(service_dir / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def migrate(service_dir: Path, database_url: str) -> None:
    """Run the service's real migrations up to head."""
    command.upgrade(alembic_config(service_dir, database_url), "head")


def check_round_trip(service_dir: Path, database_url: str) -> None:
    """Migrate to head, fail if the schema differs from the models (``alembic check``),
    downgrade to base and migrate again: what every service's migration test asserts."""
    config = alembic_config(service_dir, database_url)
    command.upgrade(config, "head")
    command.check(config)  # raises when autogenerate would find any difference
    command.downgrade(config, "base")
    command.upgrade(config, "head")
