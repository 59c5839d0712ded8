"""Municipal holidays and state-level corrections, as validated packaged data.

The data lives in ``data/municipal_holidays.yaml``; it is read once (through
``importlib.resources``) and validated with Pydantic on first use. National and
state holidays come from python-``holidays``; this module only supplies what that
library lacks (municipal holidays) or gets wrong (``state_corrections``).
"""

from __future__ import annotations

import functools
from datetime import date, timedelta
from enum import StrEnum
from importlib import resources
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rn623_rulebook.timezones import UF_IBGE_CODES

__all__ = [
    "DATA_RESOURCE",
    "HolidayRule",
    "MovableFeast",
    "MunicipalData",
    "Municipality",
    "StateCorrection",
    "UncertainFact",
    "easter_sunday",
    "load_municipal_data",
    "municipal_data",
    "municipality",
]

DATA_RESOURCE = "data/municipal_holidays.yaml"

_STRICT = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def easter_sunday(year: int) -> date:
    """Return Western (Gregorian) Easter Sunday of ``year`` (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_fix = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_fix) // 451
    month, day = divmod(h + weekday_fix - 7 * m + 114, 31)
    return date(year, month, day + 1)


class MovableFeast(StrEnum):
    """Movable feasts a municipal holiday may follow (offsets from Easter Sunday)."""

    carnival_monday = "carnival_monday"
    carnival_tuesday = "carnival_tuesday"
    ash_wednesday = "ash_wednesday"
    good_friday = "good_friday"
    corpus_christi = "corpus_christi"


EASTER_OFFSETS: dict[MovableFeast, int] = {
    MovableFeast.carnival_monday: -48,
    MovableFeast.carnival_tuesday: -47,
    MovableFeast.ash_wednesday: -46,
    MovableFeast.good_friday: -2,
    MovableFeast.corpus_christi: 60,
}


def _check_fixed_day(month: int | None, day: int | None) -> None:
    if (month is None) != (day is None):
        raise ValueError("month and day go together")
    if month is not None and day is not None:
        date(2000, month, day)  # a leap year: 29 February is allowed


class _YearRange(BaseModel):
    model_config = _STRICT

    since: int | None = Field(default=None, ge=1800, le=2200)
    until: int | None = Field(default=None, ge=1800, le=2200)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since must not be after until")
        return self

    def in_force(self, year: int) -> bool:
        """Tell whether the entry applies in ``year``."""
        return (self.since is None or year >= self.since) and (
            self.until is None or year <= self.until
        )


class HolidayRule(_YearRange):
    """One municipal holiday: a fixed month/day, a movable feast or an Easter offset."""

    name: str = Field(min_length=1)
    month: int | None = Field(default=None, ge=1, le=12)
    day: int | None = Field(default=None, ge=1, le=31)
    movable: MovableFeast | None = None
    easter_offset: int | None = Field(default=None, ge=-70, le=70)
    source: str = Field(min_length=1)
    confidence: Literal["high", "medium"]
    note: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        _check_fixed_day(self.month, self.day)
        kinds = [self.month is not None, self.movable is not None, self.easter_offset is not None]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of month/day, movable or easter_offset")
        return self

    @property
    def is_fixed(self) -> bool:
        """Tell whether the holiday has a fixed month and day."""
        return self.month is not None

    def date_in(self, year: int) -> date | None:
        """Return the holiday's date in ``year``, or None when it is not in force."""
        if not self.in_force(year):
            return None
        if self.month is not None and self.day is not None:
            try:
                return date(year, self.month, self.day)
            except ValueError:  # 29 February in a common year
                return None
        if self.movable is not None:
            offset = EASTER_OFFSETS[self.movable]
        elif self.easter_offset is not None:
            offset = self.easter_offset
        else:  # pragma: no cover - excluded by the model validator
            return None
        return easter_sunday(year) + timedelta(days=offset)


class UncertainFact(BaseModel):
    """A holiday left out of the data because the sources disagree or are missing."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    uf: str | None = None
    month: int | None = Field(default=None, ge=1, le=12)
    day: int | None = Field(default=None, ge=1, le=31)
    movable: MovableFeast | None = None
    note: str = Field(min_length=1)

    @model_validator(mode="after")
    def _valid_day(self) -> Self:
        _check_fixed_day(self.month, self.day)
        return self


class Municipality(BaseModel):
    """A municipality's holidays beyond the national and state ones."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    uf: str
    holidays: tuple[HolidayRule, ...] = ()
    uncertain: tuple[UncertainFact, ...] = ()
    note: str | None = None

    @field_validator("uf")
    @classmethod
    def _known_uf(cls, value: str) -> str:
        if value not in UF_IBGE_CODES:
            raise ValueError(f"unknown UF {value!r}")
        return value

    def holidays_in(self, year: int) -> list[tuple[date, str]]:
        """Return the municipality's holidays in ``year`` as (date, name) pairs."""
        found: list[tuple[date, str]] = []
        for rule in self.holidays:
            day = rule.date_in(year)
            if day is not None:
                found.append((day, rule.name))
        return found


class StateCorrection(_YearRange):
    """A state holiday python-holidays lists but which is not (or no longer) one."""

    uf: str
    action: Literal["remove"]
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    source: str = Field(min_length=1)
    note: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if self.uf not in UF_IBGE_CODES:
            raise ValueError(f"unknown UF {self.uf!r}")
        _check_fixed_day(self.month, self.day)
        return self


class MunicipalData(BaseModel):
    """The whole packaged data file."""

    model_config = _STRICT

    schema_version: Literal[1]
    municipalities: dict[str, Municipality]
    state_corrections: tuple[StateCorrection, ...] = ()
    uncertain_state_facts: tuple[UncertainFact, ...] = ()

    @model_validator(mode="after")
    def _codes_match_states(self) -> Self:
        for code, entry in self.municipalities.items():
            if len(code) != 7 or not code.isdigit():
                raise ValueError(f"IBGE municipality code must have 7 digits: {code!r}")
            if code[:2] != UF_IBGE_CODES[entry.uf]:
                raise ValueError(
                    f"IBGE code {code} ({entry.name}) does not belong to {entry.uf} "
                    f"(state code {UF_IBGE_CODES[entry.uf]})"
                )
        return self

    def corrections_for(self, uf: str) -> tuple[StateCorrection, ...]:
        """Return the corrections to python-holidays' holidays of ``uf``."""
        return tuple(c for c in self.state_corrections if c.uf == uf)


def load_municipal_data(text: str) -> MunicipalData:
    """Parse and validate municipal holiday data from YAML text."""
    raw: Any = yaml.safe_load(text)
    return MunicipalData.model_validate(raw)


@functools.cache
def municipal_data() -> MunicipalData:
    """Return the packaged municipal holiday data (read and validated once)."""
    resource = resources.files("rn623_rulebook").joinpath(DATA_RESOURCE)
    return load_municipal_data(resource.read_text(encoding="utf-8"))


def municipality(ibge_code: str) -> Municipality | None:
    """Return the data of a municipality by IBGE code, or None when it is not covered."""
    return municipal_data().municipalities.get(ibge_code)
