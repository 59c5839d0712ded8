"""The capacity search's control flow (which rates it holds, what it keeps when a step
breaks), with the platform and the steps replaced: no server, no timing."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import whole_platform

pytestmark = pytest.mark.unit


def search(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capacity: float,
    broken: float | None = None,
    unstoppable: float | None = None,
) -> tuple[list[float], dict[str, Any]]:
    """Run the search against a platform that holds every rate up to ``capacity`` (a
    step at ``broken`` raises, the platform of ``unstoppable`` raises as it stops); the
    rates tried in order, and the figures."""
    tried: list[float] = []

    @contextlib.contextmanager
    def no_platform(*_: Any, **__: Any) -> Iterator[None]:
        """Stands in for ``Platform``: nothing is started."""
        yield None
        if tried[-1] == unstoppable:
            raise RuntimeError("[red]postgres[/red] did not stop")

    async def step(_: Any, rate: float, __: Any) -> dict[str, Any]:
        tried.append(rate)
        if rate == broken:
            raise RuntimeError("GET [/readyz] answered 503")  # not markup
        latency = {"p50_ms": 100.0, "p99_ms": 400.0, "missing": 0}
        return {
            "offered_per_s": rate,
            "seconds": 60.0,
            "keeps_up": rate <= capacity,
            "issuance": {"completed_per_s": rate},
            "records_per_s": rate * 13,
            "backlog_slope_per_s": 0.0,
            "backlog_max": 100,
            "backlog_last_by_source": {"deadline-svc": 10},
            "cpu_cores_by_process": {"PostgreSQL": 0.5},
            "fan_out": dict.fromkeys(whole_platform.TARGETS, latency),
        }

    monkeypatch.setattr(whole_platform, "Platform", no_platform)
    monkeypatch.setattr(whole_platform, "sustained_step", step)
    args = argparse.Namespace(sustain_rates=[50, 100, 150, 200], bisections=2, sustain_seconds=60)
    steps, interrupted = whole_platform.capacity(tmp_path, args)
    figures = {
        "rates": [{"issuance": {"completed_per_s": 1.0}}],
        "limits": {"raw_insert_commit_per_s": 1.0, "kafka": {"produce_consume_per_s": 1.0}},
    }
    return tried, whole_platform.with_capacity(figures, steps, interrupted)


def test_the_search_holds_rates_up_to_the_first_not_held_then_bisects(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tried, figures = search(monkeypatch, tmp_path, capacity=120)
    assert tried == [50, 100, 150, 120, 140]
    assert figures["sustained_capacity_per_s"] == 120
    assert not figures["sustained_capacity_is_lower_bound"]
    assert figures["sustained_interrupted"] is None


def test_a_step_that_breaks_keeps_the_steps_before_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tried, figures = search(monkeypatch, tmp_path, capacity=120, broken=150)
    assert tried == [50, 100, 150]
    assert [step["offered_per_s"] for step in figures["sustained"]] == [50, 100]
    assert figures["sustained_capacity_per_s"] == 100
    assert figures["sustained_capacity_is_lower_bound"]
    assert "150/s did not complete: RuntimeError" in figures["sustained_interrupted"]
    whole_platform.report_sustained({**figures, "machine": {"cpus": 2}})


def test_a_step_measured_before_its_platform_failed_to_stop_is_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tried, figures = search(monkeypatch, tmp_path, capacity=120, unstoppable=100)
    assert tried == [50, 100]
    assert [step["offered_per_s"] for step in figures["sustained"]] == [50, 100]
    assert figures["sustained_capacity_per_s"] == 100
    assert (
        "100/s was measured, then its platform did not stop" in (figures["sustained_interrupted"])
    )
    whole_platform.report_sustained({**figures, "machine": {"cpus": 2}})


def test_a_first_step_that_breaks_leaves_no_capacity_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tried, figures = search(monkeypatch, tmp_path, capacity=120, broken=50)
    assert tried == [50]
    assert figures["sustained"] == []
    assert figures["sustained_capacity_per_s"] == 0.0
    assert "50/s did not complete" in figures["sustained_interrupted"]
    whole_platform.report_sustained({**figures, "machine": {"cpus": 2}})
