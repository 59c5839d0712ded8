"""Where devctl keeps its state: the repository root and the git-ignored state directory."""

from __future__ import annotations

import os
from pathlib import Path


def _is_workspace_root(path: Path) -> bool:
    """True when ``path`` holds the uv workspace's root ``pyproject.toml``."""
    pyproject = path / "pyproject.toml"
    if not (path / "uv.lock").is_file() or not pyproject.is_file():
        return False
    return "[tool.uv.workspace]" in pyproject.read_text(encoding="utf-8")


def repo_root() -> Path:
    """The workspace root above the current directory, else above this package, else cwd."""
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if _is_workspace_root(candidate):
                return candidate
    return Path.cwd()


def state_dir() -> Path:
    """``$RN623_STATE_DIR`` or ``<repo root>/.state`` (created if missing)."""
    configured = os.environ.get("RN623_STATE_DIR")
    path = Path(configured).expanduser() if configured else repo_root() / ".state"
    path.mkdir(parents=True, exist_ok=True)
    return path.absolute()


def logs_dir(state: Path) -> Path:
    """The directory of the server and service logs inside the state directory."""
    path = state / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
