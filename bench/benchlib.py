"""What the benchmark scripts share: where results go, machine details, percentiles."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"


def machine_info() -> dict[str, Any]:
    """Where the figures were measured."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": commit,
        "measured_at": datetime.now(UTC).isoformat(),
        "speed_reference_per_cpu_s": speed_reference(),
    }


_REFERENCE_DOCUMENT = {
    "type": "protocol.opened",
    "data": {"protocol_number": "77700120261125000001", "demands": list(range(20))},
    "headers": {f"h{i}": "x" * 20 for i in range(10)},
}


def speed_reference(cpu_seconds: float = 0.5) -> float:
    """JSON round trips of an event-sized document per CPU-second of this process. The
    same machine ran up to three times slower on some days than on others, so every
    figure is saved next to this one, to be compared with another run's."""
    done = 0
    started = time.process_time()
    while (spent := time.process_time() - started) < cpu_seconds:
        for _ in range(200):
            json.loads(json.dumps(_REFERENCE_DOCUMENT))
        done += 200
    return done / spent


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile (NaN when there are no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


def save_results(sections: Mapping[str, Any]) -> Path:
    """Merge ``sections`` into bench/results.json (floats to 3 decimals); other keys stay."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(json.loads(json.dumps(sections), parse_float=lambda t: round(float(t), 3)))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return RESULTS.relative_to(ROOT)


def postmaster_pid(data_dir: Path) -> int | None:
    """The PID of the PostgreSQL cluster running in ``data_dir`` (its backends are its
    children), or None when it is not running."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    return None


class CpuMeter:
    """CPU time used by named process trees between two readings (psutil), to tell which
    process limits a run: a root's children count with it (PostgreSQL's backends with
    its postmaster, reaped ones included), except for the roots named in ``alone`` (a
    parent of the others, say)."""

    def __init__(self, roots: Mapping[str, int], alone: Iterable[str] = ()) -> None:
        self.roots = dict(roots)
        self.alone = frozenset(alone)  # counted without their children
        self._start: dict[str, float] = {}
        self._started_at = 0.0

    def _used(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for name, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                if name in self.alone:
                    times = root.cpu_times()
                    used[name] = times.user + times.system
                    continue
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            total = 0.0
            for proc in tree:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                total += times.user + times.system
            children = root.cpu_times()  # children already waited for
            used[name] = total + children.children_user + children.children_system
        return used

    def start(self) -> None:
        """Take the first reading."""
        self._start = self._used()
        self._started_at = time.monotonic()

    def cores(self) -> dict[str, float]:
        """Cores each tree used on average since ``start`` (1.0 = one core all the time)."""
        elapsed = time.monotonic() - self._started_at
        now = self._used()
        return {
            name: (now[name] - self._start[name]) / elapsed
            for name in now
            if name in self._start and elapsed > 0
        }
