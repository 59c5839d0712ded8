"""Smoke run of the whole-platform benchmark (``--quick``): it starts, measures every figure
and finds every effect. No timing is asserted: figures belong to ``make bench``."""

from __future__ import annotations

from pathlib import Path

import pytest
import whole_platform

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_the_quick_platform_benchmark_measures_every_figure(tmp_path: Path) -> None:
    figures = whole_platform.main(["--quick", "--no-save"])
    (row,) = figures["rates"]
    assert row["issuance"]["errors"] == 0
    assert row["issuance"]["completed_per_s"] > 0
    for target in whole_platform.TARGETS:
        assert row["fan_out"][target]["missing"] == 0, target
    assert figures["sustained_interrupted"] is None, figures["sustained_interrupted"]
    (held,) = figures["sustained"]
    assert held["backlog_samples"], "the backlog was never sampled"
    assert held["records_per_s"] > 0, "no record flow was measured"
    for target in whole_platform.TARGETS:
        assert held["fan_out"][target]["missing"] == 0, target
    assert figures["sustained_capacity_per_s"] in (0.0, 10.0)
    assert figures["limits"]["raw_insert_commit_per_s"] > 0
    assert figures["machine"]["speed_reference_per_cpu_s"] > 0
    assert figures["limits"]["kafka"]["produce_consume_per_s"] > 0
    whole_platform.plot(figures, tmp_path / "latency.png")
    assert (tmp_path / "latency.png").stat().st_size > 0
