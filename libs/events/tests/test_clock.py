"""The injectable clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rn623_events import clock as clock_module
from rn623_events.clock import ManualClock, SystemClock
from rn623_events.settings import ServiceSettings

pytestmark = pytest.mark.unit


def test_system_clock_is_aware_utc_and_can_be_shifted() -> None:
    plain, ahead = SystemClock(), SystemClock(timedelta(days=3))
    now = plain.now()
    assert now.tzinfo is UTC
    assert timedelta(days=3) <= ahead.now() - now < timedelta(days=3, seconds=5)


def test_settings_shift_the_service_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOCK_OFFSET_SECONDS", "86400")
    shifted = ServiceSettings().make_clock().now() - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < shifted < timedelta(days=1, minutes=1)
    monkeypatch.delenv("CLOCK_OFFSET_SECONDS")
    assert ServiceSettings().make_clock().offset == timedelta(0)


def test_offset_file_moves_a_running_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "OFFSET_FILE_CHECK_SECONDS", 0.0)
    offset_file = tmp_path / "offset"
    clock = SystemClock(timedelta(hours=1), offset_file)
    assert timedelta(minutes=59) < clock.now() - datetime.now(UTC) < timedelta(minutes=61)
    offset_file.write_text(str(90 * 86400))
    ahead = clock.now() - datetime.now(UTC)
    assert timedelta(days=90, minutes=59) < ahead < timedelta(days=90, minutes=61)
    offset_file.write_text("not a number")
    assert clock.now() - datetime.now(UTC) > timedelta(days=90)  # the last good offset stays
    offset_file.unlink()
    assert clock.now() - datetime.now(UTC) > timedelta(days=90)


def test_settings_name_the_offset_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "OFFSET_FILE_CHECK_SECONDS", 0.0)
    offset_file = tmp_path / "offset"
    offset_file.write_text("7200")
    monkeypatch.setenv("CLOCK_OFFSET_FILE", str(offset_file))
    shifted = ServiceSettings().make_clock().now() - datetime.now(UTC)
    assert timedelta(minutes=119) < shifted < timedelta(minutes=121)


def test_manual_clock_moves_only_forward_when_told() -> None:
    start = datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC)
    clock = ManualClock(start)
    assert clock.now() == start
    clock.advance(timedelta(seconds=1))
    assert clock.now() == datetime(2026, 11, 21, tzinfo=UTC)
    assert clock.monotonic() == 1.0
    clock.set(datetime(2026, 11, 21, 1, tzinfo=UTC))
    assert clock.now().hour == 1
    with pytest.raises(ValueError, match="forward"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))
