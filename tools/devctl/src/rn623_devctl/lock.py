"""One devctl run per state directory: an exclusive lock released when the process ends."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "devctl.lock"


class StateLocked(RuntimeError):
    """Another devctl process already uses this state directory."""


@contextmanager
def state_lock(state: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<state>/devctl.lock`` for the duration of the block."""
    path = state / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StateLocked(
                f"another devctl (pid {owner}) is running with {state}; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
