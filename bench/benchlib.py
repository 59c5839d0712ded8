"""What the benchmark scripts share: where results go, machine details, percentiles."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    }


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
