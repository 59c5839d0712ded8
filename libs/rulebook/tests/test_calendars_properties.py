"""Property-based checks of business-day calendars (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rn623_rulebook.calendars import (
    BusinessCalendar,
    CalendarSpec,
    CountingConvention,
    OptionalDay,
    calendar_for,
)
from rn623_rulebook.timezones import BRAZIL_TIMEZONES

pytestmark = pytest.mark.unit

SPECS = [
    CalendarSpec(),
    CalendarSpec(municipality_ibge="3550308"),
    CalendarSpec(municipality_ibge="1302603"),
    CalendarSpec(municipality_ibge="1200401"),
    CalendarSpec(uf="PE", timezone="America/Noronha"),
    CalendarSpec(uf="RJ", optional_days_off=set(OptionalDay)),
    CalendarSpec(
        municipality_ibge="2304400",
        convention=CountingConvention(non_business_start="next_business_day_is_day_zero"),
    ),
    CalendarSpec(
        uf="SP",
        extra_holidays={date(2025, 3, 10), date(2030, 6, 3)},
        extra_business_days={date(2025, 7, 9), date(2026, 2, 14)},
    ),
]

calendars = st.sampled_from(SPECS).map(calendar_for)
days = st.dates(min_value=date(2015, 1, 1), max_value=date(2040, 12, 31))
zones = st.sampled_from([UTC, *(ZoneInfo(z) for z in BRAZIL_TIMEZONES)])
starts = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2040, 11, 30), timezones=zones
)
counts = st.integers(min_value=0, max_value=40)


def _reference_add(calendar: BusinessCalendar, day: date, n: int) -> date:
    """Day-by-day reference for add_business_days (n >= 1)."""
    while n:
        day += timedelta(days=1)
        if calendar.is_business_day(day):
            n -= 1
    return day


@settings(max_examples=300, deadline=None)
@given(calendars, starts, counts)
def test_due_is_the_end_of_a_business_day_never_before_the_start(
    calendar: BusinessCalendar, start: datetime, n: int
) -> None:
    due = calendar.due_at(start, n)
    assert due.tzinfo is calendar.tz
    assert (due.hour, due.minute, due.second, due.microsecond) == (23, 59, 59, 999_999)
    assert due.astimezone(UTC) >= start.astimezone(UTC)
    if n > 0:
        assert calendar.is_business_day(due.date())
        local = calendar.local_date(start)
        # Exactly n business days after day 0, whichever convention applies.
        day_zero = local
        if (
            calendar.spec.convention.non_business_start == "next_business_day_is_day_zero"
            and not calendar.is_business_day(local)
        ):
            day_zero = calendar.next_business_day(local)
        assert calendar.business_days_between(day_zero, due.date()) == n
        assert due.date() == _reference_add(calendar, day_zero, n)
    # The fast path and the general path agree.
    assert due == calendar.end_of_day(calendar.due_day(calendar.local_date(start), n))


@settings(max_examples=200, deadline=None)
@given(calendars, starts, st.integers(min_value=0, max_value=30))
def test_due_is_monotonic_in_n(calendar: BusinessCalendar, start: datetime, n: int) -> None:
    earlier = calendar.due_at(start, n).astimezone(UTC)
    later = calendar.due_at(start, n + 1).astimezone(UTC)
    assert earlier < later


@settings(max_examples=300, deadline=None)
@given(calendars, days, st.integers(min_value=0, max_value=400))
def test_add_then_count_round_trips(calendar: BusinessCalendar, day: date, n: int) -> None:
    later = calendar.add_business_days(day, n)
    assert calendar.business_days_between(day, later) == n
    assert calendar.business_days_between(later, day) == -n
    if n:
        assert calendar.is_business_day(later)


@settings(max_examples=200, deadline=None)
@given(calendars, days, st.integers(min_value=1, max_value=400))
def test_subtracting_lands_on_the_kth_business_day_before(
    calendar: BusinessCalendar, day: date, k: int
) -> None:
    earlier = calendar.add_business_days(day, -k)
    assert earlier < day
    assert calendar.is_business_day(earlier)
    assert calendar.business_days_between(earlier, day - timedelta(days=1)) == k - 1


@settings(max_examples=300, deadline=None)
@given(calendars, days)
def test_next_and_previous_are_adjacent_business_days(
    calendar: BusinessCalendar, day: date
) -> None:
    after = calendar.next_business_day(day)
    before = calendar.previous_business_day(day)
    assert calendar.is_business_day(after)
    assert calendar.is_business_day(before)
    assert before < day < after
    assert calendar.business_days_between(day, after) == 1
    assert calendar.business_days_between(before, day) == int(calendar.is_business_day(day))
    if calendar.is_business_day(day):
        assert calendar.previous_business_day(after) == day
        assert calendar.next_business_day(before) == day


@settings(max_examples=200, deadline=None)
@given(calendars, days, st.integers(min_value=0, max_value=60))
def test_counting_matches_a_day_by_day_count(
    calendar: BusinessCalendar, a: date, span: int
) -> None:
    b = a + timedelta(days=span)
    by_hand = sum(1 for i in range(1, span + 1) if calendar.is_business_day(a + timedelta(days=i)))
    assert calendar.business_days_between(a, b) == by_hand


@settings(max_examples=200, deadline=None)
@given(calendars, days)
def test_business_day_means_weekday_without_holiday_or_an_extra_business_day(
    calendar: BusinessCalendar, day: date
) -> None:
    expected = day in calendar.spec.extra_business_days or (
        day.weekday() < 5 and calendar.holiday_name(day) is None
    )
    assert calendar.is_business_day(day) == expected


@settings(max_examples=200, deadline=None)
@given(calendars, starts, counts)
def test_remaining_is_zero_on_the_due_day_and_negative_after(
    calendar: BusinessCalendar, start: datetime, n: int
) -> None:
    due = calendar.due_at(start, n)
    assert calendar.business_days_remaining(due - timedelta(microseconds=1), due) == 0
    assert calendar.business_days_remaining(due + timedelta(microseconds=1), due) < 0
