"""The run's report: every check with its outcome, and the figures the issue asks for."""

from __future__ import annotations

import json
import platform as host
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Check:
    """One verified promise: what was checked, whether it held, and the numbers behind it."""

    name: str
    ok: bool
    expected: Any = None
    observed: Any = None
    detail: str = ""


@dataclass
class Figures:
    """What the run did and what it saw."""

    events_sent: int = 0  # HTTP writes and Kafka records that ask the platform to change state
    effects_observed: int = 0  # effects counted afterwards across the services
    lost: int = 0  # expected effects that never appeared
    duplicated: int = 0  # effects that appeared more than once
    faults_injected: int = 0
    bad_inputs_tried: int = 0  # bad tokens, other tenants' data, poison messages, fuzzing


@dataclass
class Report:
    """Checks grouped by part of the suite, plus the figures; written as JSON."""

    mode: str
    figures: Figures = field(default_factory=Figures)
    sections: dict[str, list[Check]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def check(
        self,
        section: str,
        name: str,
        ok: bool,
        *,
        expected: Any = None,
        observed: Any = None,
        detail: str = "",
    ) -> bool:
        """Record one check's outcome; return it so callers can branch on it."""
        self.sections.setdefault(section, []).append(
            Check(name, bool(ok), expected, observed, detail)
        )
        return bool(ok)

    def count(
        self, section: str, name: str, *, expected: int, observed: int, detail: str = ""
    ) -> bool:
        """Check an effect was counted exactly ``expected`` times; tally lost and doubled."""
        self.figures.effects_observed += observed
        if observed < expected:
            self.figures.lost += expected - observed
        elif observed > expected:
            self.figures.duplicated += observed - expected
        return self.check(
            section, name, observed == expected, expected=expected, observed=observed, detail=detail
        )

    @property
    def failures(self) -> list[str]:
        """``section: check`` of every check that did not hold."""
        return [
            f"{section}: {check.name} (expected {check.expected!r}, observed {check.observed!r})"
            + (f" — {check.detail}" if check.detail else "")
            for section, checks in self.sections.items()
            for check in checks
            if not check.ok
        ]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data, with the machine and the commit."""
        return {
            "mode": self.mode,
            "started_at": self.started_at,
            "machine": {
                "python": host.python_version(),
                "platform": host.platform(),
                "cpus": _cpu_count(),
            },
            "commit": _git_commit(),
            "figures": asdict(self.figures),
            "durations_seconds": {k: round(v, 1) for k, v in self.durations.items()},
            "passed": not self.failures,
            "failures": self.failures,
            "sections": {
                section: [asdict(check) for check in checks]
                for section, checks in self.sections.items()
            },
        }

    def write(self, path: Path) -> None:
        """Write the report as indented JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")


def _cpu_count() -> int | None:
    import os

    return os.cpu_count()


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return None
    return result.stdout.strip() or None
