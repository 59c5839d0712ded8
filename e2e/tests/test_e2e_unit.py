"""Pure logic of the end-to-end suite: synthetic data, expectations and the report."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from rn623_e2e.day import quarter_of
from rn623_e2e.platform import Platform
from rn623_e2e.report import Report
from rn623_e2e.traffic import Beneficiary, beneficiary, cpf
from rn623_events.contracts.common import cpf_has_valid_check_digits

pytestmark = pytest.mark.unit


def test_synthetic_cpfs_have_valid_check_digits() -> None:
    rng = random.Random(1)
    for _ in range(500):
        digits = "".join(c for c in cpf(rng) if c.isdigit())
        assert cpf_has_valid_check_digits(digits)


def test_the_expected_receipt_channel_follows_preference_then_the_default_order() -> None:
    assert Beneficiary("x", "n", "a@b.com", "11", ["sms"]).expected_channel() == "sms"
    assert Beneficiary("x", "n", "a@b.com", "11", []).expected_channel() == "whatsapp"
    assert Beneficiary("x", "n", "a@b.com", None, ["whatsapp"]).expected_channel() == "email"
    assert Beneficiary("x", "n", None, "11", ["email"]).expected_channel() == "whatsapp"


def test_beneficiaries_of_the_day_use_every_channel() -> None:
    rng = random.Random(2)
    channels = {beneficiary(rng, n).expected_channel() for n in range(10)}
    assert channels == {"whatsapp", "sms", "email"}


def test_quarter_of_uses_brasilia_time() -> None:
    # 02:00 UTC on 1 October is still 30 September in Brasília
    quarter, months = quarter_of(datetime(2026, 10, 1, 2, tzinfo=UTC))
    assert quarter == "2026Q3"
    assert months == [date(2026, 7, 1), date(2026, 8, 1), date(2026, 9, 1)]


def test_report_counts_lost_and_doubled_effects(tmp_path: Path) -> None:
    report = Report("quick")
    assert report.count("faults", "deadlines", expected=10, observed=10)
    assert not report.count("faults", "receipts", expected=10, observed=8)
    assert not report.count("faults", "provider calls", expected=10, observed=11)
    assert (report.figures.lost, report.figures.duplicated) == (2, 1)
    assert report.figures.effects_observed == 29
    assert len(report.failures) == 2
    report.write(tmp_path / "report.json")
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["passed"] is False
    assert written["figures"]["lost"] == 2


def test_advancing_the_platform_clock_rewrites_the_offset_file(tmp_path: Path) -> None:
    platform = Platform(tmp_path)
    platform.advance(timedelta(days=90))
    platform.advance(timedelta(hours=1))
    assert float(platform.offset_file.read_text()) == 90 * 86400 + 3600
    assert platform.now() - datetime.now(UTC) > timedelta(days=90)
    with pytest.raises(ValueError, match="forward"):
        platform.advance(timedelta(seconds=-1))
