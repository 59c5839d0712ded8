"""Protocol number layouts (RN 623/2024): format, parse and validate protocol numbers."""

# A protocol number is given at once, at the start of every contact, and is
# read aloud on the phone, so it is made of decimal digits only. Its layout is
# data: an ordered list of segments (see `Segment`). The platform default is
# `ans-default-20` = RRRRRRAAAAMMDDNNNNNN (DESIGN.md §2). Packaged layouts
# live in data/protocol_layouts.yaml; an operator may define its own with
# `ProtocolLayout.model_validate({...})`, which applies the same validation.
#
# Every layout has exactly one ans_registry, one date and one sequence
# segment, so a number is unique across operators and days, and `parse` can
# recover all three. The date comes before the sequence and a check digit (if
# any) comes last, so the numbers of one operator (same registry, same fixed
# codes, same width) sort as strings by date, then sequence. A daily sequence
# starts at 1 and never wraps: `format` raises `SequenceExhausted` instead.
#
# Check digit algorithms (one digit, computed over every preceding digit):
# - "iso7064_mod11_10": ISO/IEC 7064 hybrid system MOD 11,10. Guarantees:
#   every single-digit substitution is caught. Adjacent transpositions are
#   caught except for 20 of the 900 (running state, digit pair) combinations
#   (about 2 %), e.g. "0678" and "0768" both check.
# - "luhn": the Luhn mod 10 algorithm (ISO/IEC 7812-1). Guarantees: every
#   single-digit substitution, and every adjacent transposition except 09 <-> 90.
# - "damm": the Damm algorithm (H. M. Damm, 2004), a totally anti-symmetric
#   quasigroup of order 10. Guarantees: every single-digit substitution and
#   every adjacent transposition.
# None of them catches every double substitution or jump transposition.

from __future__ import annotations

import datetime as dt
import functools
import re
import types
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ANS_REGISTRY_WIDTH",
    "DATE_WIDTH",
    "HEADROOM_FACTOR",
    "LAYOUTS",
    "MAX_LENGTH",
    "MAX_SEQUENCE_WIDTH",
    "AnsRegistrySegment",
    "CheckDigitAlgorithm",
    "CheckDigitSegment",
    "DateSegment",
    "InvalidProtocolNumber",
    "LiteralSegment",
    "ProtocolLayout",
    "ProtocolNumber",
    "Segment",
    "SequenceExhausted",
    "SequenceSegment",
    "UnknownLayoutError",
    "compute_check_digit",
    "get_layout",
    "layout_for_volume",
]

ANS_REGISTRY_WIDTH = 6
DATE_WIDTH = 8
MAX_SEQUENCE_WIDTH = 12
MAX_LENGTH = 30
# layout_for_volume wants daily_capacity >= HEADROOM_FACTOR * expected volume,
# i.e. the expected volume uses at most half the daily sequence (peaks such as
# outages or readjustment months can double a day's contacts).
HEADROOM_FACTOR = 2

_DATA_PACKAGE = "rn623_rulebook"
_LAYOUTS_FILE = ("data", "protocol_layouts.yaml")
_REGISTRY_RE = re.compile(r"[0-9]{6}")
_DIGITS = frozenset("0123456789")

CheckDigitAlgorithm = Literal["iso7064_mod11_10", "luhn", "damm"]

_ALGORITHM_NAMES: dict[str, str] = {
    "iso7064_mod11_10": "ISO/IEC 7064 MOD 11,10",
    "luhn": "Luhn mod 10",
    "damm": "Damm",
}

# Damm's totally anti-symmetric quasigroup of order 10: row = running state,
# column = next digit; zero diagonal, every row and column a permutation.
_DAMM_TABLE = (
    "0317598642",
    "7092154863",
    "4206871359",
    "1750983426",
    "6123045978",
    "3674209581",
    "5869720134",
    "8945362017",
    "9438617205",
    "2581436790",
)


def _is_digits(value: str) -> bool:
    """Tell whether `value` is non-empty and made of ASCII digits 0-9 only."""
    return bool(value) and all(ch in _DIGITS for ch in value)


def _mod11_10(digits: str) -> str:
    """Return the ISO/IEC 7064 MOD 11,10 check digit of `digits`."""
    product = 10
    for ch in digits:
        total = (product + int(ch)) % 10 or 10
        product = (2 * total) % 11
    return str((11 - product) % 10)


def _luhn(digits: str) -> str:
    """Return the Luhn mod 10 check digit of `digits`."""
    total = 0
    for position, ch in enumerate(reversed(digits)):
        value = int(ch)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def _damm(digits: str) -> str:
    """Return the Damm check digit of `digits`."""
    state = 0
    for ch in digits:
        state = int(_DAMM_TABLE[state][int(ch)])
    return str(state)


def compute_check_digit(algorithm: CheckDigitAlgorithm, digits: str) -> str:
    """Return the check digit `algorithm` appends to the digit string `digits`."""
    if not isinstance(digits, str) or not _is_digits(digits):
        raise ValueError(f"check digits are computed over digits 0-9 only, got {digits!r}")
    if algorithm == "iso7064_mod11_10":
        return _mod11_10(digits)
    if algorithm == "luhn":
        return _luhn(digits)
    if algorithm == "damm":
        return _damm(digits)
    raise ValueError(
        f"unknown check digit algorithm {algorithm!r}; known: {', '.join(_ALGORITHM_NAMES)}"
    )


def _require_registry(value: object, name: str = "ans_registry") -> str:
    """Return `value` if it is a 6-digit ANS registration, else raise ValueError."""
    if not isinstance(value, str) or _REGISTRY_RE.fullmatch(value) is None:
        raise ValueError(f"{name} must be a 6-digit ANS registration (registro ANS), got {value!r}")
    return value


def _require_date(value: object, name: str) -> dt.date:
    """Return `value` if it is a plain date (not a datetime), else raise TypeError."""
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise TypeError(
            f"{name} must be a datetime.date (the contact date in the operator's time zone), "
            f"not {type(value).__name__}"
        )
    return value


class _Frozen(BaseModel):
    """Immutable model that refuses unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class AnsRegistrySegment(_Frozen):
    """The operator's 6-digit ANS registration (registro ANS)."""

    kind: Literal["ans_registry"] = "ans_registry"

    @property
    def width(self) -> int:
        """Number of digits of the segment."""
        return ANS_REGISTRY_WIDTH


class DateSegment(_Frozen):
    """The contact date in the operator's time zone, as YYYYMMDD."""

    kind: Literal["date"] = "date"
    format: Literal["YYYYMMDD"] = "YYYYMMDD"

    @property
    def width(self) -> int:
        """Number of digits of the segment."""
        return DATE_WIDTH


class SequenceSegment(_Frozen):
    """The zero-padded daily sequence, starting at 1."""

    kind: Literal["sequence"] = "sequence"
    width: int = Field(ge=1, le=MAX_SEQUENCE_WIDTH)


class LiteralSegment(_Frozen):
    """Fixed digits, such as a channel or site code of the operator."""

    kind: Literal["literal"] = "literal"
    digits: str = Field(pattern=r"^[0-9]{1,10}$")

    @property
    def width(self) -> int:
        """Number of digits of the segment."""
        return len(self.digits)


class CheckDigitSegment(_Frozen):
    """One check digit computed over every preceding digit."""

    kind: Literal["check_digit"] = "check_digit"
    algorithm: CheckDigitAlgorithm

    @property
    def width(self) -> int:
        """Number of digits of the segment."""
        return 1


Segment = Annotated[
    AnsRegistrySegment | DateSegment | SequenceSegment | LiteralSegment | CheckDigitSegment,
    Field(discriminator="kind"),
]


class ProtocolNumber(_Frozen):
    """The parts of a parsed protocol number."""

    ans_registry: str
    date: dt.date
    sequence: int
    layout_id: str


class SequenceExhausted(Exception):
    """A daily sequence does not fit the layout; numbers are never wrapped or reused."""

    def __init__(self, layout: ProtocolLayout, sequence: int) -> None:
        """Build the message naming the layout, its capacity and a wider layout."""
        self.layout_id = layout.id
        self.daily_capacity = layout.daily_capacity
        self.sequence = sequence
        try:
            self.suggested_layout_id: str | None = layout_for_volume(sequence).id
        except ValueError:
            self.suggested_layout_id = None
        if self.suggested_layout_id is not None:
            wider = get_layout(self.suggested_layout_id)
            advice = (
                f"such as '{wider.id}' (daily capacity {wider.daily_capacity}, "
                f"{wider.length} digits)"
            )
        else:
            needed = len(str(sequence * HEADROOM_FACTOR))
            advice = (
                f"and no packaged layout is wide enough: define a custom layout with a "
                f"sequence of at least {needed} digits"
            )
        super().__init__(
            f"protocol layout '{layout.id}' has a daily capacity of {layout.daily_capacity} "
            f"numbers ({layout.sequence_width}-digit sequence) and sequence {sequence} does not "
            f"fit; numbers are never wrapped or reused: the operator needs a layout with a "
            f"wider sequence, {advice}"
        )


class InvalidProtocolNumber(ValueError):
    """A string that is not a valid protocol number of a layout."""

    def __init__(self, number: object, layout_id: str, problems: list[str]) -> None:
        """Keep the problems and build a message listing them."""
        self.number = number
        self.layout_id = layout_id
        self.problems = list(problems)
        super().__init__(
            f"{number!r} is not a valid '{layout_id}' protocol number: {'; '.join(problems)}"
        )


class UnknownLayoutError(KeyError):
    """A layout id that is not among the packaged layouts."""

    def __init__(self, layout_id: object, known: tuple[str, ...]) -> None:
        """Keep the unknown id and the known ones."""
        super().__init__(layout_id)
        self.layout_id = layout_id
        self.known = known

    def __str__(self) -> str:
        """Name the unknown id and list the known ones."""
        return (
            f"unknown protocol layout {self.layout_id!r}; known layouts: "
            f"{', '.join(sorted(self.known))}"
        )


def _layout_problems(segments: tuple[Segment, ...]) -> list[str]:
    """List the structural problems of a segment list (empty when sound)."""
    problems: list[str] = []
    kinds = [segment.kind for segment in segments]
    for kind in ("ans_registry", "date", "sequence"):
        count = kinds.count(kind)
        if count != 1:
            problems.append(f"a layout needs exactly one {kind} segment, found {count}")
    if "date" in kinds and "sequence" in kinds and kinds.index("date") > kinds.index("sequence"):
        problems.append(
            "the date segment must come before the sequence segment "
            "(numbers sort by date, then sequence)"
        )
    check_digits = kinds.count("check_digit")
    if check_digits > 1:
        problems.append(f"a layout has at most one check_digit segment, found {check_digits}")
    elif check_digits == 1 and kinds[-1] != "check_digit":
        problems.append("the check_digit segment must be the last segment")
    length = sum(segment.width for segment in segments)
    if length > MAX_LENGTH:
        problems.append(f"a layout has at most {MAX_LENGTH} digits, this one has {length}")
    return problems


class ProtocolLayout(_Frozen):
    """A protocol number layout: an id, a description and ordered digit segments."""

    id: str = Field(pattern=r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$", max_length=64)
    description: str = Field(min_length=1)
    segments: tuple[Segment, ...]

    @model_validator(mode="after")
    def _check_segments(self) -> ProtocolLayout:
        """Refuse layouts whose segments cannot make unique, sortable numbers."""
        problems = _layout_problems(self.segments)
        if problems:
            raise ValueError(f"invalid protocol layout '{self.id}': {'; '.join(problems)}")
        return self

    @property
    def length(self) -> int:
        """Number of digits of every protocol number of this layout."""
        return sum(segment.width for segment in self.segments)

    @property
    def sequence_width(self) -> int:
        """Number of digits of the daily sequence."""
        return next(s.width for s in self.segments if isinstance(s, SequenceSegment))

    @property
    def daily_capacity(self) -> int:
        """Largest daily sequence (sequences start at 1)."""
        return int(10**self.sequence_width - 1)

    @property
    def check_digit_algorithm(self) -> CheckDigitAlgorithm | None:
        """The check digit algorithm, or None when the layout has no check digit."""
        for segment in self.segments:
            if isinstance(segment, CheckDigitSegment):
                return segment.algorithm
        return None

    def _spans(self) -> Iterator[tuple[Segment, int, int]]:
        """Yield each segment with its start and end offsets in a number."""
        start = 0
        for segment in self.segments:
            yield segment, start, start + segment.width
            start += segment.width

    def format(self, ans_registry: str, on: dt.date, sequence: int) -> str:
        """Return the protocol number of a contact on date `on` with a daily sequence."""
        _require_registry(ans_registry)
        _require_date(on, "on")
        if isinstance(sequence, bool) or not isinstance(sequence, int):
            raise TypeError(f"sequence must be an int, not {type(sequence).__name__}")
        if sequence < 1:
            raise ValueError(f"daily sequences start at 1, got {sequence}")
        if sequence > self.daily_capacity:
            raise SequenceExhausted(self, sequence)
        digits = ""
        for segment, _start, _end in self._spans():
            if isinstance(segment, AnsRegistrySegment):
                digits += ans_registry
            elif isinstance(segment, DateSegment):
                digits += f"{on.year:04d}{on.month:02d}{on.day:02d}"
            elif isinstance(segment, SequenceSegment):
                digits += f"{sequence:0{segment.width}d}"
            elif isinstance(segment, LiteralSegment):
                digits += segment.digits
            else:
                digits += compute_check_digit(segment.algorithm, digits)
        return digits

    def validate(  # type: ignore[override]  # shadows pydantic's deprecated classmethod
        self,
        number: str,
        *,
        ans_registry: str | None = None,
        not_after: dt.date | None = None,
    ) -> list[str]:
        """List the problems of `number` under this layout (empty when valid)."""
        if ans_registry is not None:
            _require_registry(ans_registry)
        if not_after is not None:
            _require_date(not_after, "not_after")
        if not isinstance(number, str):
            return [f"a protocol number is a string of digits, not {type(number).__name__}"]
        problems: list[str] = []
        if len(number) != self.length:
            problems.append(
                f"has {len(number)} characters; '{self.id}' numbers have {self.length} digits"
            )
        others = sorted({ch for ch in number if ch not in _DIGITS})
        if others:
            problems.append(
                f"contains characters other than digits 0-9: {', '.join(map(repr, others))}"
            )
        if problems:
            return problems
        for segment, start, end in self._spans():
            part = number[start:end]
            if isinstance(segment, AnsRegistrySegment):
                if ans_registry is not None and part != ans_registry:
                    problems.append(f"belongs to ANS registration {part}, not {ans_registry}")
            elif isinstance(segment, DateSegment):
                try:
                    on = dt.date(int(part[:4]), int(part[4:6]), int(part[6:]))
                except ValueError:
                    problems.append(f"date {part} is not a calendar date (YYYYMMDD)")
                    continue
                if not_after is not None and on > not_after:
                    problems.append(
                        f"date {on.isoformat()} is after {not_after.isoformat()} "
                        "(a number from the future)"
                    )
            elif isinstance(segment, SequenceSegment):
                if int(part) == 0:
                    problems.append(f"sequence {part} is zero; daily sequences start at 1")
            elif isinstance(segment, LiteralSegment):
                if part != segment.digits:
                    problems.append(
                        f"digits {start + 1}-{end} are {part}; "
                        f"'{self.id}' has the fixed code {segment.digits} there"
                    )
            else:
                expected = compute_check_digit(segment.algorithm, number[:start])
                if part != expected:
                    problems.append(
                        f"check digit {part} is wrong ({_ALGORITHM_NAMES[segment.algorithm]} "
                        f"gives {expected}): the number was probably mistyped or misheard"
                    )
        return problems

    def parse(self, number: str) -> ProtocolNumber:
        """Split a valid protocol number into its parts; raise InvalidProtocolNumber if not."""
        problems = self.validate(number)
        if problems:
            raise InvalidProtocolNumber(number, self.id, problems)
        fields: dict[str, Any] = {"layout_id": self.id}
        for segment, start, end in self._spans():
            part = number[start:end]
            if isinstance(segment, AnsRegistrySegment):
                fields["ans_registry"] = part
            elif isinstance(segment, DateSegment):
                fields["date"] = dt.date(int(part[:4]), int(part[4:6]), int(part[6:]))
            elif isinstance(segment, SequenceSegment):
                fields["sequence"] = int(part)
        return ProtocolNumber(**fields)


class _LayoutCatalog(_Frozen):
    """The packaged layouts file."""

    layouts: tuple[ProtocolLayout, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_unique_ids(self) -> _LayoutCatalog:
        """Refuse duplicate layout ids."""
        ids = [layout.id for layout in self.layouts]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate protocol layout ids: {', '.join(duplicates)}")
        return self


@functools.cache
def _packaged_layouts() -> Mapping[str, ProtocolLayout]:
    """Load and validate the packaged layouts once."""
    resource = resources.files(_DATA_PACKAGE)
    for part in _LAYOUTS_FILE:
        resource = resource.joinpath(part)
    catalog = _LayoutCatalog.model_validate(yaml.safe_load(resource.read_text(encoding="utf-8")))
    return types.MappingProxyType({layout.id: layout for layout in catalog.layouts})


class _PackagedLayouts(Mapping[str, ProtocolLayout]):
    """Read-only mapping of the packaged layouts by id, loaded on first use."""

    def __getitem__(self, layout_id: str) -> ProtocolLayout:
        """Return a packaged layout; raise UnknownLayoutError listing the known ids."""
        layouts = _packaged_layouts()
        try:
            return layouts[layout_id]
        except (KeyError, TypeError):
            raise UnknownLayoutError(layout_id, tuple(layouts)) from None

    def __iter__(self) -> Iterator[str]:
        """Iterate over the packaged layout ids."""
        return iter(_packaged_layouts())

    def __len__(self) -> int:
        """Count the packaged layouts."""
        return len(_packaged_layouts())

    def __repr__(self) -> str:
        """Show the packaged layout ids."""
        return f"LAYOUTS({', '.join(self)})"


LAYOUTS: Mapping[str, ProtocolLayout] = _PackagedLayouts()


def get_layout(layout_id: str) -> ProtocolLayout:
    """Return the packaged layout `layout_id`; raise UnknownLayoutError listing known ids."""
    return LAYOUTS[layout_id]


def registries_of(number: str) -> frozenset[str]:
    """The ANS registrations ``number`` carries under the packaged layouts it is valid in
    (empty when it is valid in none): whose protocol a number is, without looking it up."""
    found = set()
    for layout in LAYOUTS.values():
        try:
            found.add(layout.parse(number).ans_registry)
        except InvalidProtocolNumber:
            continue
    return frozenset(found)


def layout_for_volume(expected_contacts_per_day: int) -> ProtocolLayout:
    """Suggest the shortest packaged layout whose capacity is HEADROOM_FACTOR x the volume."""
    if isinstance(expected_contacts_per_day, bool) or not isinstance(
        expected_contacts_per_day, int
    ):
        raise TypeError(
            f"expected_contacts_per_day must be an int, not "
            f"{type(expected_contacts_per_day).__name__}"
        )
    if expected_contacts_per_day < 0:
        raise ValueError(
            f"expected_contacts_per_day cannot be negative, got {expected_contacts_per_day}"
        )
    needed = expected_contacts_per_day * HEADROOM_FACTOR
    fitting = [layout for layout in LAYOUTS.values() if layout.daily_capacity >= needed]
    if not fitting:
        largest = max(LAYOUTS.values(), key=lambda layout: layout.daily_capacity)
        raise ValueError(
            f"no packaged protocol layout holds {expected_contacts_per_day} contacts a day "
            f"with {HEADROOM_FACTOR}x headroom (largest: '{largest.id}', daily capacity "
            f"{largest.daily_capacity}); define a custom layout with a sequence of at least "
            f"{len(str(needed))} digits"
        )
    return min(fitting, key=lambda layout: (layout.length, layout.id))
