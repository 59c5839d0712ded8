"""Turn SIGINT/SIGTERM into an exception so any startup step can be abandoned cleanly."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rn623_devctl.console import warn

_HANDLED = (signal.SIGINT, signal.SIGTERM)
# A wrapper such as ``uv run`` may forward the same Ctrl-C a moment later: stay quiet then.
_ECHO_WINDOW = 1.5
_first_stop_at: list[float] = []


class StopRequested(BaseException):
    """Ctrl-C or SIGTERM was received."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    """Signal handler: interrupt the main thread with ``StopRequested``."""
    _first_stop_at[:] = [time.monotonic()]
    raise StopRequested(signum)


def _already_stopping(signum: int, _frame: FrameType | None) -> None:
    """Signal handler used while shutting down: do not interrupt the shutdown."""
    if _first_stop_at and time.monotonic() - _first_stop_at[0] < _ECHO_WINDOW:
        return
    warn(f"{signal.Signals(signum).name} received: already stopping, please wait")


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise ``StopRequested``."""
    previous = {sig: signal.signal(sig, _raise_stop) for sig in _HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def shielded() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM only print a notice (used for the shutdown)."""
    previous = {sig: signal.signal(sig, _already_stopping) for sig in _HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
