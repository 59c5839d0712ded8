"""The HS256 secret shared by dev tokens and the locally run services."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name, not a secret


def load_or_create_secret(state: Path) -> str:
    """Return ``$JWT_SECRET``, else the state file's secret (created with mode 0600 if absent)."""
    from_env = os.environ.get("JWT_SECRET")
    if from_env:
        return from_env
    path = state / SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    state.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value
