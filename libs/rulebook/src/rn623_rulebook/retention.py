"""Retention of records: until when each record class must be kept, and when it may be purged.

A retention period runs from a starting event (the contact, the resolution of the demand,
or the complaint) and is a *minimum*: the record may be kept longer, never shorter. Years
are calendar years (same month, day and time N years later); a period that starts on
29 February ends on 1 March of a year without one, because the Brazilian Civil Code
(art. 132, § 3º) makes a period of years expire on the next day when the final month has
no day of equal number. Days are exact 24-hour steps. ``None`` means the starting event
has not happened yet, so the record must be kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from rn623_rulebook.rules import (
    PeriodUnit,
    RecordClass,
    RetentionRule,
    RetentionStart,
    RuleNotFoundError,
    RuleSet,
    load_ruleset,
)

LeapDay = Literal["mar_1", "feb_28"]

PROTOCOL_CLASSES: tuple[RecordClass, ...] = (
    RecordClass.RECORDING,
    RecordClass.INTERACTION_RECORD,
    RecordClass.PROTOCOL_RECORD,
    RecordClass.NOTIFICATION,
)


def _require_aware(name: str, moment: datetime | None) -> None:
    if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware (RFC 3339 with offset), got {moment!r}")


def add_years(moment: datetime, years: int, *, feb29: LeapDay = "mar_1") -> datetime:
    """The same month, day and time ``years`` later (29 Feb without match → 1 Mar by default)."""
    target = moment.year + years
    try:
        return moment.replace(year=target)
    except ValueError:  # 29 February into a year without one
        if feb29 == "feb_28":
            return moment.replace(year=target, day=28)
        return moment.replace(year=target, month=3, day=1)


def add_period(moment: datetime, amount: int, unit: PeriodUnit | str) -> datetime:
    """``moment`` plus a retention period in calendar years or days."""
    if PeriodUnit(unit) is PeriodUnit.YEARS:
        return add_years(moment, amount)
    # elapsed time, not wall-clock time: a DST change inside the period must not shorten it
    return (moment.astimezone(UTC) + timedelta(days=amount)).astimezone(moment.tzinfo)


def _rule_for(ruleset: RuleSet, record_class: RecordClass, on: date) -> RetentionRule:
    """The rule in force on ``on``; for older records, the first rule that came into force later.

    The retention duty applies to records still held when a rule enters into force, so a
    record older than every rule is governed by the earliest rule that followed it.
    """
    try:
        return ruleset.retention_rule(record_class, on)
    except RuleNotFoundError:
        later = [
            rule
            for rule in ruleset.retention
            if rule.record_class is record_class and rule.effective_from > on
        ]
        if not later:
            raise
        return min(later, key=lambda rule: rule.effective_from)


def retain_until(
    record_class: RecordClass | str,
    *,
    contact_at: datetime,
    resolved_at: datetime | None = None,
    complaint_at: datetime | None = None,
    complaint_closed_at: datetime | None = None,
    on: date | None = None,
    ruleset: RuleSet | None = None,
) -> datetime | None:
    """Earliest instant a record may be purged under its class's rule; None if not yet known."""
    for name, moment in (
        ("contact_at", contact_at),
        ("resolved_at", resolved_at),
        ("complaint_at", complaint_at),
        ("complaint_closed_at", complaint_closed_at),
    ):
        _require_aware(name, moment)
    if complaint_closed_at is not None and complaint_at is None:
        raise ValueError("complaint_closed_at was given without complaint_at")
    rules = ruleset if ruleset is not None else load_ruleset()
    rule = _rule_for(rules, RecordClass(record_class), on or contact_at.date())
    start = {
        RetentionStart.CONTACT: contact_at,
        RetentionStart.RESOLUTION: resolved_at,
        RetentionStart.COMPLAINT: complaint_at,
        RetentionStart.COMPLAINT_CLOSED: complaint_closed_at,
    }[rule.starts_at]
    if start is None:
        return None
    return add_period(start, rule.amount, rule.unit)


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    """The later of two retention ends, where None (not yet known) outlasts any instant."""
    if first is None or second is None:
        return None
    return max(first, second)


def retention_for_protocol(
    *,
    contact_at: datetime,
    resolved_at: datetime | None = None,
    complaint_at: datetime | None = None,
    complaint_closed_at: datetime | None = None,
    on: date | None = None,
    ruleset: RuleSet | None = None,
) -> dict[RecordClass, datetime | None]:
    """Every record class's retain_until for one protocol; a complaint extends them all."""

    def until(record_class: RecordClass) -> datetime | None:
        return retain_until(
            record_class,
            contact_at=contact_at,
            resolved_at=resolved_at,
            complaint_at=complaint_at,
            complaint_closed_at=complaint_closed_at,
            on=on,
            ruleset=ruleset,
        )

    result: dict[RecordClass, datetime | None] = {cls: until(cls) for cls in PROTOCOL_CLASSES}
    if complaint_at is not None:
        linked = until(RecordClass.COMPLAINT_LINKED)
        result = {cls: _later(end, linked) for cls, end in result.items()}
        result[RecordClass.COMPLAINT_LINKED] = linked
    return result


def resolution_instant(
    contact_at: datetime, answered_at: Iterable[datetime | None]
) -> datetime | None:
    """When a protocol was resolved: its last answer once every demand has one.

    ``answered_at`` holds one entry per demand (None while unanswered). A contact that
    raised no demand was resolved in the contact itself; a protocol with an open demand
    (a re-analysis included) is not resolved yet, so its clock has not started.
    """
    _require_aware("contact_at", contact_at)
    answers = list(answered_at)
    if not answers:
        return contact_at
    if any(answer is None for answer in answers):
        return None
    return max(answer for answer in answers if answer is not None)


def complaint_closing(
    complaint_at: datetime | None, resolved_at: datetime | None
) -> datetime | None:
    """When a protocol's complaint is taken as closed: once the protocol is resolved (every
    demand answered), and never before the complaint itself.

    The platform records no separate closing of a complaint; the answers the complaint
    leads to (a re-analysis, a new demand) are what resolve it.
    """
    if complaint_at is None or resolved_at is None:
        return None
    return max(complaint_at, resolved_at)


def protocol_retention(
    contact_at: datetime,
    answered_at: Iterable[datetime | None],
    complaint_at: datetime | None = None,
    *,
    ruleset: RuleSet | None = None,
) -> dict[RecordClass, datetime | None]:
    """Every record class's retain_until for a protocol from its facts: the contact, each
    demand's answer (None while open) and its latest complaint.

    The one function both the records' owners and retention-svc use, so they agree.
    """
    resolved_at = resolution_instant(contact_at, answered_at)
    return retention_for_protocol(
        contact_at=contact_at,
        resolved_at=resolved_at,
        complaint_at=complaint_at,
        complaint_closed_at=complaint_closing(complaint_at, resolved_at),
        ruleset=ruleset,
    )


def purge_allowed(retain_until: datetime | None, now: datetime, holds_active: bool) -> bool:
    """True only when no legal hold is active and ``now`` is strictly after ``retain_until``."""
    _require_aware("now", now)
    _require_aware("retain_until", retain_until)
    if holds_active or retain_until is None:
        return False
    return now > retain_until
