"""Fixtures for devctl tests: a throw-away services directory holding one probe service."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

PROBE_PACKAGE = "devctl_probe_svc"

_APP = '''
"""Probe api: ready only when devctl passed the expected environment."""
import os

from fastapi import FastAPI, Response


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/readyz")
    def readyz(response: Response) -> dict[str, str]:
        expected = (
            os.environ.get("SERVICE_NAME") == "probe-svc"
            and os.environ.get("DATABASE_URL", "").endswith("/devctl_probe_svc")
            and os.environ.get("DATABASE_URL", "").startswith("postgresql+asyncpg://")
            and bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
            and bool(os.environ.get("JWT_SECRET"))
        )
        if not expected:
            response.status_code = 503
        return {"status": "ok" if expected else "bad environment"}

    return app
'''

_BROKEN_APP = """
raise RuntimeError("probe api refuses to start")
"""

_WORKER = '''
"""Probe worker: says hello, then sleeps until stopped; asked to replay its dead letters,
prints what it was given and ends."""
import os
import sys
import time

if sys.argv[1:2] == ["replay-dead-letters"]:
    print("probe replay", *sys.argv[2:], flush=True)
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SERVICE_NAME"):
        print(f"{name}={os.environ.get(name, '')}", flush=True)
    sys.exit(0)
print("probe worker started", flush=True)
while True:
    time.sleep(1)
'''

_ALEMBIC_INI = """
[alembic]
script_location = migrations
"""

_ENV = '''
"""Alembic environment of the probe service (async engine, DATABASE_URL)."""
import asyncio
import os

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine


def _run(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(os.environ["DATABASE_URL"])
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


asyncio.run(_main())
'''

_SCRIPT_MAKO = '''"""${message}"""
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
'''

_MIGRATION = '''
"""Empty first migration."""
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture
def make_probe_service(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write ``services/probe-svc`` on ``port`` and return the services directory."""

    def make(port: int, *, broken: bool = False) -> Path:
        root = tmp_path / "services"
        svc = root / "probe-svc"
        _write(
            svc / "pyproject.toml",
            f"""
            [project]
            name = "probe-svc"
            version = "0.0.0"

            [tool.rn623]
            port = {port}
            package = "{PROBE_PACKAGE}"
            """,
        )
        pkg = svc / "src" / PROBE_PACKAGE
        _write(pkg / "__init__.py", "")
        _write(pkg / "app.py", _BROKEN_APP if broken else _APP)
        _write(pkg / "worker.py", _WORKER)
        _write(svc / "alembic.ini", _ALEMBIC_INI)
        _write(svc / "migrations" / "env.py", _ENV)
        _write(svc / "migrations" / "script.py.mako", _SCRIPT_MAKO)
        _write(svc / "migrations" / "versions" / "0001_empty.py", _MIGRATION)
        return root

    return make


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment without any variable that would point devctl at existing servers."""
    for name in (
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "JWT_SECRET",
        "RN623_STATE_DIR",
        "RN623_PG_PORT",
        "RN623_BROKER_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    return dict(os.environ)
