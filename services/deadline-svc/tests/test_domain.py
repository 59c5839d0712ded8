"""Checkpoints, scheduler verdicts and answers (pure rules, no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from deadline_svc import domain
from rn623_rulebook import CalendarSpec, calendar_for

pytestmark = pytest.mark.unit

SP = ZoneInfo("America/Sao_Paulo")
CALENDAR = calendar_for(CalendarSpec(timezone="America/Sao_Paulo", uf="SP"))
START = datetime(2025, 11, 14, 10, 0, tzinfo=SP)  # Friday; Thursday 20 is a holiday
DUE = datetime(2025, 11, 24, 23, 59, 59, 999999, tzinfo=SP)
BOTH = ("one_business_day_left", "elapsed_80_percent")


def test_checkpoint_instants() -> None:
    instants = domain.checkpoint_instants(BOTH, START, DUE, CALENDAR)
    assert instants["one_business_day_left"] == datetime(2025, 11, 21, tzinfo=SP)
    assert instants["elapsed_80_percent"] == START + (DUE - START) * 0.8


def test_the_business_day_warning_skips_a_holiday_eve() -> None:
    due = datetime(2025, 11, 21, 23, 59, 59, 999999, tzinfo=SP)  # due Friday 21
    instants = domain.checkpoint_instants(BOTH, START, due, CALENDAR)
    assert instants["one_business_day_left"] == datetime(2025, 11, 19, tzinfo=SP)  # not Thu 20


def test_checkpoints_outside_the_window_do_not_apply() -> None:
    start = datetime(2025, 11, 21, 10, 0, tzinfo=SP)
    instants = domain.checkpoint_instants(BOTH, start, start + timedelta(hours=1), CALENDAR)
    assert set(instants) == {"elapsed_80_percent"}
    with pytest.raises(ValueError, match="unknown checkpoint"):
        domain.checkpoint_instants(("halfway",), START, DUE, CALENDAR)


def test_verdicts_over_time() -> None:
    instants = domain.checkpoint_instants(BOTH, START, DUE, CALENDAR)
    early = domain.verdict(START + timedelta(days=1), DUE, instants, ())
    assert early == domain.Verdict((), False, instants["one_business_day_left"])
    eve = domain.verdict(datetime(2025, 11, 21, 9, 0, tzinfo=SP), DUE, instants, ())
    assert eve.warnings == ("one_business_day_left",)
    assert eve.next_check_at == instants["elapsed_80_percent"]
    late = domain.verdict(DUE - timedelta(minutes=1), DUE, instants, ("one_business_day_left",))
    assert late == domain.Verdict(("elapsed_80_percent",), False, DUE)
    assert domain.verdict(DUE, DUE, instants, BOTH) == domain.Verdict((), False, DUE)
    past = domain.verdict(DUE + timedelta(microseconds=1), DUE, instants, ())
    assert past == domain.Verdict((), True, None)  # the breach says it all


def test_next_check_of_closed_deadlines_is_none() -> None:
    instants = domain.checkpoint_instants(BOTH, START, DUE, CALENDAR)
    assert domain.next_check("open", DUE, instants, BOTH) == DUE
    assert domain.next_check("met", DUE, instants, ()) is None
    assert domain.next_check("breached", DUE, instants, ()) is None


def test_answers_on_time_at_the_due_instant_and_late() -> None:
    on_time = domain.answered(START, DUE, datetime(2025, 11, 19, 16, 0, tzinfo=SP), CALENDAR)
    assert on_time == domain.Outcome("met", False, 3, (5 * 24 + 6) * 3600.0)
    assert domain.answered(START, DUE, DUE, CALENDAR).status == "met"
    late = domain.answered(START, DUE, DUE + timedelta(microseconds=1), CALENDAR)
    assert (late.status, late.late, late.elapsed_business_days) == ("met_late", True, 6)


def test_business_days_left() -> None:
    assert domain.business_days_left(datetime(2025, 11, 21, 9, 0, tzinfo=SP), DUE, CALENDAR) == 1
    assert domain.business_days_left(DUE, DUE, CALENDAR) == 0
    assert domain.business_days_left(DUE + timedelta(days=2), DUE, CALENDAR) == 0
