"""What services ask the rulebook: the deadline of a demand (and re-exports below)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rn623_rulebook.calendars import BusinessCalendar
from rn623_rulebook.rules import (
    DeadlineOverride,
    DeadlineRule,
    DeadlineUnit,
    DemandType,
    RuleSet,
    load_ruleset,
)


class NoDeadlineRuleError(LookupError):
    """No deadline rule was in force for a demand type on its registration date."""


@dataclass(frozen=True)
class Deadline:
    """When a demand must have its conclusive answer, and which rule says so."""

    due_at: datetime
    rule_id: str
    legal_basis: str
    unit: DeadlineUnit
    amount: int
    immediate: bool
    ruleset_id: str


def deadline_for(
    demand_type: DemandType | str,
    category: str | None,
    registered_at: datetime,
    calendar: BusinessCalendar,
    *,
    overrides: Sequence[DeadlineOverride] = (),
    ruleset: RuleSet | None = None,
) -> Deadline:
    """The effective deadline: the earliest due instant of every rule that applies.

    Rules are those in force on the registration date in the operator's time zone:
    the type-wide rule, any narrower category rule (shorter norms win) and the
    operator's stricter overrides. Business-day rules follow the calendar's counting
    convention; hour rules (urgency tolerance, records access) run on the clock.
    """
    if registered_at.tzinfo is None:
        raise ValueError("registered_at must be timezone-aware")
    rules_set = ruleset if ruleset is not None else _current_ruleset()
    on = calendar.local_date(registered_at)
    rules = _applicable_rules(rules_set, demand_type, category, on, tuple(overrides))
    if not rules:
        raise NoDeadlineRuleError(
            f"no deadline rule for {DemandType(demand_type).value} in force on {on.isoformat()}"
            f" in rule set {rules_set.id}"
        )
    if len(rules) == 1:  # the usual case
        rule = rules[0]
        due_at = _due(rule, registered_at, calendar)
    else:
        # compared in UTC: same-zone comparison ignores the DST fold of a repeated hour
        due_at, rule = min(
            ((_due(rule, registered_at, calendar), rule) for rule in rules),
            key=lambda pair: pair[0].astimezone(UTC),
        )
    return Deadline(
        due_at=due_at,
        rule_id=rule.id,
        legal_basis=rule.legal_basis,
        unit=rule.unit,
        amount=rule.amount,
        immediate=rule.immediate,
        ruleset_id=rules_set.id,
    )


@functools.cache
def _current_ruleset() -> RuleSet:
    """The newest packaged rule set (packaged data never changes while running)."""
    return load_ruleset()


# Rules that apply depend only on (type, category, local day, overrides): memoized per
# rule set. The rule set itself is kept in the entry so its id() is never reused.
_RULES_CACHE: dict[int, tuple[RuleSet, dict[tuple[Any, ...], list[DeadlineRule]]]] = {}
_RULES_CACHE_LIMIT = 50_000


def _applicable_rules(
    rules_set: RuleSet,
    demand_type: DemandType | str,
    category: str | None,
    on: date,
    overrides: tuple[DeadlineOverride, ...],
) -> list[DeadlineRule]:
    entry = _RULES_CACHE.get(id(rules_set))
    if entry is None or entry[0] is not rules_set:
        if len(_RULES_CACHE) >= 16:  # rule sets built on the fly must not accumulate
            _RULES_CACHE.clear()
        entry = _RULES_CACHE[id(rules_set)] = (rules_set, {})
    memo = entry[1]
    key = (demand_type, category, on, overrides)
    rules = memo.get(key)
    if rules is None:
        rules = rules_set.deadline_rules(demand_type, category, on, overrides)
        if len(memo) >= _RULES_CACHE_LIMIT:
            memo.clear()
        memo[key] = rules
    return rules


def _due(rule: DeadlineRule, registered_at: datetime, calendar: BusinessCalendar) -> datetime:
    if rule.unit is DeadlineUnit.BUSINESS_DAYS:
        return calendar.due_at(registered_at, rule.amount)
    # elapsed hours: adding to a local time in a DST zone would add wall-clock hours
    return (registered_at.astimezone(UTC) + timedelta(hours=rule.amount)).astimezone(calendar.tz)
