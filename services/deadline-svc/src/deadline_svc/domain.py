"""Pure rules of deadline-svc: checkpoints, the scheduler's verdicts, answers (no I/O).

Checkpoints (the defaults; the set is a setting):

- ``one_business_day_left``: from the start (00:00, operator's time zone) of the last
  business day before the due day, when only the due day itself remains;
- ``elapsed_80_percent``: when 80 % of the clock time from the start of the count to
  the due instant has gone by.

A checkpoint that would fall at or before the start of the count, or at or after the due
instant, does not apply (e.g. the business-day warning of an urgency due in hours).
A deadline is breached once the clock is past its due instant; an answer at the due
instant itself is on time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from rn623_rulebook import BusinessCalendar

OPEN = "open"
MET = "met"
MET_LATE = "met_late"
BREACHED = "breached"
STATUSES = (OPEN, MET, MET_LATE, BREACHED)

ONE_BUSINESS_DAY_LEFT = "one_business_day_left"
ELAPSED_80_PERCENT = "elapsed_80_percent"


def checkpoint_instants(
    checkpoints: Iterable[str],
    started_at: datetime,
    due_at: datetime,
    calendar: BusinessCalendar,
) -> dict[str, datetime]:
    """The instant of each checkpoint that applies to a count from ``started_at`` to ``due_at``."""
    instants: dict[str, datetime] = {}
    for checkpoint in checkpoints:
        if checkpoint == ELAPSED_80_PERCENT:
            instant = started_at + (due_at - started_at) * 0.8
        elif checkpoint == ONE_BUSINESS_DAY_LEFT:
            eve = calendar.previous_business_day(calendar.local_date(due_at))
            instant = datetime.combine(eve, time.min, tzinfo=calendar.tz)
        else:
            raise ValueError(f"unknown checkpoint {checkpoint!r}")
        if _utc(started_at) < _utc(instant) < _utc(due_at):
            instants[checkpoint] = instant
    return instants


@dataclass(frozen=True)
class Verdict:
    """What the scheduler must do with an open deadline at some instant."""

    warnings: tuple[str, ...]
    breach: bool
    next_check_at: datetime | None


def verdict(
    now: datetime, due_at: datetime, instants: Mapping[str, datetime], warned: Sequence[str]
) -> Verdict:
    """Warnings now due (not yet emitted), whether the deadline is breached, the next look.

    Past the due instant only the breach is reported: a warning would say nothing new.
    """
    if _utc(now) > _utc(due_at):
        return Verdict(warnings=(), breach=True, next_check_at=None)
    pending = {c: t for c, t in instants.items() if c not in warned}
    due_now = tuple(sorted((c for c, t in pending.items() if _utc(t) <= _utc(now)), key=str))
    later = [t for c, t in pending.items() if c not in due_now]
    return Verdict(warnings=due_now, breach=False, next_check_at=min([*later, due_at], key=_utc))


def next_check(
    status: str, due_at: datetime, instants: Mapping[str, datetime], warned: Sequence[str]
) -> datetime | None:
    """When the scheduler must next look at a deadline (None once it is closed or breached)."""
    if status != OPEN:
        return None
    pending = [t for c, t in instants.items() if c not in warned]
    return min([*pending, due_at], key=_utc)


@dataclass(frozen=True)
class Outcome:
    """How a deadline ends when its answer comes."""

    status: str
    late: bool
    elapsed_business_days: int
    elapsed_seconds: float


def answered(
    started_at: datetime, due_at: datetime, answered_at: datetime, calendar: BusinessCalendar
) -> Outcome:
    """Met or met late, with the business days and clock time the answer took."""
    late = _utc(answered_at) > _utc(due_at)
    days = calendar.business_days_between(
        calendar.local_date(started_at), calendar.local_date(answered_at)
    )
    seconds = (_utc(answered_at) - _utc(started_at)).total_seconds()
    return Outcome(
        status=MET_LATE if late else MET,
        late=late,
        elapsed_business_days=max(days, 0),
        elapsed_seconds=max(seconds, 0.0),
    )


def business_days_left(now: datetime, due_at: datetime, calendar: BusinessCalendar) -> int:
    """Business days after today until the due day (0 on the due day itself)."""
    return max(calendar.business_days_remaining(now, due_at), 0)


def deadline_fields(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The fields every ``deadline.*`` event carries, from a deadline row."""
    return {
        "deadline_id": row["id"],
        "protocol_number": row["protocol_number"],
        "ans_registry": row["ans_registry"],
        "demand_id": row["demand_id"],
        "access_request_id": row["access_request_id"],
        "kind": row["kind"],
        "due_at": row["due_at"],
    }


def _utc(moment: datetime) -> datetime:
    # compare in UTC: same-zone comparisons ignore fold (the repeated DST hour)
    return moment.astimezone(UTC)
