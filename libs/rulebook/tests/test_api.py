"""deadline_for: rules in force, category narrowing, overrides and calendars together.

Every expected date below was counted by hand on a calendar (weekdays noted).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rn623_rulebook import (
    CalendarSpec,
    DeadlineOverride,
    DemandType,
    NoDeadlineRuleError,
    calendar_for,
    deadline_for,
)
from rn623_rulebook.rules import OverrideError

pytestmark = pytest.mark.unit

SP_TZ = ZoneInfo("America/Sao_Paulo")
SAO_PAULO = calendar_for(CalendarSpec(uf="SP", municipality_ibge="3550308"))
MANAUS = calendar_for(CalendarSpec(uf="AM", municipality_ibge="1302603"))


def sp(*args: int) -> datetime:
    """A local instant in São Paulo."""
    return datetime(*args, tzinfo=SP_TZ)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("demand_type", "category", "registered_at", "due", "rule_id"),
    [
        # Fri 21 Nov 2025 + 5: Mon 24, Tue 25, Wed 26, Thu 27, Fri 28
        ("assistance", None, sp(2025, 11, 21, 10), "2025-11-28", "rn623.deadline.assistance"),
        # Wed 19 Nov + 5 skipping Thu 20 (Zumbi, national since 2024): 21, 24, 25, 26, 27
        ("assistance", None, sp(2025, 11, 19, 10), "2025-11-27", "rn623.deadline.assistance"),
        # the RN 566/2022 clinical-lab rule (3) is shorter than assistance (5): it wins
        (
            "assistance",
            "outpatient_clinical_lab",
            sp(2025, 11, 21, 10),
            "2025-11-26",
            "rn566.deadline.assistance.outpatient_clinical_lab",
        ),
        # Mon 30 Jun 2025 is judged by RN 395 (21 business days), skipping 9 Jul (SP)
        (
            "high_complexity",
            None,
            sp(2025, 6, 30, 10),
            "2025-07-30",
            "rn395.deadline.high_complexity",
        ),
        # Tue 1 Jul 2025, RN 623 in force (10): 2,3,4,7,8,(9 SP holiday),10,11,14,15,16
        (
            "high_complexity",
            None,
            sp(2025, 7, 1, 10),
            "2025-07-16",
            "rn623.deadline.high_complexity",
        ),
        # Tue 23 Dec 2025 + 7 non-assistance: 24, 26, 29, 30, 31, 2 Jan, 5 Jan
        (
            "non_assistance",
            None,
            sp(2025, 12, 23, 9),
            "2026-01-05",
            "rn623.deadline.non_assistance",
        ),
    ],
)
def test_business_day_deadlines(
    demand_type: str, category: str | None, registered_at: datetime, due: str, rule_id: str
) -> None:
    deadline = deadline_for(demand_type, category, registered_at, SAO_PAULO)
    assert deadline.due_at == datetime.fromisoformat(f"{due}T23:59:59.999999-03:00")
    assert deadline.rule_id == rule_id
    assert deadline.legal_basis
    assert deadline.ruleset_id


def test_hour_deadlines_run_on_the_clock() -> None:
    urgent = deadline_for("urgent_emergency", None, sp(2025, 11, 22, 23, 30), SAO_PAULO)
    assert urgent.immediate
    assert urgent.due_at == sp(2025, 11, 23, 0, 30)  # a Sunday: hours ignore business days
    access = deadline_for(DemandType.RECORDS_ACCESS, None, sp(2025, 11, 21, 10), SAO_PAULO)
    assert access.due_at == sp(2025, 11, 24, 10)  # 72 hours
    assert access.rule_id == "rn623.deadline.records_access"


def test_a_saturday_night_in_manaus_counts_from_monday() -> None:
    # Sat 22 Nov 2025 23:30 in Manaus is already Sunday in UTC; day 1 is Mon 24
    registered = datetime(2025, 11, 23, 3, 30, tzinfo=UTC)
    deadline = deadline_for("assistance", None, registered, MANAUS)
    assert deadline.due_at == datetime.fromisoformat("2025-11-28T23:59:59.999999-04:00")


def test_an_operator_override_can_only_tighten() -> None:
    stricter = DeadlineOverride(rule_id="rn623.deadline.assistance", unit="business_days", amount=2)
    deadline = deadline_for(
        "assistance", None, sp(2025, 11, 21, 10), SAO_PAULO, overrides=[stricter]
    )
    assert deadline.due_at.date().isoformat() == "2025-11-25"
    assert deadline.rule_id == "override:rn623.deadline.assistance"
    looser = DeadlineOverride(rule_id="rn623.deadline.assistance", unit="business_days", amount=9)
    with pytest.raises(OverrideError, match=r"rn623\.deadline\.assistance"):
        deadline_for("assistance", None, sp(2025, 11, 21, 10), SAO_PAULO, overrides=[looser])


def test_a_demand_type_without_a_rule_on_that_day_is_a_clear_error() -> None:
    with pytest.raises(NoDeadlineRuleError, match=r"non_assistance.*2025-06-30"):
        deadline_for("non_assistance", None, sp(2025, 6, 30, 10), SAO_PAULO)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline_for("assistance", None, datetime(2025, 11, 21, 10), SAO_PAULO)


@settings(max_examples=300, deadline=None)
@given(
    demand_type=st.sampled_from(list(DemandType)),
    minutes=st.integers(min_value=0, max_value=3 * 366 * 24 * 60),
)
def test_a_deadline_is_never_before_its_demand(demand_type: DemandType, minutes: int) -> None:
    registered = sp(2025, 7, 1) + timedelta(minutes=minutes)  # RN 623 in force locally
    deadline = deadline_for(demand_type, None, registered, SAO_PAULO)
    assert deadline.due_at > registered
    if deadline.unit == "business_days":
        local = deadline.due_at.astimezone(SAO_PAULO.tz)
        assert SAO_PAULO.is_business_day(local.date())
        assert (local.hour, local.minute, local.second) == (23, 59, 59)


def test_hour_deadlines_are_elapsed_time_across_a_dst_change() -> None:
    # 16 Feb 2019 23:30 -02:00 in São Paulo: DST ended at midnight, the hour repeats
    registered = datetime(2019, 2, 16, 23, 30, tzinfo=SP_TZ)
    urgent = deadline_for("urgent_emergency", None, registered, SAO_PAULO)
    assert urgent.due_at.astimezone(UTC) - registered.astimezone(UTC) == timedelta(hours=1)
    new_york = datetime(2025, 11, 1, 12, tzinfo=ZoneInfo("America/New_York"))
    access = deadline_for("records_access", None, new_york, SAO_PAULO)
    assert access.due_at.astimezone(UTC) - new_york.astimezone(UTC) == timedelta(hours=72)
