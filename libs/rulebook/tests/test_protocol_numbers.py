"""Tests for protocol number layouts: format, parse, validate, check digits, capacity."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from rn623_rulebook.protocol_numbers import (
    HEADROOM_FACTOR,
    LAYOUTS,
    CheckDigitAlgorithm,
    InvalidProtocolNumber,
    ProtocolLayout,
    ProtocolNumber,
    SequenceExhausted,
    UnknownLayoutError,
    compute_check_digit,
    get_layout,
    layout_for_volume,
    registries_of,
)

pytestmark = pytest.mark.unit

PACKAGED_IDS = ("ans-default-20", "ans-wide-22", "ans-default-21-mod11", "ans-default-21-damm")
ALGORITHMS: tuple[CheckDigitAlgorithm, ...] = ("iso7064_mod11_10", "luhn", "damm")
DAY = dt.date(2025, 2, 28)
REG = "123456"

registries = st.text(alphabet="0123456789", min_size=6, max_size=6)
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))


def wide(digits: str) -> str:
    """Return `digits` written with Unicode fullwidth digits (not ASCII 0-9)."""
    return "".join(chr(0xFF10 + int(d)) for d in digits)


def custom_layout(**overrides: Any) -> dict[str, Any]:
    """Return a valid custom layout definition with a channel code and a Luhn digit."""
    definition: dict[str, Any] = {
        "id": "acme-channel-22",
        "description": "ACME: registry, channel code 07, date, 5-digit sequence, Luhn digit",
        "segments": [
            {"kind": "ans_registry"},
            {"kind": "literal", "digits": "07"},
            {"kind": "date"},
            {"kind": "sequence", "width": 5},
            {"kind": "check_digit", "algorithm": "luhn"},
        ],
    }
    definition.update(overrides)
    return definition


def is_valid(algorithm: CheckDigitAlgorithm, number: str) -> bool:
    """Tell whether the last digit of `number` is its check digit."""
    return compute_check_digit(algorithm, number[:-1]) == number[-1]


# --- packaged layouts -------------------------------------------------------------


def test_packaged_layout_ids() -> None:
    assert set(LAYOUTS) == set(PACKAGED_IDS)
    assert len(LAYOUTS) == len(PACKAGED_IDS)
    assert all(get_layout(i).id == i for i in PACKAGED_IDS)


def test_default_layout_is_the_design_default() -> None:
    layout = get_layout("ans-default-20")
    assert (layout.length, layout.sequence_width, layout.daily_capacity) == (20, 6, 999_999)
    assert layout.check_digit_algorithm is None
    # RRRRRRAAAAMMDDNNNNNN
    assert layout.format("345678", dt.date(2025, 7, 4), 17) == "34567820250704000017"


def test_wide_layout() -> None:
    layout = get_layout("ans-wide-22")
    assert (layout.length, layout.daily_capacity) == (22, 99_999_999)
    assert layout.format("345678", dt.date(2025, 7, 4), 12_345_678) == "3456782025070412345678"


@pytest.mark.parametrize(
    ("layout_id", "algorithm"),
    [("ans-default-21-mod11", "iso7064_mod11_10"), ("ans-default-21-damm", "damm")],
)
def test_check_digit_layouts(layout_id: str, algorithm: str) -> None:
    layout = get_layout(layout_id)
    assert (layout.length, layout.daily_capacity) == (21, 999_999)
    assert layout.check_digit_algorithm == algorithm
    number = layout.format(REG, DAY, 42)
    assert number[:20] == get_layout("ans-default-20").format(REG, DAY, 42)
    assert number[20] == compute_check_digit(layout.check_digit_algorithm, number[:20])


def test_layouts_are_frozen_and_hashable() -> None:
    layout = get_layout("ans-default-20")
    with pytest.raises(ValidationError):
        layout.id = "other"  # type: ignore[misc]
    assert hash(layout) == hash(ProtocolLayout.model_validate(layout.model_dump()))


def test_unknown_layout_lists_known_ids() -> None:
    with pytest.raises(UnknownLayoutError) as excinfo:
        get_layout("ans-default-99")
    message = str(excinfo.value)
    assert "ans-default-99" in message
    assert all(i in message for i in PACKAGED_IDS)
    assert isinstance(excinfo.value, KeyError)
    assert "nope" not in LAYOUTS
    assert LAYOUTS.get("nope") is None
    with pytest.raises(KeyError, match="known layouts"):
        LAYOUTS["nope"]


# --- round trip and ordering ------------------------------------------------------


@pytest.mark.parametrize("layout_id", PACKAGED_IDS)
@given(registry=registries, on=dates, data=st.data())
def test_round_trip(layout_id: str, registry: str, on: dt.date, data: st.DataObject) -> None:
    layout = get_layout(layout_id)
    sequence = data.draw(st.integers(min_value=1, max_value=layout.daily_capacity))
    number = layout.format(registry, on, sequence)
    assert len(number) == layout.length
    assert number.isascii()
    assert number.isdigit()
    assert layout.validate(number, ans_registry=registry, not_after=on) == []
    assert layout.parse(number) == ProtocolNumber(
        ans_registry=registry, date=on, sequence=sequence, layout_id=layout_id
    )


@pytest.mark.parametrize("layout_id", PACKAGED_IDS)
def test_round_trip_at_bounds(layout_id: str) -> None:
    layout = get_layout(layout_id)
    for registry, on, sequence in [
        ("000000", dt.date(2000, 1, 1), 1),
        ("999999", dt.date(2099, 12, 31), layout.daily_capacity),
        (REG, dt.date(2024, 2, 29), layout.daily_capacity // 2),
    ]:
        parsed = layout.parse(layout.format(registry, on, sequence))
        assert (parsed.ans_registry, parsed.date, parsed.sequence) == (registry, on, sequence)


@pytest.mark.parametrize("layout_id", PACKAGED_IDS)
@given(
    registry=registries,
    first=st.tuples(dates, st.integers(min_value=1, max_value=999_999)),
    second=st.tuples(dates, st.integers(min_value=1, max_value=999_999)),
)
def test_numbers_sort_by_date_then_sequence(
    layout_id: str,
    registry: str,
    first: tuple[dt.date, int],
    second: tuple[dt.date, int],
) -> None:
    layout = get_layout(layout_id)
    a = layout.format(registry, *first)
    b = layout.format(registry, *second)
    assert (a < b) == (first < second)
    assert (a == b) == (first == second)


# --- capacity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout_id", ["ans-default-20", "ans-default-21-mod11", "ans-default-21-damm"]
)
def test_exhaustion_names_the_wide_layout(layout_id: str) -> None:
    layout = get_layout(layout_id)
    layout.format(REG, DAY, layout.daily_capacity)
    with pytest.raises(SequenceExhausted) as excinfo:
        layout.format(REG, DAY, layout.daily_capacity + 1)
    error = excinfo.value
    message = str(error)
    assert layout_id in message
    assert "999999" in message
    assert "wider sequence" in message
    assert "ans-wide-22" in message
    assert (error.layout_id, error.daily_capacity, error.sequence) == (
        layout_id,
        999_999,
        1_000_000,
    )
    assert error.suggested_layout_id == "ans-wide-22"


def test_exhaustion_of_the_widest_layout_asks_for_a_custom_one() -> None:
    layout = get_layout("ans-wide-22")
    with pytest.raises(SequenceExhausted, match="custom layout") as excinfo:
        layout.format(REG, DAY, 100_000_000)
    assert "99999999" in str(excinfo.value)
    assert excinfo.value.suggested_layout_id is None


def test_exhaustion_of_a_narrow_custom_layout_suggests_a_packaged_one() -> None:
    layout = ProtocolLayout.model_validate(
        custom_layout(
            segments=[{"kind": "ans_registry"}, {"kind": "date"}, {"kind": "sequence", "width": 4}]
        )
    )
    assert layout.daily_capacity == 9_999
    with pytest.raises(SequenceExhausted, match="ans-default-20"):
        layout.format(REG, DAY, 10_000)


@pytest.mark.parametrize("sequence", [0, -1])
def test_sequence_starts_at_one(sequence: int) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        get_layout("ans-default-20").format(REG, DAY, sequence)


@pytest.mark.parametrize("sequence", [True, 1.0, "1"])
def test_sequence_must_be_an_int(sequence: Any) -> None:
    with pytest.raises(TypeError):
        get_layout("ans-default-20").format(REG, DAY, sequence)


# --- format arguments -------------------------------------------------------------


@pytest.mark.parametrize(
    "registry", ["12345", "1234567", "12345a", "123 456", "123456\n", wide("123456"), "", 123456]
)
def test_format_refuses_bad_registry(registry: Any) -> None:
    with pytest.raises(ValueError, match="6-digit ANS registration"):
        get_layout("ans-default-20").format(registry, DAY, 1)


@pytest.mark.parametrize("on", [dt.datetime(2025, 2, 28, 12, 0), "2025-02-28", None])
def test_format_wants_a_plain_date(on: Any) -> None:
    with pytest.raises(TypeError, match="operator's time zone"):
        get_layout("ans-default-20").format(REG, on, 1)


# --- validation -------------------------------------------------------------------


def problems(number: Any, layout_id: str = "ans-default-20", **kwargs: Any) -> list[str]:
    """Return the validation problems of `number` under a packaged layout."""
    return get_layout(layout_id).validate(number, **kwargs)


def test_valid_number_has_no_problems() -> None:
    assert problems("12345620250228000001", ans_registry=REG, not_after=DAY) == []


@pytest.mark.parametrize("number", ["", "1234562025022800001", "123456202502280000011"])
def test_wrong_length(number: str) -> None:
    found = problems(number)
    assert len(found) == 1
    assert f"has {len(number)} characters" in found[0]
    assert "20 digits" in found[0]


@pytest.mark.parametrize(
    "number",
    ["1234562025022800000A", "123456 2025022800001", "12345620250228000" + wide("0") + "01"],
)
def test_non_digits(number: str) -> None:
    found = problems(number)
    assert len(found) == 1
    assert "other than digits" in found[0]


def test_wrong_length_and_non_digits_are_both_reported() -> None:
    found = problems("123-456")
    assert len(found) == 2


def test_not_a_string() -> None:
    assert "string of digits" in problems(12345620250228000001)[0]


def test_wrong_registry() -> None:
    found = problems("12345620250228000001", ans_registry="654321")
    assert found == ["belongs to ANS registration 123456, not 654321"]


def test_registry_argument_is_checked() -> None:
    with pytest.raises(ValueError, match="6-digit ANS registration"):
        problems("12345620250228000001", ans_registry="12345")


@pytest.mark.parametrize(
    "date_digits", ["20250230", "20251301", "20250001", "20250100", "00000101"]
)
def test_impossible_date(date_digits: str) -> None:
    found = problems(f"{REG}{date_digits}000001")
    assert found == [f"date {date_digits} is not a calendar date (YYYYMMDD)"]


def test_leap_day_is_a_date() -> None:
    assert problems(f"{REG}20240229000001") == []
    assert problems(f"{REG}20250229000001") != []


def test_number_from_the_future() -> None:
    number = "12345620250301000001"
    found = problems(number, not_after=DAY)
    assert len(found) == 1
    assert "after 2025-02-28" in found[0]
    assert "future" in found[0]
    assert problems(number, not_after=dt.date(2025, 3, 1)) == []


def test_not_after_must_be_a_date() -> None:
    with pytest.raises(TypeError):
        problems("12345620250228000001", not_after=dt.datetime(2025, 2, 28, 23, 0))


def test_sequence_zero() -> None:
    assert problems(f"{REG}20250228000000") == [
        "sequence 000000 is zero; daily sequences start at 1"
    ]


@pytest.mark.parametrize("layout_id", ["ans-default-21-mod11", "ans-default-21-damm"])
def test_bad_check_digit(layout_id: str) -> None:
    number = get_layout(layout_id).format(REG, DAY, 7)
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    found = problems(wrong, layout_id)
    assert len(found) == 1
    assert f"check digit {wrong[-1]} is wrong" in found[0]
    assert number[-1] in found[0]


def test_all_problems_are_reported_together() -> None:
    found = problems(
        f"{REG}20250230000000" + "0", "ans-default-21-damm", ans_registry="654321", not_after=DAY
    )
    text = " | ".join(found)
    assert "ANS registration" in text
    assert "not a calendar date" in text
    assert "is zero" in text


def test_parse_refuses_invalid_numbers() -> None:
    with pytest.raises(InvalidProtocolNumber) as excinfo:
        get_layout("ans-default-20").parse(f"{REG}20250230000000")
    error = excinfo.value
    assert isinstance(error, ValueError)
    assert error.layout_id == "ans-default-20"
    assert len(error.problems) == 2
    assert "ans-default-20" in str(error)


# --- check digits -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "payload", "expected"),
    [
        ("iso7064_mod11_10", "0794", "5"),  # the example of ISO/IEC 7064
        ("luhn", "7992739871", "3"),
        ("damm", "572", "4"),
    ],
)
def test_known_check_digits(algorithm: CheckDigitAlgorithm, payload: str, expected: str) -> None:
    assert compute_check_digit(algorithm, payload) == expected


@pytest.mark.parametrize("digits", ["", "12a", wide("12"), "1 2"])
def test_check_digit_needs_digits(digits: str) -> None:
    with pytest.raises(ValueError, match="digits 0-9"):
        compute_check_digit("damm", digits)


def test_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="unknown check digit algorithm"):
        compute_check_digit("verhoeff", "123")  # type: ignore[arg-type]


def all_numbers(algorithm: CheckDigitAlgorithm, payload_length: int) -> list[str]:
    """Return every payload of the given length followed by its check digit."""
    return [
        payload + compute_check_digit(algorithm, payload)
        for payload in ("".join(p) for p in itertools.product("0123456789", repeat=payload_length))
    ]


def single_digit_errors(number: str) -> list[str]:
    """Return every number that differs from `number` in exactly one digit."""
    return [
        number[:i] + d + number[i + 1 :]
        for i in range(len(number))
        for d in "0123456789"
        if d != number[i]
    ]


def adjacent_transpositions(number: str) -> list[tuple[str, str]]:
    """Return (swapped pair, number) for every swap of two different adjacent digits."""
    return [
        (number[i : i + 2], number[:i] + number[i + 1] + number[i] + number[i + 2 :])
        for i in range(len(number) - 1)
        if number[i] != number[i + 1]
    ]


# Every 4-digit payload reaches every internal state of each algorithm (for Luhn,
# both position parities), so these exhaustive checks cover numbers of any length.
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_single_digit_error_is_caught(algorithm: CheckDigitAlgorithm) -> None:
    for number in all_numbers(algorithm, 4):
        for typo in single_digit_errors(number):
            assert not is_valid(algorithm, typo), (number, typo)


def test_damm_catches_every_adjacent_transposition() -> None:
    for number in all_numbers("damm", 4):
        for _pair, swapped in adjacent_transpositions(number):
            assert not is_valid("damm", swapped), (number, swapped)


def test_luhn_misses_only_09_and_90_transpositions() -> None:
    for number in all_numbers("luhn", 4):
        for pair, swapped in adjacent_transpositions(number):
            assert is_valid("luhn", swapped) == (pair in ("09", "90")), (number, swapped)


def test_mod11_10_catches_most_adjacent_transpositions() -> None:
    missed = total = 0
    for number in all_numbers("iso7064_mod11_10", 4):
        for _pair, swapped in adjacent_transpositions(number):
            total += 1
            missed += is_valid("iso7064_mod11_10", swapped)
    assert 0 < missed / total < 0.03
    # The documented example: both orders of 6 and 7 check after a leading 0.
    assert is_valid("iso7064_mod11_10", "0678")
    assert is_valid("iso7064_mod11_10", "0768")


@pytest.mark.parametrize("layout_id", ["ans-default-21-mod11", "ans-default-21-damm"])
@given(registry=registries, on=dates, sequence=st.integers(min_value=1, max_value=999_999))
def test_check_digit_layouts_catch_typos(
    layout_id: str, registry: str, on: dt.date, sequence: int
) -> None:
    layout = get_layout(layout_id)
    number = layout.format(registry, on, sequence)
    for typo in single_digit_errors(number):
        assert layout.validate(typo) != [], typo
    if layout_id == "ans-default-21-damm":
        for _pair, swapped in adjacent_transpositions(number):
            assert layout.validate(swapped) != [], swapped


# --- custom layouts ---------------------------------------------------------------


def test_custom_layout_from_a_dict() -> None:
    layout = ProtocolLayout.model_validate(custom_layout())
    assert (layout.id, layout.length, layout.daily_capacity) == ("acme-channel-22", 22, 99_999)
    assert layout.check_digit_algorithm == "luhn"
    number = layout.format(REG, DAY, 321)
    assert number[:16] == f"{REG}0720250228"
    assert number[16:21] == "00321"
    assert number[21] == compute_check_digit("luhn", number[:21])
    assert layout.parse(number) == ProtocolNumber(
        ans_registry=REG, date=DAY, sequence=321, layout_id="acme-channel-22"
    )


def test_custom_layout_literal_mismatch() -> None:
    layout = ProtocolLayout.model_validate(custom_layout())
    number = layout.format(REG, DAY, 321)
    other = number[:6] + "08" + number[8:21]
    other += compute_check_digit("luhn", other)
    found = layout.validate(other)
    assert found == ["digits 7-8 are 08; 'acme-channel-22' has the fixed code 07 there"]


def test_custom_layout_without_check_digit() -> None:
    layout = ProtocolLayout.model_validate(
        custom_layout(
            id="site-code",
            segments=[
                {"kind": "literal", "digits": "9"},
                {"kind": "ans_registry"},
                {"kind": "date", "format": "YYYYMMDD"},
                {"kind": "sequence", "width": 7},
            ],
        )
    )
    assert layout.length == 22
    assert layout.format(REG, DAY, 5) == f"9{REG}202502280000005"


SEQ6 = {"kind": "sequence", "width": 6}


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (
            {"segments": [{"kind": "ans_registry"}, {"kind": "date"}]},
            "one sequence segment, found 0",
        ),
        (
            {"segments": [{"kind": "ans_registry"}, {"kind": "date"}, {"kind": "date"}, SEQ6]},
            "one date segment, found 2",
        ),
        ({"segments": [{"kind": "date"}, SEQ6]}, "one ans_registry segment, found 0"),
        ({"segments": [{"kind": "ans_registry"}, {"kind": "date"}, SEQ6, SEQ6]}, "found 2"),
        (
            {
                "segments": [
                    {"kind": "ans_registry"},
                    {"kind": "date"},
                    {"kind": "sequence", "width": 0},
                ]
            },
            "greater than or equal to 1",
        ),
        (
            {
                "segments": [
                    {"kind": "ans_registry"},
                    {"kind": "date"},
                    {"kind": "sequence", "width": 13},
                ]
            },
            "less than or equal to 12",
        ),
        (
            {"segments": [{"kind": "ans_registry"}, {"kind": "date"}, {"kind": "sequence"}]},
            "width",
        ),
        ({"segments": [{"kind": "ans_registry"}, SEQ6, {"kind": "date"}]}, "before the sequence"),
        (
            {
                "segments": [
                    {"kind": "ans_registry"},
                    {"kind": "check_digit", "algorithm": "luhn"},
                    {"kind": "date"},
                    SEQ6,
                ]
            },
            "must be the last segment",
        ),
        (
            {
                "segments": [
                    {"kind": "ans_registry"},
                    {"kind": "date"},
                    SEQ6,
                    {"kind": "check_digit", "algorithm": "luhn"},
                    {"kind": "check_digit", "algorithm": "damm"},
                ]
            },
            "at most one check_digit",
        ),
        (
            {
                "segments": [
                    {"kind": "ans_registry"},
                    {"kind": "date"},
                    SEQ6,
                    {"kind": "check_digit", "algorithm": "mod97"},
                ]
            },
            "algorithm",
        ),
        (
            {
                "segments": [
                    {"kind": "ans_registry"},
                    {"kind": "literal", "digits": "A1"},
                    {"kind": "date"},
                    SEQ6,
                ]
            },
            "digits",
        ),
        (
            {
                "segments": [
                    {"kind": "ans_registry"},
                    {"kind": "literal", "digits": ""},
                    {"kind": "date"},
                    SEQ6,
                ]
            },
            "digits",
        ),
        ({"segments": [{"kind": "ans_registry"}, {"kind": "time"}, SEQ6]}, "kind"),
        (
            {"segments": [{"kind": "ans_registry"}, {"kind": "date", "format": "DDMMYYYY"}, SEQ6]},
            "format",
        ),
        ({"segments": [{"kind": "ans_registry", "width": 8}, {"kind": "date"}, SEQ6]}, "width"),
        (
            {
                "segments": [
                    {"kind": "ans_registry"},
                    {"kind": "literal", "digits": "1234567890"},
                    {"kind": "date"},
                    {"kind": "sequence", "width": 12},
                ]
            },
            "at most 30 digits",
        ),
        ({"id": "Has Spaces"}, "id"),
        ({"id": ""}, "id"),
        ({"description": ""}, "description"),
        ({"owner": "acme"}, "owner"),
    ],
)
def test_invalid_layouts_are_refused(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        ProtocolLayout.model_validate(custom_layout(**changes))


# --- layout for a volume ----------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "layout_id"),
    [
        (0, "ans-default-20"),
        (1_000, "ans-default-20"),
        (499_999, "ans-default-20"),
        (500_000, "ans-wide-22"),
        (999_999, "ans-wide-22"),
        (49_999_999, "ans-wide-22"),
    ],
)
def test_layout_for_volume(volume: int, layout_id: str) -> None:
    layout = layout_for_volume(volume)
    assert layout.id == layout_id
    assert layout.daily_capacity >= HEADROOM_FACTOR * volume


@given(volume=st.integers(min_value=0, max_value=49_999_999))
def test_layout_for_volume_is_the_shortest_that_fits(volume: int) -> None:
    chosen = layout_for_volume(volume)
    fitting = [lay for lay in LAYOUTS.values() if lay.daily_capacity >= HEADROOM_FACTOR * volume]
    assert chosen in fitting
    assert chosen.length == min(lay.length for lay in fitting)


def test_layout_for_volume_beyond_packaged_layouts() -> None:
    with pytest.raises(ValueError, match="custom layout with a sequence of at least 9 digits"):
        layout_for_volume(50_000_000)


def test_layout_for_volume_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="negative"):
        layout_for_volume(-1)
    with pytest.raises(TypeError):
        layout_for_volume(True)
    with pytest.raises(TypeError):
        layout_for_volume(1.5)  # type: ignore[arg-type]


def test_registries_of_reads_whose_number_it_is_without_a_lookup() -> None:
    number = get_layout("ans-default-20").format("123456", dt.date(2025, 11, 21), 42)
    assert registries_of(number) == {"123456"}
    assert registries_of("not-a-number") == frozenset()
    assert registries_of("123456" + "20251341" + "000001") == frozenset()  # no 13th month
