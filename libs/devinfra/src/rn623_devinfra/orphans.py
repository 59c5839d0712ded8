"""Remember the processes a run starts, so that the next run can end those a crash left behind."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)


class ProcessRegistry:
    """A JSON file of ``label -> (pid, create_time)`` for the children of one run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, label: str, pid: int) -> None:
        """Record a started process."""
        entries = self._read()
        with contextlib.suppress(psutil.Error):
            entries[label] = {"pid": pid, "created": psutil.Process(pid).create_time()}
            self._write(entries)

    def clear(self) -> None:
        """Forget every process (after a clean shutdown)."""
        self.path.unlink(missing_ok=True)

    def reap(self, timeout: float = 5.0) -> list[str]:
        """Terminate (then kill) recorded processes that are still alive; return their labels."""
        alive: list[tuple[str, psutil.Process]] = []
        for label, entry in self._read().items():
            try:
                proc = psutil.Process(int(entry["pid"]))
                if abs(proc.create_time() - float(entry["created"])) < 1.0:
                    alive.append((label, proc))
            except (psutil.Error, KeyError, TypeError, ValueError):
                continue
        for _, proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, still = psutil.wait_procs([proc for _, proc in alive], timeout=timeout)
        for proc in still:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self.clear()
        return [label for label, _ in alive]

    def _read(self) -> dict[str, dict[str, float]]:
        """The recorded entries (empty when the file is missing or unreadable)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, entries: dict[str, dict[str, float]]) -> None:
        """Replace the file atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=1), encoding="utf-8")
        tmp.replace(self.path)
