"""Retention: retain_until per record class, the complaint extension, 29 February, legal holds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from rn623_rulebook.retention import (
    add_period,
    add_years,
    complaint_closing,
    protocol_retention,
    purge_allowed,
    resolution_instant,
    retain_until,
    retention_for_protocol,
)
from rn623_rulebook.rules import (
    RecordClass,
    RuleNotFoundError,
    RuleSet,
    load_ruleset,
    parse_ruleset,
)

pytestmark = pytest.mark.unit

BRT = timezone(timedelta(hours=-3))


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BRT)


def _ruleset_with(record_class: str, **changes: Any) -> RuleSet:
    """The packaged rule set with one retention rule's fields changed."""
    data = load_ruleset().model_dump()
    for rule in data["retention"]:
        if rule["record_class"] == record_class:
            rule.update(changes)
    return RuleSet.model_validate(data)


# --- calendar arithmetic -----------------------------------------------------------


def test_years_keep_month_day_and_time() -> None:
    assert add_years(at(2025, 7, 10, 14, 30), 2) == at(2027, 7, 10, 14, 30)


def test_29_february_into_a_common_year_ends_on_1_march() -> None:
    assert add_years(at(2028, 2, 29), 2) == at(2030, 3, 1)
    assert add_years(at(2028, 2, 29), 1, feb29="feb_28") == at(2029, 2, 28)


def test_29_february_into_a_leap_year_stays_29_february() -> None:
    assert add_years(at(2028, 2, 29), 4) == at(2032, 2, 29)


def test_days_are_exact_steps() -> None:
    assert add_period(at(2025, 12, 20), 90, "days") == at(2026, 3, 20)
    assert add_period(at(2028, 2, 1), 90, "days") == at(2028, 5, 1)  # 29 days in Feb 2028


# --- one record class --------------------------------------------------------------


def test_recording_is_kept_90_days_from_the_contact() -> None:
    contact = at(2025, 7, 10, 14, 30)
    assert retain_until("recording", contact_at=contact) == at(2025, 10, 8, 14, 30)


def test_records_are_kept_2_years_from_the_resolution() -> None:
    contact, resolved = at(2025, 7, 10), at(2025, 8, 1, 10)
    for record_class in ("interaction_record", "protocol_record", "notification"):
        until = retain_until(record_class, contact_at=contact, resolved_at=resolved)
        assert until == at(2027, 8, 1, 10)


def test_resolution_is_the_last_answer_once_every_demand_has_one() -> None:
    contact = at(2025, 7, 10)
    assert resolution_instant(contact, [at(2025, 7, 14), at(2025, 7, 12)]) == at(2025, 7, 14)
    assert resolution_instant(contact, [at(2025, 7, 14), None]) is None
    # a contact that raised no demand was resolved in the contact itself
    assert resolution_instant(contact, []) == contact


def test_a_complaint_closes_when_the_protocol_is_resolved_never_before_itself() -> None:
    assert complaint_closing(at(2025, 8, 1), None) is None
    assert complaint_closing(None, at(2025, 8, 1)) is None
    assert complaint_closing(at(2025, 8, 1), at(2025, 7, 14)) == at(2025, 8, 1)
    assert complaint_closing(at(2025, 8, 1), at(2025, 8, 20)) == at(2025, 8, 20)


def test_protocol_retention_from_the_facts_of_a_protocol() -> None:
    contact = at(2025, 7, 10)
    ends = protocol_retention(contact, [at(2025, 7, 14)])
    assert ends[RecordClass.RECORDING] == at(2025, 10, 8)
    assert ends[RecordClass.PROTOCOL_RECORD] == at(2027, 7, 14)
    # a complaint after the answer: every record 5 years from the complaint
    ends = protocol_retention(contact, [at(2025, 7, 14)], at(2025, 8, 1))
    assert set(ends.values()) == {at(2030, 8, 1)}
    # a complaint while a demand is open: nothing ends before the protocol is resolved
    assert set(protocol_retention(contact, [None], at(2025, 8, 1)).values()) == {None}


def test_unresolved_demand_has_no_end_yet() -> None:
    assert retain_until(RecordClass.PROTOCOL_RECORD, contact_at=at(2025, 7, 10)) is None


def test_resolution_on_29_february() -> None:
    until = retain_until("notification", contact_at=at(2028, 2, 20), resolved_at=at(2028, 2, 29))
    assert until == at(2030, 3, 1)


def test_complaint_linked_runs_5_years_from_the_complaint_closing_by_default() -> None:
    common = {"contact_at": at(2025, 7, 10), "complaint_at": at(2025, 9, 1)}
    assert retain_until("complaint_linked", **common) is None  # complaint still open
    closed = retain_until("complaint_linked", **common, complaint_closed_at=at(2025, 10, 15))
    assert closed == at(2030, 10, 15)


def test_complaint_clock_start_is_configurable() -> None:
    ruleset = _ruleset_with("complaint_linked", starts_at="complaint")
    until = retain_until(
        "complaint_linked", contact_at=at(2025, 7, 10), complaint_at=at(2025, 9, 1), ruleset=ruleset
    )
    assert until == at(2030, 9, 1)


def test_instant_is_preserved_across_offsets() -> None:
    local = at(2025, 7, 10, 23, 30)
    utc = local.astimezone(UTC)
    assert retain_until("recording", contact_at=local) == retain_until(
        "recording", contact_at=utc, on=local.date()
    )


def test_rules_are_chosen_by_the_contact_date() -> None:
    text = """
id: t
version: "1"
title: t
published_on: 2025-01-01
retention:
  - {id: r.old, record_class: recording, amount: 90, unit: days, starts_at: contact,
     legal_basis: "RN 623/2024", effective_from: 2025-07-01, effective_to: 2026-12-31}
  - {id: r.new, record_class: recording, amount: 180, unit: days, starts_at: contact,
     legal_basis: "RN 623/2024", effective_from: 2027-01-01}
"""
    ruleset = parse_ruleset(text)
    old = at(2026, 12, 31)
    assert retain_until("recording", contact_at=old, ruleset=ruleset) == old + timedelta(days=90)
    new = at(2027, 1, 1)
    assert retain_until("recording", contact_at=new, ruleset=ruleset) == new + timedelta(days=180)
    assert retain_until("recording", contact_at=new, on=old.date(), ruleset=ruleset) == new + (
        timedelta(days=90)
    )


def test_record_older_than_every_rule_follows_the_first_later_rule() -> None:
    contact = at(2025, 3, 10)
    assert retain_until("recording", contact_at=contact) == contact + timedelta(days=90)


def test_no_rule_at_all_is_an_error() -> None:
    empty = parse_ruleset('{id: e, version: "1", title: e, published_on: 2025-01-01}')
    with pytest.raises(RuleNotFoundError, match="no retention rule for 'recording'"):
        retain_until("recording", contact_at=at(2025, 7, 10), ruleset=empty)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="contact_at must be timezone-aware"):
        retain_until("recording", contact_at=datetime(2025, 7, 10, 12))


def test_complaint_closing_needs_the_complaint() -> None:
    with pytest.raises(ValueError, match="complaint_closed_at was given without complaint_at"):
        retain_until(
            "complaint_linked", contact_at=at(2025, 7, 10), complaint_closed_at=at(2025, 9, 1)
        )


# --- a whole protocol --------------------------------------------------------------


def test_protocol_without_complaint() -> None:
    result = retention_for_protocol(contact_at=at(2025, 7, 10), resolved_at=at(2025, 7, 14))
    assert result == {
        RecordClass.RECORDING: at(2025, 10, 8),
        RecordClass.INTERACTION_RECORD: at(2027, 7, 14),
        RecordClass.PROTOCOL_RECORD: at(2027, 7, 14),
        RecordClass.NOTIFICATION: at(2027, 7, 14),
    }


def test_later_complaint_extends_every_record_of_the_protocol() -> None:
    result = retention_for_protocol(
        contact_at=at(2025, 7, 10),
        resolved_at=at(2025, 7, 14),
        complaint_at=at(2026, 1, 20),
        complaint_closed_at=at(2026, 2, 28),
    )
    five_years = at(2031, 2, 28)
    assert result[RecordClass.COMPLAINT_LINKED] == five_years
    assert all(until == five_years for until in result.values())
    assert set(result) == set(RecordClass)


def test_open_complaint_keeps_everything_until_it_closes() -> None:
    result = retention_for_protocol(
        contact_at=at(2025, 7, 10), resolved_at=at(2025, 7, 14), complaint_at=at(2025, 8, 1)
    )
    assert all(until is None for until in result.values())


def test_complaint_never_shortens_a_longer_retention() -> None:
    # the complaint closed long before the demand was resolved: 2 years from the resolution
    # outlast 5 years from the complaint's closing
    result = retention_for_protocol(
        contact_at=at(2025, 7, 10),
        resolved_at=at(2032, 1, 5),
        complaint_at=at(2025, 7, 11),
        complaint_closed_at=at(2025, 7, 20),
    )
    assert result[RecordClass.COMPLAINT_LINKED] == at(2030, 7, 20)
    assert result[RecordClass.PROTOCOL_RECORD] == at(2034, 1, 5)
    assert result[RecordClass.RECORDING] == at(2030, 7, 20)


def test_complaint_on_an_unresolved_demand_keeps_everything() -> None:
    result = retention_for_protocol(
        contact_at=at(2025, 7, 10), complaint_at=at(2025, 7, 20), complaint_closed_at=at(2025, 8, 1)
    )
    assert result[RecordClass.COMPLAINT_LINKED] == at(2030, 8, 1)
    assert result[RecordClass.PROTOCOL_RECORD] is None
    assert result[RecordClass.RECORDING] == at(2030, 8, 1)


# --- purge -------------------------------------------------------------------------


def test_purge_only_strictly_after_the_end_and_without_holds() -> None:
    end = at(2027, 7, 14)
    assert not purge_allowed(end, end, holds_active=False)
    assert purge_allowed(end + timedelta(microseconds=1), end, holds_active=False) is False
    assert purge_allowed(end, end + timedelta(microseconds=1), holds_active=False)
    assert not purge_allowed(end, end + timedelta(days=3650), holds_active=True)


def test_no_purge_while_the_end_is_unknown() -> None:
    assert not purge_allowed(None, at(2099, 1, 1), holds_active=False)


def test_purge_needs_aware_times() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        purge_allowed(at(2027, 7, 14), datetime(2030, 1, 1), holds_active=False)


def test_rule_in_force_from_rn623() -> None:
    rule = load_ruleset().retention_rule("complaint_linked", date(2025, 7, 1))
    assert (rule.amount, rule.unit.value, rule.starts_at.value) == (5, "years", "complaint_closed")


def test_day_periods_are_elapsed_time_across_a_dst_change() -> None:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from rn623_rulebook.retention import add_period

    # DST began in São Paulo on 4 Nov 2018: 90 days must still be 90 x 24 hours
    contact = datetime(2018, 11, 1, 10, tzinfo=ZoneInfo("America/Sao_Paulo"))
    until = add_period(contact, 90, "days")
    assert until.astimezone(UTC) - contact.astimezone(UTC) == timedelta(days=90)
