"""Porte boundaries and channel obligations by porte and segment."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from rn623_rulebook.porte import channel_obligations, porte
from rn623_rulebook.rules import (
    Availability,
    Channel,
    ChannelScope,
    Porte,
    RuleNotFoundError,
    parse_ruleset,
)

pytestmark = pytest.mark.unit

ON = date(2025, 7, 1)


@pytest.mark.parametrize(
    ("beneficiaries", "expected"),
    [
        (0, Porte.SMALL),
        (19_999, Porte.SMALL),
        (20_000, Porte.MEDIUM),
        (20_001, Porte.MEDIUM),
        (99_999, Porte.MEDIUM),
        (100_000, Porte.MEDIUM),
        (100_001, Porte.LARGE),
        (52_000_000, Porte.LARGE),
    ],
)
def test_porte_boundaries(beneficiaries: int, expected: Porte) -> None:
    assert porte(beneficiaries) is expected
    assert porte(beneficiaries, on=ON) is expected


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100"])
def test_porte_refuses_bad_counts(bad: Any) -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        porte(bad)


def test_porte_without_rule_is_an_error() -> None:
    empty = parse_ruleset('{id: e, version: "1", title: e, published_on: 2025-01-01}')
    with pytest.raises(RuleNotFoundError, match="no porte rule"):
        porte(10, ruleset=empty)


def _summary(
    porte_value: str, segment: str, on: date = ON
) -> set[tuple[str, str, str, int | None]]:
    return {
        (o.channel.value, o.scope.value, o.availability.value, o.min_hours_per_business_day)
        for o in channel_obligations(porte_value, segment, on)
    }


def test_large_operator_telephone_24x7() -> None:
    assert _summary("large", "medical") == {
        ("telephone", "all_demands", "24x7", None),
        ("virtual", "all_demands", "24x7", None),
        ("in_person", "all_demands", "business_days", 8),
    }


@pytest.mark.parametrize("size", ["small", "medium"])
def test_small_and_medium_telephone_8h_but_24x7_for_urgency(size: str) -> None:
    assert _summary(size, "both") == {
        ("telephone", "all_demands", "business_days", 8),
        ("telephone", "urgent_emergency", "24x7", None),
        ("virtual", "all_demands", "24x7", None),
        ("in_person", "all_demands", "business_days", 8),
    }


def test_dental_only_operators_have_no_in_person_obligation() -> None:
    channels = {o.channel for o in channel_obligations(Porte.LARGE, "dental", ON)}
    assert channels == {Channel.TELEPHONE, Channel.VIRTUAL}


def test_in_person_obligation_carries_its_conditions_and_exemptions() -> None:
    (in_person,) = [
        o for o in channel_obligations("medium", "medical", ON) if o.channel is Channel.IN_PERSON
    ]
    assert in_person.conditions is not None
    assert "20 000" in in_person.conditions
    assert set(in_person.exempt_modalities) == {"filantropia", "autogestao"}
    assert in_person.availability is Availability.BUSINESS_DAYS


def test_every_porte_has_the_virtual_channel_24x7() -> None:
    for size in Porte:
        virtual = [
            o for o in channel_obligations(size, "medical", ON) if o.channel is Channel.VIRTUAL
        ]
        assert [(o.availability, o.scope) for o in virtual] == [
            (Availability.ALWAYS, ChannelScope.ALL_DEMANDS)
        ]


def test_no_channel_obligations_before_rn623() -> None:
    assert channel_obligations("large", "medical", date(2025, 6, 30)) == []


def test_unknown_segment_is_refused() -> None:
    with pytest.raises(ValueError, match="'vet' is not a valid Segment"):
        channel_obligations("large", "vet", ON)
