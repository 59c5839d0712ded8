"""Child processes with a log file, each in its own session: only devctl decides when they stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO


class ManagedProcess:
    """A subprocess whose output goes to ``log_path`` and which is stopped as a process group."""

    def __init__(
        self,
        label: str,
        command: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
    ) -> None:
        self.label = label
        self.command = list(command)
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.exit_reported = False
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Process id once started."""
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start the process in a new session, appending its output to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self._log.write(f"--- devctl: starting {self.label} at {stamp}\n".encode())
        self._log.flush()
        self._process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def poll(self) -> int | None:
        """Exit code if the process has ended, else None."""
        return self._process.poll() if self._process else None

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to end; return its exit code or None."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal_group(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the process group (ignored when it is already gone)."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signum)

    def close_log(self) -> None:
        """Close the parent's handle on the log file."""
        if self._log is not None:
            self._log.close()
            self._log = None


def stop_processes(processes: Sequence[ManagedProcess], grace: float = 10.0) -> list[str]:
    """SIGTERM each process group, wait up to ``grace`` s, then SIGKILL; return those killed."""
    started = [proc for proc in processes if proc.pid is not None]
    for proc in started:
        proc.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(proc.poll() is None for proc in started):
        time.sleep(0.05)
    killed = [proc.label for proc in started if proc.poll() is None]
    for proc in started:
        proc.signal_group(signal.SIGKILL)  # also reaps stray children of exited leaders
    for proc in started:
        if proc.wait(5) is None and proc.label not in killed:
            killed.append(proc.label)
        proc.close_log()
    return killed
