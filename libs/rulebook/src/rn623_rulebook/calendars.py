"""Business-day calendars and the RN 623 deadline convention.

A business day is Monday to Friday minus the holidays that apply to the operator:
national and state holidays (python-``holidays``, corrected by the packaged data),
the municipality's holidays (packaged data), the optional days (pontos
facultativos) the operator chose to take off, and the operator's own extra
holidays; finally the operator's extra business days are business days whatever
the rest says.

Deadline convention (DESIGN §2): the day of the request is day 0 and is not
counted; the deadline is the end of the Nth business day counted after it, in the
operator's time zone. DESIGN writes the end as 23:59:59.999; here it is the last
microsecond, 23:59:59.999999 (the same instant at millisecond precision). How a
request on a non-business day counts is an open legal question, see
:class:`CountingConvention`.

Each calendar precomputes, lazily and per range of years, the ordinals of its
business days and a running count, so adding or counting business days is a
couple of array look-ups (O(1)), not a day-by-day loop.
"""

from __future__ import annotations

import functools
import threading
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final, Literal, Self
from zoneinfo import ZoneInfo

from holidays.countries.brazil import Brazil
from pydantic import BaseModel, ConfigDict, model_validator

from rn623_rulebook.municipal import (
    EASTER_OFFSETS,
    MovableFeast,
    Municipality,
    easter_sunday,
    municipal_data,
)
from rn623_rulebook.timezones import BRAZIL_TIMEZONES, UF_IBGE_CODES, timezone_for_uf

__all__ = [
    "BRAZIL_TIMEZONES",
    "DEFAULT_TIMEZONE",
    "MAX_YEAR",
    "MIN_YEAR",
    "OPERATOR_HOLIDAY_NAME",
    "BusinessCalendar",
    "CalendarSpec",
    "CountingConvention",
    "OptionalDay",
    "calendar_for",
    "timezone_for_uf",
]

MIN_YEAR: Final = 1900
MAX_YEAR: Final = 2100  # python-holidays covers 1890-2100
DEFAULT_TIMEZONE: Final = "America/Sao_Paulo"
OPERATOR_HOLIDAY_NAME: Final = "Feriado da operadora"
_DEFAULT_YEARS: Final = (2015, 2040)
_LANGUAGE: Final = "pt_BR"


class OptionalDay(StrEnum):
    """Pontos facultativos, dated by python-holidays' Brazil ``optional`` category.

    They are business days unless the operator opts out of them. Corpus Christi is
    only optional nationally: where a municipality makes it a holiday (São Paulo
    city, for one) the municipal data makes it a non-business day regardless.
    """

    carnival_monday = "carnival_monday"
    carnival_tuesday = "carnival_tuesday"
    ash_wednesday = "ash_wednesday"
    corpus_christi = "corpus_christi"
    public_servants_day = "public_servants_day"
    christmas_eve = "christmas_eve"
    new_years_eve = "new_years_eve"


_OPTIONAL_EASTER_OFFSETS: Final = {
    OptionalDay.carnival_monday: EASTER_OFFSETS[MovableFeast.carnival_monday],
    OptionalDay.carnival_tuesday: EASTER_OFFSETS[MovableFeast.carnival_tuesday],
    OptionalDay.ash_wednesday: EASTER_OFFSETS[MovableFeast.ash_wednesday],
    OptionalDay.corpus_christi: EASTER_OFFSETS[MovableFeast.corpus_christi],
}
_OPTIONAL_FIXED: Final = {
    OptionalDay.public_servants_day: (10, 28),
    OptionalDay.christmas_eve: (12, 24),
    OptionalDay.new_years_eve: (12, 31),
}


def _classify_optional(day: date) -> OptionalDay | None:
    """Tell which optional day ``day`` is, from the Easter and fixed-date rules."""
    for kind, (month, dom) in _OPTIONAL_FIXED.items():
        if (day.month, day.day) == (month, dom):
            return kind
    offset = (day - easter_sunday(day.year)).days
    for kind, easter_offset in _OPTIONAL_EASTER_OFFSETS.items():
        if offset == easter_offset:
            return kind
    return None


NonBusinessStart = Literal["next_business_day_is_day_one", "next_business_day_is_day_zero"]


class CountingConvention(BaseModel):
    """How a request that arrives on a non-business day is counted.

    DESIGN §2 says such a request "starts counting on the next business day".
    Whether that next business day is day 1 or day 0 is an open legal question
    (RN 623/2024 does not say; no published ANS guidance was found):

    - ``next_business_day_is_day_one`` (default, the stricter reading): the
      deadline is the Nth business day strictly after the request day, whatever
      that day is, so a Saturday request is due with the previous Friday's;
    - ``next_business_day_is_day_zero``: the next business day plays the part of
      the request day (day 0, not counted), so such deadlines fall one business
      day later than under the default.

    Requests on business days are counted the same way by both.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    non_business_start: NonBusinessStart = "next_business_day_is_day_one"


class CalendarSpec(BaseModel):
    """What an operator's business-day calendar is made of (frozen, hashable).

    ``timezone`` defaults to the UF's zone (:func:`timezone_for_uf`), or to
    America/Sao_Paulo (Brasília time) without a UF. ``uf`` defaults to the
    municipality's state. ``optional_days_off`` defaults to empty: every ponto
    facultativo counts as a business day. That is the strictest reading (a
    ponto facultativo is not a holiday by law and yields the earliest deadlines),
    so an operator must opt in, per day, to treating one as a day off.
    ``extra_business_days`` win over everything else (even weekends).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    timezone: str = DEFAULT_TIMEZONE
    uf: str | None = None
    municipality_ibge: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    extra_business_days: frozenset[date] = frozenset()
    optional_days_off: frozenset[OptionalDay] = frozenset()
    convention: CountingConvention = CountingConvention()

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        values = dict(data)
        uf = values.get("uf")
        if isinstance(uf, str):
            values["uf"] = uf = uf.strip().upper() or None
        code = values.get("municipality_ibge")
        if isinstance(code, int):
            values["municipality_ibge"] = code = str(code)
        if uf is None and isinstance(code, str):
            states = {v: k for k, v in UF_IBGE_CODES.items()}
            values["uf"] = uf = states.get(code.strip()[:2])
        if values.get("timezone") is None:
            values["timezone"] = timezone_for_uf(uf) if isinstance(uf, str) else DEFAULT_TIMEZONE
        return values

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.timezone not in BRAZIL_TIMEZONES:
            raise ValueError(f"timezone must be one of Brazil's IANA zones, not {self.timezone!r}")
        if self.uf is not None and self.uf not in UF_IBGE_CODES:
            raise ValueError(f"unknown UF {self.uf!r}")
        code = self.municipality_ibge
        if code is not None:
            if len(code) != 7 or not code.isdigit():
                raise ValueError(f"municipality_ibge must have 7 digits, not {code!r}")
            if self.uf is None or code[:2] != UF_IBGE_CODES[self.uf]:
                raise ValueError(f"municipality {code} is not in UF {self.uf}")
        both = self.extra_holidays & self.extra_business_days
        if both:
            raise ValueError(f"dates both extra holidays and extra business days: {sorted(both)}")
        for day in self.extra_holidays | self.extra_business_days:
            if not MIN_YEAR <= day.year <= MAX_YEAR:
                raise ValueError(f"date outside the supported years {MIN_YEAR}-{MAX_YEAR}: {day}")
        return self


@dataclass(frozen=True, slots=True)
class _Index:
    """Business days of a whole range of years, as arrays over day ordinals."""

    first_year: int
    last_year: int
    base: int  # ordinal of 1 January of first_year
    size: int  # number of days covered
    business: bytes  # 1 where base + i is a business day
    count: array[int]  # number of business days among base .. base + i (inclusive)
    ordinals: array[int]  # ordinals of the business days, ascending
    names: dict[date, str]  # holidays (non-business or not) with their names


_END_OF_DAY: Final = (23, 59, 59, 999_999)


class BusinessCalendar:
    """Business days and RN 623 deadlines of one :class:`CalendarSpec`."""

    def __init__(self, spec: CalendarSpec) -> None:
        """Build a calendar; the day index is computed lazily on first use."""
        self.spec: Final = spec
        self.tz: Final = ZoneInfo(spec.timezone)
        self._municipality: Municipality | None = (
            municipal_data().municipalities.get(spec.municipality_ibge)
            if spec.municipality_ibge
            else None
        )
        self._day_zero_start = spec.convention.non_business_start == "next_business_day_is_day_zero"
        self._lock = threading.Lock()
        self._index: _Index | None = None

    def __repr__(self) -> str:
        """Show the spec the calendar was built from."""
        return f"BusinessCalendar({self.spec!r})"

    @property
    def has_municipal_data(self) -> bool:
        """Tell whether the packaged data covers the spec's municipality."""
        return self._municipality is not None

    # -- holidays -----------------------------------------------------------------

    def _holidays(self, first_year: int, last_year: int) -> dict[date, str]:
        """Compute every holiday of the years, by name, extra business days removed."""
        spec = self.spec
        years = range(first_year, last_year + 1)
        found: dict[date, list[str]] = {}

        def add(day: date, name: str) -> None:
            names = found.setdefault(day, [])
            for part in name.split("; "):
                if part not in names:
                    names.append(part)

        national = Brazil(years=years, categories=("public",), language=_LANGUAGE)
        for day, name in national.items():
            add(day, name)
        if spec.uf is not None:
            regional = Brazil(
                subdiv=spec.uf, years=years, categories=("public",), language=_LANGUAGE
            )
            removed = {
                date(year, c.month, c.day)
                for c in municipal_data().corrections_for(spec.uf)
                for year in years
                if c.in_force(year)
            }
            for day, name in regional.items():
                if day not in national and day in removed:
                    continue
                add(day, name)
        if spec.optional_days_off:
            optional = Brazil(years=years, categories=("optional",), language=_LANGUAGE)
            for day, name in optional.items():
                if _classify_optional(day) in spec.optional_days_off:
                    add(day, name)
        if self._municipality is not None:
            for year in years:
                for day, name in self._municipality.holidays_in(year):
                    add(day, name)
        for day in spec.extra_holidays:
            if first_year <= day.year <= last_year:
                add(day, OPERATOR_HOLIDAY_NAME)
        return {
            day: "; ".join(names)
            for day, names in sorted(found.items())
            if day not in spec.extra_business_days
        }

    # -- index ----------------------------------------------------------------------

    def _build(self, first_year: int, last_year: int) -> _Index:
        names = self._holidays(first_year, last_year)
        base = date(first_year, 1, 1).toordinal()
        size = date(last_year, 12, 31).toordinal() - base + 1
        extra = {d.toordinal() for d in self.spec.extra_business_days}
        holiday_ordinals = {d.toordinal() for d in names}
        business = bytearray(size)
        count = array("i", [0]) * size
        ordinals = array("i")
        total = 0
        for i in range(size):
            ordinal = base + i
            weekday = (ordinal - 1) % 7  # date.fromordinal(1) is a Monday
            if ordinal in extra or (weekday < 5 and ordinal not in holiday_ordinals):
                business[i] = 1
                total += 1
                ordinals.append(ordinal)
            count[i] = total
        return _Index(first_year, last_year, base, size, bytes(business), count, ordinals, names)

    def _index_covering(self, first_year: int, last_year: int) -> _Index:
        """Return an index covering the years, extending the current one if needed."""
        if first_year < MIN_YEAR or last_year > MAX_YEAR:
            raise ValueError(f"dates must fall within {MIN_YEAR}-{MAX_YEAR}")
        index = self._index
        if index is not None and index.first_year <= first_year and last_year <= index.last_year:
            return index
        with self._lock:
            index = self._index
            if index is None:
                low, high = _DEFAULT_YEARS
            else:
                low, high = index.first_year, index.last_year
                if low <= first_year and last_year <= high:
                    return index
            low = max(MIN_YEAR, min(low, first_year - 1))
            high = min(MAX_YEAR, max(high, last_year + 1))
            index = self._build(low, high)
            self._index = index
            return index

    def _locate(self, ordinal: int) -> tuple[_Index, int]:
        """Return an index covering the ordinal and the ordinal's position in it."""
        index = self._index
        if index is not None:
            position = ordinal - index.base
            if 0 <= position < index.size:
                return index, position
        if not date.min.toordinal() <= ordinal <= date.max.toordinal():
            raise ValueError(f"dates must fall within {MIN_YEAR}-{MAX_YEAR}")
        year = date.fromordinal(ordinal).year
        index = self._index_covering(year, year)
        return index, ordinal - index.base

    def _nth_after(self, ordinal: int, n: int) -> int:
        """Return the ordinal of the n-th business day after (n > 0) or before (n < 0)."""
        while True:
            index, position = self._locate(ordinal)
            if n > 0:
                target = index.count[position] + n - 1
            else:
                target = index.count[position] - index.business[position] + n
            if 0 <= target < len(index.ordinals):
                return index.ordinals[target]
            years = abs(n) // 200 + 1
            if n > 0:
                self._index_covering(index.last_year + 1, index.last_year + years)
            else:
                self._index_covering(index.first_year - years, index.first_year - 1)

    # -- public API ---------------------------------------------------------------

    def is_business_day(self, day: date) -> bool:
        """Tell whether ``day`` is a business day."""
        index, position = self._locate(day.toordinal())
        return bool(index.business[position])

    def holiday_name(self, day: date) -> str | None:
        """Return the holiday name(s) on ``day`` (Portuguese; None if not a holiday here)."""
        index, _ = self._locate(day.toordinal())
        return index.names.get(day)

    def next_business_day(self, day: date) -> date:
        """Return the first business day strictly after ``day``."""
        return date.fromordinal(self._nth_after(day.toordinal(), 1))

    def previous_business_day(self, day: date) -> date:
        """Return the last business day strictly before ``day``."""
        return date.fromordinal(self._nth_after(day.toordinal(), -1))

    def add_business_days(self, day: date, n: int) -> date:
        """Return the n-th business day strictly after ``day`` (before it if n < 0; day if 0)."""
        if n == 0:
            return day
        return date.fromordinal(self._nth_after(day.toordinal(), n))

    def business_days_between(self, a: date, b: date) -> int:
        """Count business days in the half-open interval (a, b]; negative when b < a."""
        index = self._index_covering(min(a.year, b.year), max(a.year, b.year))
        return index.count[b.toordinal() - index.base] - index.count[a.toordinal() - index.base]

    def local_date(self, moment: datetime) -> date:
        """Return the date of an aware datetime in the calendar's time zone."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("datetime must be timezone-aware")
        return moment.astimezone(self.tz).date()

    def end_of_day(self, day: date) -> datetime:
        """Return the last microsecond of ``day`` in the calendar's time zone."""
        # fold=1: when the hour before midnight repeats (end of DST), the later one.
        return datetime(day.year, day.month, day.day, *_END_OF_DAY, tzinfo=self.tz, fold=1)

    def due_day(self, start: date, n: int) -> date:
        """Return the local date of the deadline of a request made on ``start``."""
        if n < 0:
            raise ValueError("n must be >= 0")
        ordinal = start.toordinal()
        index, position = self._locate(ordinal)
        if self._day_zero_start and not index.business[position]:
            ordinal = self._nth_after(ordinal, 1)  # day 0 is the next business day
        return date.fromordinal(self._nth_after(ordinal, n)) if n else date.fromordinal(ordinal)

    def due_at(self, start: datetime, n: int) -> datetime:
        """Return the deadline (end of the Nth business day, calendar's zone) of a request."""
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if n < 0:
            raise ValueError("n must be >= 0")
        ordinal = start.astimezone(self.tz).toordinal()
        index = self._index
        if index is not None and n > 0:  # fast path: everything inside the index
            position = ordinal - index.base
            if 0 <= position < index.size:
                count = index.count[position]
                if self._day_zero_start and not index.business[position]:
                    count += 1
                target = count + n - 1
                if target < len(index.ordinals):
                    day = date.fromordinal(index.ordinals[target])
                    return datetime(
                        day.year, day.month, day.day, *_END_OF_DAY, tzinfo=self.tz, fold=1
                    )
        return self.end_of_day(self.due_day(date.fromordinal(ordinal), n))

    def business_days_remaining(self, now: datetime, due: datetime) -> int:
        """Count business days from now's local date to due's (0 on the due day, <0 overdue).

        Past the deadline the result is at most -1, even when no business day has
        gone by yet (e.g. on the Saturday after a Friday deadline).
        """
        remaining = self.business_days_between(self.local_date(now), self.local_date(due))
        # Compare in UTC: same-zone comparisons ignore fold (the repeated DST hour).
        if now.astimezone(UTC) > due.astimezone(UTC) and remaining >= 0:
            return -1
        return remaining

    def holidays_between(self, a: date, b: date) -> list[tuple[date, str]]:
        """Return the holidays in [a, b] (inclusive, weekends included), by date."""
        if b < a:
            return []
        index = self._index_covering(a.year, b.year)
        return [(day, name) for day, name in index.names.items() if a <= day <= b]


def operator_calendar_spec(registration: Mapping[Any, Any]) -> CalendarSpec:
    """The calendar of an operator's registration (time zone, UF, municipality, extras).

    ``extra_holidays`` holds mappings with an ISO ``date`` (as in ``operator.upserted``).
    """
    return CalendarSpec(
        timezone=registration["timezone"],
        uf=registration["uf"],
        municipality_ibge=registration["municipality_ibge"],
        extra_holidays=frozenset(
            date.fromisoformat(h["date"]) for h in registration.get("extra_holidays") or ()
        ),
    )


@functools.lru_cache(maxsize=256)  # ~120 kB per calendar (2015-2040)
def calendar_for(spec: CalendarSpec) -> BusinessCalendar:
    """Return the (cached, shared) business calendar of a spec."""
    return BusinessCalendar(spec)
