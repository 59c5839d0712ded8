"""The short end-to-end run inside ``make test``: the whole platform, a small day, every
fault briefly, and the security checks with few fuzzing examples (``make e2e`` is the full
run). Its report goes to ``e2e/report.quick.json``."""

from __future__ import annotations

import pytest

from rn623_e2e.cli import MODES, REPORTS_DIR, run

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.mark.timeout(1200)
def test_a_short_contact_center_day_keeps_every_promise() -> None:
    report = run(
        MODES["quick"], REPORTS_DIR / "report.quick.json", None, ["day", "faults", "security"]
    )
    assert report.sections, "nothing was checked"
    assert report.figures.events_sent > 0
    assert report.figures.faults_injected >= 6
    assert not report.failures, "\n".join(report.failures)
