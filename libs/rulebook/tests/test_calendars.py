"""Business-day calendars: hand-checked deadlines (dates checked against `calendar`)."""

from __future__ import annotations

import calendar as pycal
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from rn623_rulebook.calendars import (
    BusinessCalendar,
    CalendarSpec,
    CountingConvention,
    OptionalDay,
    calendar_for,
)
from rn623_rulebook.timezones import BRAZIL_TIMEZONES, BRAZIL_UFS, timezone_for_uf

pytestmark = pytest.mark.unit

DAY_ZERO = {"convention": CountingConvention(non_business_start="next_business_day_is_day_zero")}
CARNIVAL_OFF = {
    "optional_days_off": {
        OptionalDay.carnival_monday,
        OptionalDay.carnival_tuesday,
        OptionalDay.ash_wednesday,
    }
}
YEAR_END_OFF = {"optional_days_off": {OptionalDay.christmas_eve, OptionalDay.new_years_eve}}

NATIONAL: dict[str, Any] = {}
SP = {"uf": "SP"}
SP_CITY = {"municipality_ibge": "3550308"}
RJ = {"uf": "RJ"}
RJ_CITY = {"municipality_ibge": "3304557"}
AM = {"uf": "AM"}
AC = {"uf": "AC"}
NORONHA = {"uf": "PE", "timezone": "America/Noronha"}


def cal(**kwargs: Any) -> BusinessCalendar:
    return calendar_for(CalendarSpec(**kwargs))


def eod(day: str, offset: str) -> str:
    return f"{day}T23:59:59.999999{offset}"


# (case, spec, start, n, expected deadline). Every expected date was counted by
# hand on a printed calendar; `test_weekdays_of_the_table_dates` re-checks the
# weekdays the reasoning relies on with the `calendar` module.
DUE_CASES: list[tuple[str, dict[str, Any], str, int, str]] = [
    # Thu 17 Apr 2025: Fri 18 Good Friday, Mon 21 Tiradentes -> Tue 22 is day 1.
    (
        "good_friday_tiradentes",
        NATIONAL,
        "2025-04-17T10:00:00-03:00",
        5,
        eod("2025-04-28", "-03:00"),
    ),
    # Christmas Eve (Wed) is a business day unless opted out; 25 Dec and 1 Jan are holidays.
    ("christmas_eve", SP, "2025-12-24T09:00:00-03:00", 5, eod("2026-01-02", "-03:00")),
    (
        "christmas_eve_off",
        SP | YEAR_END_OFF,
        "2025-12-24T09:00:00-03:00",
        5,
        eod("2026-01-05", "-03:00"),
    ),
    (
        "christmas_eve_off_day_zero",
        SP | YEAR_END_OFF | DAY_ZERO,
        "2025-12-24T09:00:00-03:00",
        5,
        eod("2026-01-06", "-03:00"),
    ),
    ("new_years_eve", SP, "2025-12-31T15:00:00-03:00", 5, eod("2026-01-08", "-03:00")),
    ("year_end", SP, "2025-12-29T08:00:00-03:00", 5, eod("2026-01-06", "-03:00")),
    # Carnival 2025: Mon 3 / Tue 4 March, Ash Wednesday 5 March.
    ("carnival_2025_business", SP, "2025-02-28T12:00:00-03:00", 5, eod("2025-03-07", "-03:00")),
    (
        "carnival_2025_off",
        SP | CARNIVAL_OFF,
        "2025-02-28T12:00:00-03:00",
        5,
        eod("2025-03-12", "-03:00"),
    ),
    (
        "carnival_monday_request",
        SP | CARNIVAL_OFF,
        "2025-03-03T10:00:00-03:00",
        1,
        eod("2025-03-06", "-03:00"),
    ),
    (
        "carnival_monday_request_day_zero",
        SP | CARNIVAL_OFF | DAY_ZERO,
        "2025-03-03T10:00:00-03:00",
        1,
        eod("2025-03-07", "-03:00"),
    ),
    # Carnival Tuesday is a state holiday in RJ (python-holidays, since 2009).
    ("carnival_rj_state", RJ, "2025-02-28T12:00:00-03:00", 5, eod("2025-03-10", "-03:00")),
    # Carnival Tuesday is a municipal holiday in Manaus (Lei 448/1998).
    (
        "carnival_manaus_city",
        {"municipality_ibge": "1302603"},
        "2025-03-03T10:00:00-04:00",
        1,
        eod("2025-03-05", "-04:00"),
    ),
    # Carnival 2026: Mon 16 / Tue 17 February, Ash Wednesday 18 February.
    ("carnival_2026_business", SP, "2026-02-13T12:00:00-03:00", 3, eod("2026-02-18", "-03:00")),
    (
        "carnival_2026_off",
        SP | CARNIVAL_OFF,
        "2026-02-13T12:00:00-03:00",
        3,
        eod("2026-02-23", "-03:00"),
    ),
    ("month_end", SP, "2025-02-27T12:00:00-03:00", 2, eod("2025-03-03", "-03:00")),
    (
        "month_end_carnival_off",
        SP | CARNIVAL_OFF,
        "2025-02-27T12:00:00-03:00",
        2,
        eod("2025-03-06", "-03:00"),
    ),
    # 20 November: national only from 2024; before, state/municipal in some places.
    ("nov20_2023_national", NATIONAL, "2023-11-17T12:00:00-03:00", 1, eod("2023-11-20", "-03:00")),
    (
        "nov20_2023_sao_paulo_city",
        SP_CITY,
        "2023-11-17T12:00:00-03:00",
        1,
        eod("2023-11-21", "-03:00"),
    ),
    ("nov20_2023_rj_state", RJ, "2023-11-17T12:00:00-03:00", 1, eod("2023-11-21", "-03:00")),
    ("nov20_2024_national", NATIONAL, "2024-11-19T12:00:00-03:00", 1, eod("2024-11-21", "-03:00")),
    # State holidays.
    ("sp_9_july", SP, "2025-07-08T12:00:00-03:00", 1, eod("2025-07-10", "-03:00")),
    (
        "sp_9_july_not_national",
        NATIONAL,
        "2025-07-08T12:00:00-03:00",
        1,
        eod("2025-07-09", "-03:00"),
    ),
    ("ba_2_july", {"uf": "BA"}, "2025-07-01T12:00:00-03:00", 1, eod("2025-07-03", "-03:00")),
    ("pe_6_march", {"uf": "PE"}, "2025-03-05T12:00:00-03:00", 1, eod("2025-03-07", "-03:00")),
    # 24 June is not a Pernambuco state holiday, but it is one in Recife.
    ("pe_24_june", {"uf": "PE"}, "2025-06-23T12:00:00-03:00", 1, eod("2025-06-24", "-03:00")),
    (
        "recife_24_june",
        {"municipality_ibge": "2611606"},
        "2025-06-23T12:00:00-03:00",
        1,
        eod("2025-06-25", "-03:00"),
    ),
    # Municipal holidays.
    ("sp_city_25_january", SP_CITY, "2024-01-24T12:00:00-03:00", 1, eod("2024-01-26", "-03:00")),
    ("sp_state_25_january", SP, "2024-01-24T12:00:00-03:00", 1, eod("2024-01-25", "-03:00")),
    ("rio_city_20_january", RJ_CITY, "2025-01-17T12:00:00-03:00", 1, eod("2025-01-21", "-03:00")),
    ("rj_state_20_january", RJ, "2025-01-17T12:00:00-03:00", 1, eod("2025-01-20", "-03:00")),
    (
        "corpus_christi_sp_city",
        SP_CITY,
        "2025-06-18T12:00:00-03:00",
        1,
        eod("2025-06-20", "-03:00"),
    ),
    ("corpus_christi_sp_state", SP, "2025-06-18T12:00:00-03:00", 1, eod("2025-06-19", "-03:00")),
    (
        "corpus_christi_opted_out",
        SP | {"optional_days_off": {OptionalDay.corpus_christi}},
        "2025-06-18T12:00:00-03:00",
        1,
        eod("2025-06-20", "-03:00"),
    ),
    (
        "public_servants_day_business",
        SP,
        "2025-10-27T12:00:00-03:00",
        1,
        eod("2025-10-28", "-03:00"),
    ),
    (
        "public_servants_day_off",
        SP | {"optional_days_off": {OptionalDay.public_servants_day}},
        "2025-10-27T12:00:00-03:00",
        1,
        eod("2025-10-29", "-03:00"),
    ),
    # State corrections: São Tiago (AP) struck down from 2019; 15 Aug is Fortaleza's.
    (
        "ap_sao_tiago_2025",
        {"uf": "AP"},
        "2025-07-24T12:00:00-03:00",
        1,
        eod("2025-07-25", "-03:00"),
    ),
    (
        "ap_sao_tiago_2018",
        {"uf": "AP"},
        "2018-07-24T12:00:00-03:00",
        1,
        eod("2018-07-26", "-03:00"),
    ),
    ("ce_15_august", {"uf": "CE"}, "2025-08-14T12:00:00-03:00", 1, eod("2025-08-15", "-03:00")),
    (
        "fortaleza_15_august",
        {"municipality_ibge": "2304400"},
        "2025-08-14T12:00:00-03:00",
        1,
        eod("2025-08-18", "-03:00"),
    ),
    # Saturday 23:30 in Manaus is Sunday in UTC; same deadline as Friday's request.
    ("saturday_night_manaus", AM, "2025-03-08T23:30:00-04:00", 5, eod("2025-03-14", "-04:00")),
    (
        "saturday_night_manaus_given_in_utc",
        AM,
        "2025-03-09T03:30:00+00:00",
        5,
        eod("2025-03-14", "-04:00"),
    ),
    ("friday_manaus", AM, "2025-03-07T10:00:00-04:00", 5, eod("2025-03-14", "-04:00")),
    (
        "saturday_night_manaus_day_zero",
        AM | DAY_ZERO,
        "2025-03-08T23:30:00-04:00",
        5,
        eod("2025-03-17", "-04:00"),
    ),
    ("weekend_day_one", SP, "2025-05-17T10:00:00-03:00", 1, eod("2025-05-19", "-03:00")),
    (
        "weekend_day_zero",
        SP | DAY_ZERO,
        "2025-05-17T10:00:00-03:00",
        1,
        eod("2025-05-20", "-03:00"),
    ),
    # One instant, four zones: 2025-05-16T01:30Z is still Thursday west of Noronha.
    ("instant_sao_paulo", SP, "2025-05-16T01:30:00+00:00", 1, eod("2025-05-16", "-03:00")),
    ("instant_manaus", AM, "2025-05-16T01:30:00+00:00", 1, eod("2025-05-16", "-04:00")),
    ("instant_rio_branco", AC, "2025-05-16T01:30:00+00:00", 1, eod("2025-05-16", "-05:00")),
    ("instant_noronha", NORONHA, "2025-05-16T01:30:00+00:00", 1, eod("2025-05-16", "-02:00")),
    ("instant_sao_paulo_later", SP, "2025-05-16T02:30:00+00:00", 1, eod("2025-05-16", "-03:00")),
    ("instant_noronha_later", NORONHA, "2025-05-16T02:30:00+00:00", 1, eod("2025-05-19", "-02:00")),
    ("rio_branco_late_thursday", AC, "2025-05-15T23:30:00-05:00", 1, eod("2025-05-16", "-05:00")),
    ("rio_branco_instant_in_sp", SP, "2025-05-15T23:30:00-05:00", 1, eod("2025-05-19", "-03:00")),
    # Historical DST (Sao Paulo): began 2018-11-04 00:00, ended 2019-02-17 00:00.
    ("dst_begins", SP, "2018-11-03T23:30:00-03:00", 1, eod("2018-11-05", "-02:00")),
    ("dst_begins_plus_5", SP, "2018-11-03T23:30:00-03:00", 5, eod("2018-11-09", "-02:00")),
    ("dst_still_on", SP, "2019-02-13T10:00:00-02:00", 2, eod("2019-02-15", "-02:00")),
    ("dst_ends", SP, "2019-02-15T10:00:00-02:00", 1, eod("2019-02-18", "-03:00")),
    # The day DST ended repeats 23:00-23:59; its end is the later (-03:00) pass.
    (
        "dst_ending_day_is_business",
        SP | {"extra_business_days": {date(2019, 2, 16)}},
        "2019-02-15T10:00:00-02:00",
        1,
        eod("2019-02-16", "-03:00"),
    ),
    # Operator extras.
    (
        "extra_holiday",
        SP | {"extra_holidays": {date(2025, 7, 10)}},
        "2025-07-08T12:00:00-03:00",
        1,
        eod("2025-07-11", "-03:00"),
    ),
    (
        "extra_business_day",
        SP | {"extra_business_days": {date(2025, 7, 9)}},
        "2025-07-08T12:00:00-03:00",
        1,
        eod("2025-07-09", "-03:00"),
    ),
    # n = 0: the end of day 0.
    ("zero_days", SP, "2025-04-19T10:00:00-03:00", 0, eod("2025-04-19", "-03:00")),
    (
        "zero_days_day_zero",
        SP | DAY_ZERO,
        "2025-04-19T10:00:00-03:00",
        0,
        eod("2025-04-22", "-03:00"),
    ),
]


@pytest.mark.parametrize(
    ("spec", "start", "n", "expected"),
    [
        pytest.param(spec, start, n, expected, id=case)
        for case, spec, start, n, expected in DUE_CASES
    ],
)
def test_due_at(spec: dict[str, Any], start: str, n: int, expected: str) -> None:
    calendar = cal(**spec)
    due = calendar.due_at(datetime.fromisoformat(start), n)
    assert due.isoformat() == expected
    assert due.tzinfo is calendar.tz
    assert (
        calendar.due_day(datetime.fromisoformat(start).astimezone(calendar.tz).date(), n)
        == due.date()
    )


def test_weekdays_of_the_table_dates() -> None:
    checked = {
        (2025, 4, 17): pycal.THURSDAY,
        (2025, 4, 18): pycal.FRIDAY,
        (2025, 4, 21): pycal.MONDAY,
        (2025, 4, 28): pycal.MONDAY,
        (2025, 12, 24): pycal.WEDNESDAY,
        (2025, 12, 31): pycal.WEDNESDAY,
        (2026, 1, 1): pycal.THURSDAY,
        (2025, 3, 3): pycal.MONDAY,
        (2025, 3, 8): pycal.SATURDAY,
        (2026, 2, 16): pycal.MONDAY,
        (2023, 11, 20): pycal.MONDAY,
        (2024, 11, 20): pycal.WEDNESDAY,
        (2025, 7, 9): pycal.WEDNESDAY,
        (2025, 7, 2): pycal.WEDNESDAY,
        (2025, 6, 24): pycal.TUESDAY,
        (2024, 1, 25): pycal.THURSDAY,
        (2025, 1, 20): pycal.MONDAY,
        (2025, 6, 19): pycal.THURSDAY,
        (2025, 10, 28): pycal.TUESDAY,
        (2025, 7, 25): pycal.FRIDAY,
        (2018, 7, 25): pycal.WEDNESDAY,
        (2025, 8, 15): pycal.FRIDAY,
        (2025, 5, 16): pycal.FRIDAY,
        (2018, 11, 3): pycal.SATURDAY,
        (2019, 2, 16): pycal.SATURDAY,
    }
    for (year, month, day), weekday in checked.items():
        assert pycal.weekday(year, month, day) == weekday, (year, month, day)


def test_movable_feasts_2025_and_2026() -> None:
    national = cal()
    optional = cal(optional_days_off=set(OptionalDay))
    assert national.holiday_name(date(2025, 4, 18)) == "Sexta-feira Santa"
    assert national.holiday_name(date(2026, 4, 3)) == "Sexta-feira Santa"
    for day in (date(2025, 3, 3), date(2025, 3, 4), date(2026, 2, 16), date(2026, 2, 17)):
        assert optional.holiday_name(day) == "Carnaval"
        assert national.holiday_name(day) is None
    assert optional.holiday_name(date(2025, 3, 5)) == "Quarta-feira de Cinzas"
    assert optional.holiday_name(date(2025, 6, 19)) == "Corpus Christi"


@pytest.mark.parametrize(
    ("spec", "day", "expected"),
    [
        (NATIONAL, date(2025, 4, 18), "Sexta-feira Santa"),
        (SP_CITY, date(2024, 1, 25), "Aniversário da Cidade de São Paulo"),
        (SP, date(2025, 7, 9), "Revolução Constitucionalista"),
        ({"uf": "DF"}, date(2025, 4, 21), "Tiradentes; Fundação de Brasília"),
        (SP | {"extra_holidays": {date(2025, 3, 10)}}, date(2025, 3, 10), "Feriado da operadora"),
        (SP | {"extra_business_days": {date(2025, 7, 9)}}, date(2025, 7, 9), None),
        (SP, date(2025, 5, 17), None),  # a plain Saturday
        (NATIONAL, date(2023, 11, 20), None),
        (NATIONAL, date(2024, 11, 20), "Dia Nacional de Zumbi e da Consciência Negra"),
    ],
)
def test_holiday_name(spec: dict[str, Any], day: date, expected: str | None) -> None:
    assert cal(**spec).holiday_name(day) == expected


def test_is_business_day() -> None:
    sp = cal(**SP)
    assert sp.is_business_day(date(2025, 7, 8))
    assert not sp.is_business_day(date(2025, 7, 9))  # state holiday
    assert not sp.is_business_day(date(2025, 7, 12))  # Saturday
    assert sp.is_business_day(date(2025, 3, 3))  # Carnival is a business day by default
    saturday_worked = cal(**SP | {"extra_business_days": {date(2025, 7, 12)}})
    assert saturday_worked.is_business_day(date(2025, 7, 12))


def test_next_and_previous_business_day() -> None:
    national = cal()
    assert national.next_business_day(date(2025, 4, 17)) == date(2025, 4, 22)
    assert national.previous_business_day(date(2025, 4, 22)) == date(2025, 4, 17)
    assert national.next_business_day(date(2025, 12, 31)) == date(2026, 1, 2)
    assert national.previous_business_day(date(2026, 1, 2)) == date(2025, 12, 31)


def test_add_business_days() -> None:
    national = cal()
    assert national.add_business_days(date(2025, 4, 17), 5) == date(2025, 4, 28)
    assert national.add_business_days(date(2025, 4, 19), 0) == date(2025, 4, 19)
    assert national.add_business_days(date(2025, 4, 28), -5) == date(2025, 4, 17)
    assert national.add_business_days(date(2025, 4, 27), -1) == date(2025, 4, 25)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (date(2025, 4, 17), date(2025, 4, 28), 5),
        (date(2025, 4, 28), date(2025, 4, 17), -5),
        (date(2025, 4, 18), date(2025, 4, 21), 0),
        (date(2025, 4, 17), date(2025, 4, 17), 0),
        (date(2025, 12, 29), date(2026, 1, 6), 5),
        (date(2025, 1, 1), date(2025, 12, 31), 254),  # 261 weekdays - 7 weekday holidays (SP)
    ],
)
def test_business_days_between(a: date, b: date, expected: int) -> None:
    assert cal(**SP).business_days_between(a, b) == expected


def test_business_days_in_2025_match_a_count_by_hand() -> None:
    weekdays = sum(1 for day in _days(date(2025, 1, 1), date(2025, 12, 31)) if day.weekday() < 5)
    assert weekdays == 261
    # SP 2025 holidays on weekdays: 1 Jan, 18 Apr, 21 Apr, 1 May, 9 Jul, 20 Nov, 25 Dec;
    # on weekends: 7 Sep, 12 Oct, 2 Nov, 15 Nov.
    assert cal(**SP).business_days_between(date(2024, 12, 31), date(2025, 12, 31)) == 261 - 7


def test_business_days_remaining() -> None:
    calendar = cal()
    tz = calendar.tz
    due = calendar.due_at(datetime(2025, 4, 17, 10, tzinfo=tz), 5)
    assert due == datetime(2025, 4, 28, 23, 59, 59, 999999, tzinfo=tz)
    assert calendar.business_days_remaining(datetime(2025, 4, 17, 12, tzinfo=tz), due) == 5
    assert calendar.business_days_remaining(datetime(2025, 4, 26, 12, tzinfo=tz), due) == 1
    assert calendar.business_days_remaining(datetime(2025, 4, 28, 23, tzinfo=tz), due) == 0
    assert calendar.business_days_remaining(datetime(2025, 4, 29, 9, tzinfo=tz), due) == -1
    # Tue 29, Wed 30, (Thu 1 May holiday), Fri 2 May have gone by.
    assert calendar.business_days_remaining(datetime(2025, 5, 3, 9, tzinfo=tz), due) == -3
    # Given in UTC: 2025-04-29T02:00Z is still 28 April in São Paulo.
    assert calendar.business_days_remaining(datetime(2025, 4, 29, 2, tzinfo=UTC), due) == 0


def test_business_days_remaining_is_negative_right_after_a_friday_deadline() -> None:
    calendar = cal()
    due = calendar.due_at(datetime(2025, 4, 17, 10, tzinfo=calendar.tz), 4)
    assert due.date() == date(2025, 4, 25)
    saturday = datetime(2025, 4, 26, 10, tzinfo=calendar.tz)
    assert calendar.business_days_between(saturday.date(), due.date()) == 0
    assert calendar.business_days_remaining(saturday, due) == -1


def test_holidays_between() -> None:
    assert cal(**SP).holidays_between(date(2025, 4, 17), date(2025, 4, 21)) == [
        (date(2025, 4, 18), "Sexta-feira Santa"),
        (date(2025, 4, 21), "Tiradentes"),
    ]
    assert cal(**SP).holidays_between(date(2025, 4, 21), date(2025, 4, 17)) == []
    # Weekend holidays are listed too (7 Sep 2025 is a Sunday).
    assert (date(2025, 9, 7), "Independência do Brasil") in cal().holidays_between(
        date(2025, 9, 1), date(2025, 9, 30)
    )


def test_years_beyond_the_default_window_are_built_lazily() -> None:
    calendar = BusinessCalendar(CalendarSpec(uf="SP"))
    # 25 Dec 2060 is a Saturday; Fri 24 Dec 2060 is a business day.
    assert pycal.weekday(2060, 12, 25) == pycal.SATURDAY
    assert calendar.holiday_name(date(2060, 12, 25)) == "Natal"
    assert calendar.is_business_day(date(2060, 12, 24))
    assert calendar.add_business_days(date(2060, 12, 31), 1) == date(2061, 1, 3)
    assert calendar.holiday_name(date(1998, 7, 9)) == "Revolução Constitucionalista"
    # Crossing the end of the index while adding.
    start = date(2040, 12, 20)
    far = calendar.add_business_days(start, 300)
    assert calendar.business_days_between(start, far) == 300
    assert calendar.add_business_days(far, -300) == start


def test_out_of_range_dates_are_refused() -> None:
    calendar = cal()
    with pytest.raises(ValueError, match="1900-2100"):
        calendar.is_business_day(date(1899, 12, 31))
    with pytest.raises(ValueError, match="1900-2100"):
        calendar.add_business_days(date(2100, 12, 20), 30)


def test_due_at_needs_an_aware_start_and_a_non_negative_n() -> None:
    calendar = cal()
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.due_at(datetime(2025, 4, 17, 10), 5)
    with pytest.raises(ValueError, match="n must be"):
        calendar.due_at(datetime(2025, 4, 17, 10, tzinfo=UTC), -1)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.business_days_remaining(datetime(2025, 4, 17), datetime(2025, 4, 18, tzinfo=UTC))


# -- specs --------------------------------------------------------------------------


def test_spec_defaults() -> None:
    spec = CalendarSpec()
    assert spec.timezone == "America/Sao_Paulo"
    assert spec.uf is None
    assert spec.optional_days_off == frozenset()
    assert spec.convention.non_business_start == "next_business_day_is_day_one"
    assert CalendarSpec(uf="am").timezone == "America/Manaus"
    assert CalendarSpec(uf="AM", timezone="America/Eirunepe").timezone == "America/Eirunepe"
    city = CalendarSpec(municipality_ibge="1200401")
    assert (city.uf, city.timezone) == ("AC", "America/Rio_Branco")


def test_spec_is_frozen_hashable_and_cached() -> None:
    a = CalendarSpec(
        uf="SP", extra_holidays=[date(2025, 3, 10)], optional_days_off=["christmas_eve"]
    )
    b = CalendarSpec(
        uf="SP", extra_holidays={date(2025, 3, 10)}, optional_days_off={OptionalDay.christmas_eve}
    )
    assert a == b
    assert hash(a) == hash(b)
    assert calendar_for(a) is calendar_for(b)
    with pytest.raises(ValidationError):
        a.uf = "RJ"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "America/New_York"}, "Brazil's IANA zones"),
        ({"timezone": "Europe/Lisbon"}, "Brazil's IANA zones"),
        ({"uf": "XX"}, "unknown"),
        ({"uf": "RJ", "municipality_ibge": "3550308"}, "not in UF RJ"),
        ({"municipality_ibge": "355030"}, "7 digits"),
        ({"municipality_ibge": "9950308"}, "not in UF"),
        (
            {"extra_holidays": {date(2025, 1, 2)}, "extra_business_days": {date(2025, 1, 2)}},
            "both extra holidays and extra business days",
        ),
        ({"extra_holidays": {date(1850, 1, 2)}}, "supported years"),
        ({"optional_days_off": {"carnival"}}, "optional_days_off"),
        ({"convention": {"non_business_start": "whatever"}}, "non_business_start"),
        ({"holidays": []}, "Extra inputs"),
    ],
)
def test_invalid_specs_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CalendarSpec(**kwargs)


def test_municipality_without_data_is_accepted_but_flagged() -> None:
    campinas = cal(municipality_ibge="3509502")
    assert campinas.spec.uf == "SP"
    assert not campinas.has_municipal_data
    assert cal(**SP_CITY).has_municipal_data


# -- time zones ---------------------------------------------------------------------


def test_timezones() -> None:
    assert len(BRAZIL_TIMEZONES) == 16
    assert len(BRAZIL_UFS) == 27
    for zone in BRAZIL_TIMEZONES:
        ZoneInfo(zone)  # every zone exists in the installed tz database
    for uf in BRAZIL_UFS:
        assert timezone_for_uf(uf) in BRAZIL_TIMEZONES
    assert timezone_for_uf("ac") == "America/Rio_Branco"
    assert timezone_for_uf("PE") == "America/Recife"
    assert timezone_for_uf("TO") == "America/Araguaina"
    with pytest.raises(ValueError, match="unknown Brazilian UF"):
        timezone_for_uf("ZZ")


def test_current_offsets_of_the_four_brazilian_times() -> None:
    moment = datetime(2025, 7, 1, 12, tzinfo=UTC)
    offsets = {zone: moment.astimezone(ZoneInfo(zone)).utcoffset() for zone in BRAZIL_TIMEZONES}
    assert offsets["America/Noronha"] == timedelta(hours=-2)
    assert offsets["America/Sao_Paulo"] == timedelta(hours=-3)
    assert offsets["America/Manaus"] == timedelta(hours=-4)
    assert offsets["America/Rio_Branco"] == timedelta(hours=-5)
    assert offsets["America/Eirunepe"] == timedelta(hours=-5)
    assert set(offsets.values()) == {timedelta(hours=h) for h in (-2, -3, -4, -5)}


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
