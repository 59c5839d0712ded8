"""Effective-dated regulatory rules (deadlines, retention, channels, IGR goals) loaded from data.

Rule sets live in ``data/rulesets/<id>.yaml`` inside this package and are validated by
Pydantic when loaded. Every rule carries its legal basis and the dates it is in force
(``effective_to`` is the last day in force, inclusive). A demand is judged by the rules in
force on the day it was registered. See ``docs/rules.md`` for every value and its basis.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RULESETS_PACKAGE = "rn623_rulebook"
RULESETS_DIR = ("data", "rulesets")

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.:-]*$", max_length=120)]
Category = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=80)]


class RulesetError(ValueError):
    """A packaged or supplied rule set is missing, unreadable or invalid."""


class RuleNotFoundError(LookupError):
    """No rule of the requested kind is in force on the requested date."""


class OverrideError(ValueError):
    """An operator override is not allowed (unknown rule, other unit, or not stricter)."""


class DemandType(StrEnum):
    """Kinds of beneficiary demand, each with its own response deadline."""

    URGENT_EMERGENCY = "urgent_emergency"
    ASSISTANCE = "assistance"
    HIGH_COMPLEXITY = "high_complexity"
    ELECTIVE_HOSPITALIZATION = "elective_hospitalization"
    NON_ASSISTANCE = "non_assistance"
    REANALYSIS = "reanalysis"
    RECORDS_ACCESS = "records_access"


class DeadlineUnit(StrEnum):
    """Unit of a deadline amount."""

    BUSINESS_DAYS = "business_days"
    HOURS = "hours"


class RecordClass(StrEnum):
    """Classes of record with their own retention period."""

    RECORDING = "recording"
    INTERACTION_RECORD = "interaction_record"
    PROTOCOL_RECORD = "protocol_record"
    NOTIFICATION = "notification"
    COMPLAINT_LINKED = "complaint_linked"


class RetentionStart(StrEnum):
    """Event that starts a retention clock."""

    CONTACT = "contact"
    RESOLUTION = "resolution"
    COMPLAINT = "complaint"
    COMPLAINT_CLOSED = "complaint_closed"


class PeriodUnit(StrEnum):
    """Unit of a retention period (calendar arithmetic)."""

    DAYS = "days"
    YEARS = "years"


class Segment(StrEnum):
    """Operator segment: medical-hospital, dental-only, or both."""

    MEDICAL = "medical"
    DENTAL = "dental"
    BOTH = "both"


class Coverage(StrEnum):
    """Coverage for which an IGR is computed and published."""

    MEDICAL = "medical"
    DENTAL = "dental"


class Porte(StrEnum):
    """Operator size by number of beneficiaries."""

    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class Channel(StrEnum):
    """Attendance channel subject to availability obligations."""

    TELEPHONE = "telephone"
    VIRTUAL = "virtual"
    IN_PERSON = "in_person"


class Availability(StrEnum):
    """Required opening of a channel."""

    ALWAYS = "24x7"
    BUSINESS_DAYS = "business_days"


class ChannelScope(StrEnum):
    """Demands a channel obligation covers."""

    ALL_DEMANDS = "all_demands"
    URGENT_EMERGENCY = "urgent_emergency"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rule(_Frozen):
    """Common fields of every rule: id, legal basis, effective dates and an optional note."""

    id: RuleId
    legal_basis: str = Field(min_length=1)
    effective_from: date
    effective_to: date | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _dates_ordered(self) -> Rule:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError(
                f"rule {self.id!r}: effective_to {self.effective_to} is before "
                f"effective_from {self.effective_from}"
            )
        return self

    def in_force(self, on: date) -> bool:
        """Whether the rule is in force on ``on`` (both ends inclusive)."""
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)

    def overlaps(self, other: Rule) -> bool:
        """Whether the two rules have at least one day in force in common."""
        end_a = self.effective_to or date.max
        end_b = other.effective_to or date.max
        return self.effective_from <= end_b and other.effective_from <= end_a


class DeadlineRule(Rule):
    """Maximum time to give a conclusive answer to a demand of a type (and category)."""

    demand_type: DemandType
    category: Category | None = None
    unit: DeadlineUnit
    amount: int = Field(ge=0)
    immediate: bool = False

    @model_validator(mode="after")
    def _immediate_in_hours(self) -> DeadlineRule:
        if self.immediate and self.unit is not DeadlineUnit.HOURS:
            raise ValueError(f"rule {self.id!r}: an immediate deadline must be in hours")
        return self


class DeadlineOverride(_Frozen):
    """An operator's stricter deadline replacing a regulatory rule's value for that operator."""

    rule_id: RuleId
    unit: DeadlineUnit
    amount: int = Field(ge=0)
    reason: str | None = None
    effective_from: date | None = None
    effective_to: date | None = None

    def in_force(self, on: date) -> bool:
        """Whether the override applies on ``on`` (open-ended when dates are absent)."""
        return (self.effective_from is None or self.effective_from <= on) and (
            self.effective_to is None or on <= self.effective_to
        )


class RetentionRule(Rule):
    """Minimum retention of a record class, counted from a starting event."""

    record_class: RecordClass
    amount: int = Field(gt=0)
    unit: PeriodUnit
    starts_at: RetentionStart


class ChannelObligation(Rule):
    """Availability a channel must offer, for some portes and segments."""

    channel: Channel
    portes: tuple[Porte, ...] = Field(min_length=1)
    segments: tuple[Segment, ...] = Field(min_length=1)
    scope: ChannelScope = ChannelScope.ALL_DEMANDS
    availability: Availability
    min_hours_per_business_day: int | None = Field(default=None, ge=1, le=24)
    conditions: str | None = None
    exempt_modalities: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _hours_match_availability(self) -> ChannelObligation:
        if self.availability is Availability.BUSINESS_DAYS and not self.min_hours_per_business_day:
            raise ValueError(
                f"rule {self.id!r}: business-day availability needs min_hours_per_business_day"
            )
        if self.availability is Availability.ALWAYS and self.min_hours_per_business_day:
            raise ValueError(
                f"rule {self.id!r}: 24x7 availability takes no min_hours_per_business_day"
            )
        return self


class PorteRule(Rule):
    """Beneficiary thresholds: small below ``small_below``, large above ``large_above``."""

    small_below: int = Field(gt=0)
    large_above: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> PorteRule:
        if self.large_above < self.small_below:
            raise ValueError(f"rule {self.id!r}: large_above must be >= small_below")
        return self


class IgrExcellenceRule(Rule):
    """Meta de Excelência for one coverage: reference values and the fine discount."""

    coverage: Coverage
    igr_medio_max: Decimal = Field(ge=0)
    igr_individual_max: Decimal | None = Field(default=None, ge=0)
    individual_measure: str | None = None
    discount_pct: int = Field(ge=0, le=100)


class IgrReductionRule(Rule):
    """Meta de Redução: IGR médio reduced by at least a percentage against a baseline quarter."""

    min_reduction_pct: Decimal = Field(ge=0, lt=100)
    baseline: Literal["same_quarter_previous_year", "previous_quarter"]
    discount_pct: int = Field(ge=0, le=100)


AnyRule = (
    DeadlineRule
    | RetentionRule
    | ChannelObligation
    | PorteRule
    | IgrExcellenceRule
    | IgrReductionRule
)


def _check_no_overlap(rules: Sequence[Rule], key: Any, what: str) -> None:
    """Refuse two rules with the same key and a day in force in common."""
    for i, first in enumerate(rules):
        for second in rules[i + 1 :]:
            if key(first) == key(second) and first.overlaps(second):
                raise ValueError(
                    f"{what} rules {first.id!r} and {second.id!r} overlap in time for the "
                    f"same {key(first)}; give one an effective_to before the other starts"
                )


class RuleSet(_Frozen):
    """A versioned, validated collection of effective-dated rules with query methods."""

    id: RuleId
    version: str = Field(min_length=1)
    title: str = Field(min_length=1)
    published_on: date
    notes: str | None = None
    deadlines: tuple[DeadlineRule, ...] = ()
    retention: tuple[RetentionRule, ...] = ()
    channels: tuple[ChannelObligation, ...] = ()
    porte: tuple[PorteRule, ...] = ()
    igr_excellence: tuple[IgrExcellenceRule, ...] = ()
    igr_reduction: tuple[IgrReductionRule, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.all_rules():
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        _check_no_overlap(self.deadlines, lambda r: (r.demand_type.value, r.category), "deadline")
        _check_no_overlap(self.retention, lambda r: r.record_class.value, "retention")
        _check_no_overlap(self.porte, lambda r: "porte", "porte")
        _check_no_overlap(self.igr_excellence, lambda r: r.coverage.value, "IGR excellence")
        _check_no_overlap(self.igr_reduction, lambda r: "reduction", "IGR reduction")
        for i, first in enumerate(self.channels):
            for second in self.channels[i + 1 :]:
                if (
                    (first.channel, first.scope) == (second.channel, second.scope)
                    and set(first.portes) & set(second.portes)
                    and set(first.segments) & set(second.segments)
                    and first.overlaps(second)
                ):
                    raise ValueError(
                        f"channel rules {first.id!r} and {second.id!r} overlap for the same "
                        "channel, scope, porte and segment"
                    )
        return self

    def all_rules(self) -> list[AnyRule]:
        """Every rule of the set, whatever its kind."""
        return [
            *self.deadlines,
            *self.retention,
            *self.channels,
            *self.porte,
            *self.igr_excellence,
            *self.igr_reduction,
        ]

    def rules_in_force(self, on: date) -> list[AnyRule]:
        """Every rule in force on ``on``."""
        return [rule for rule in self.all_rules() if rule.in_force(on)]

    def rule(self, rule_id: str) -> AnyRule:
        """The rule with this id (``KeyError`` when absent)."""
        for rule in self.all_rules():
            if rule.id == rule_id:
                return rule
        raise KeyError(f"ruleset {self.id!r} has no rule {rule_id!r}")

    def check_override(self, override: DeadlineOverride) -> DeadlineRule:
        """Return the deadline rule an override targets, or raise ``OverrideError``."""
        target = next((r for r in self.deadlines if r.id == override.rule_id), None)
        if target is None:
            raise OverrideError(
                f"override targets {override.rule_id!r}, which is not a deadline rule of "
                f"ruleset {self.id!r}"
            )
        if override.unit is not target.unit:
            raise OverrideError(
                f"override of rule {target.id!r} ({target.legal_basis}) is in "
                f"{override.unit.value} but the rule is in {target.unit.value}; "
                "an override must use the rule's unit"
            )
        if override.amount > target.amount:
            raise OverrideError(
                f"override of rule {target.id!r} ({target.legal_basis}) is "
                f"{override.amount} {override.unit.value}, longer than the regulatory "
                f"{target.amount} {target.unit.value}; an operator may only shorten a deadline"
            )
        return target

    def deadline_rules(
        self,
        demand_type: DemandType | str,
        category: str | None,
        on: date,
        overrides: Sequence[DeadlineOverride] = (),
    ) -> list[DeadlineRule]:
        """Every deadline rule applying to the demand on ``on``; the caller takes the minimum."""
        kind = DemandType(demand_type)
        applicable = [
            rule
            for rule in self.deadlines
            if rule.demand_type is kind
            and (rule.category is None or rule.category == category)
            and rule.in_force(on)
        ]
        applicable.sort(key=lambda r: (r.category is not None, r.id))
        by_id = {rule.id: rule for rule in applicable}
        derived: list[DeadlineRule] = []
        for override in overrides:
            target = self.check_override(override)
            if target.id in by_id and override.in_force(on):
                derived.append(_apply_override(target, override, on))
        return applicable + derived

    def retention_rule(self, record_class: RecordClass | str, on: date) -> RetentionRule:
        """The retention rule for a record class in force on ``on``."""
        wanted = RecordClass(record_class)
        for rule in self.retention:
            if rule.record_class is wanted and rule.in_force(on):
                return rule
        raise RuleNotFoundError(
            f"ruleset {self.id!r} has no retention rule for {wanted.value!r} in force on {on}"
        )

    def porte_rule(self, on: date | None = None) -> PorteRule:
        """The porte thresholds in force on ``on`` (the newest ones when ``on`` is None)."""
        candidates = [r for r in self.porte if on is None or r.in_force(on)]
        if not candidates:
            raise RuleNotFoundError(f"ruleset {self.id!r} has no porte rule in force on {on}")
        return max(candidates, key=lambda r: r.effective_from)

    def channel_obligations(
        self, porte: Porte | str, segment: Segment | str, on: date
    ) -> list[ChannelObligation]:
        """Channel obligations of an operator of this porte and segment on ``on``."""
        size, seg = Porte(porte), Segment(segment)
        return [
            rule
            for rule in self.channels
            if size in rule.portes and seg in rule.segments and rule.in_force(on)
        ]

    def igr_excellence_rule(self, coverage: Coverage | str, on: date) -> IgrExcellenceRule:
        """The Meta de Excelência reference values for a coverage in force on ``on``."""
        wanted = Coverage(coverage)
        for rule in self.igr_excellence:
            if rule.coverage is wanted and rule.in_force(on):
                return rule
        raise RuleNotFoundError(
            f"ruleset {self.id!r} has no IGR excellence rule for {wanted.value!r} on {on}"
        )

    def igr_reduction_rule(self, on: date) -> IgrReductionRule | None:
        """The Meta de Redução rule in force on ``on``, if any."""
        return next((r for r in self.igr_reduction if r.in_force(on)), None)


def _apply_override(target: DeadlineRule, override: DeadlineOverride, on: date) -> DeadlineRule:
    """Build the rule an override stands for, valid on the override's and target's common days."""
    starts = [target.effective_from]
    if override.effective_from is not None:
        starts.append(override.effective_from)
    ends = [d for d in (target.effective_to, override.effective_to) if d is not None]
    reason = f": {override.reason}" if override.reason else ""
    return target.model_copy(
        update={
            "id": f"override:{target.id}",
            "legal_basis": f"Operator override of {target.id} ({target.legal_basis})",
            "amount": override.amount,
            "effective_from": max(starts),
            "effective_to": min(ends) if ends else None,
            "note": f"stricter operator deadline{reason}",
        }
    )


def _describe_errors(exc: ValidationError, data: Any) -> str:
    """Render Pydantic errors as one line each, naming the rule id where there is one."""
    lines = []
    for error in exc.errors():
        loc = error["loc"]
        where = ".".join(str(part) for part in loc) or "(top level)"
        if (
            len(loc) >= 2
            and isinstance(data, dict)
            and isinstance(loc[1], int)
            and isinstance(data.get(loc[0]), list)
            and loc[1] < len(data[loc[0]])
            and isinstance(data[loc[0]][loc[1]], dict)
            and "id" in data[loc[0]][loc[1]]
        ):
            where += f" (rule {data[loc[0]][loc[1]]['id']!r})"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)


def parse_ruleset(text: str, source: str = "<string>") -> RuleSet:
    """Parse and validate a rule set from YAML text; raise ``RulesetError`` with every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesetError(f"ruleset {source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RulesetError(f"ruleset {source}: expected a mapping at the top level")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RulesetError(
            f"ruleset {source} is invalid ({exc.error_count()} problem(s)):\n"
            f"{_describe_errors(exc, data)}"
        ) from exc


def _rulesets_dir() -> Any:
    folder = resources.files(RULESETS_PACKAGE)
    for part in RULESETS_DIR:
        folder = folder.joinpath(part)
    return folder


@functools.cache
def available_rulesets() -> tuple[str, ...]:
    """Ids of the packaged rule sets, sorted."""
    names = [
        entry.name.removesuffix(".yaml")
        for entry in _rulesets_dir().iterdir()
        if entry.name.endswith(".yaml")
    ]
    return tuple(sorted(names))


@functools.cache
def _load_packaged(ruleset_id: str) -> RuleSet:
    if ruleset_id not in available_rulesets():
        raise RulesetError(
            f"no packaged ruleset {ruleset_id!r}; available: {', '.join(available_rulesets())}"
        )
    entry = _rulesets_dir().joinpath(f"{ruleset_id}.yaml")
    ruleset = parse_ruleset(entry.read_text(encoding="utf-8"), source=f"{ruleset_id}.yaml")
    if ruleset.id != ruleset_id:
        raise RulesetError(f"ruleset file {ruleset_id}.yaml declares id {ruleset.id!r}")
    return ruleset


def load_ruleset(ruleset_id: str | None = None) -> RuleSet:
    """The packaged rule set with this id, or the newest published one (cached)."""
    if ruleset_id is not None:
        return _load_packaged(ruleset_id)
    ids = available_rulesets()
    if not ids:
        raise RulesetError("no packaged ruleset found")
    return max((_load_packaged(i) for i in ids), key=lambda r: (r.published_on, r.id))
