"""IGR (Índice Geral de Reclamações): monthly and quarterly figures, and the goals they meet.

The monthly IGR of an operator and coverage is NIP complaints in the month divided by the
beneficiaries in that month, times 100 000, rounded half-up to 2 decimals: this reproduces
every value the regulator published from 2018-06 to 2024-05 (see the tests). Arithmetic is
exact (integers and ``Decimal``), never binary floating point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from rn623_rulebook.rules import Coverage, RuleSet, Segment, load_ruleset

SCALE = 100_000
QuarterlyMethod = Literal["mean_of_monthly", "ratio_of_sums"]

_COVERAGES: dict[Segment, tuple[Coverage, ...]] = {
    Segment.MEDICAL: (Coverage.MEDICAL,),
    Segment.DENTAL: (Coverage.DENTAL,),
    Segment.BOTH: (Coverage.MEDICAL, Coverage.DENTAL),
}


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _divide_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half-up to an integer (both non-negative)."""
    quotient, remainder = divmod(numerator, denominator)
    return quotient + 1 if 2 * remainder >= denominator else quotient


def _hundredths(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """One month's NIP complaints and beneficiaries for an operator and coverage."""

    complaints: int
    beneficiaries: int

    def __post_init__(self) -> None:
        _check_count("complaints", self.complaints)
        _check_count("beneficiaries", self.beneficiaries)


def monthly_igr(complaints: int, beneficiaries: int) -> Decimal | None:
    """Complaints / beneficiaries * 100 000, half-up to 2 decimals; None without beneficiaries."""
    _check_count("complaints", complaints)
    _check_count("beneficiaries", beneficiaries)
    if beneficiaries == 0:
        return None
    return _hundredths(_divide_half_up(complaints * SCALE * 100, beneficiaries))


def quarterly_igr(
    months: Sequence[MonthFigures], method: QuarterlyMethod = "mean_of_monthly"
) -> Decimal | None:
    """Quarterly IGR médio from up to three months, on the monthly scale (half-up, 2 decimals).

    ``mean_of_monthly`` (default) averages the published, already rounded monthly values of
    the months that have beneficiaries. ``ratio_of_sums`` divides the quarter's complaints by
    the sum of the monthly beneficiary counts. Neither divides a quarter's complaints by one
    month's beneficiaries, which would triple the figure.
    """
    if not 1 <= len(months) <= 3:
        raise ValueError(f"a quarter has 1 to 3 months of figures, got {len(months)}")
    if method == "mean_of_monthly":
        values = [monthly_igr(m.complaints, m.beneficiaries) for m in months]
        cents = [int(v.scaleb(2)) for v in values if v is not None]
        if not cents:
            return None
        return _hundredths(_divide_half_up(sum(cents), len(cents)))
    if method == "ratio_of_sums":
        return monthly_igr(sum(m.complaints for m in months), sum(m.beneficiaries for m in months))
    raise ValueError(f"unknown quarterly IGR method {method!r}")


@dataclass(frozen=True, slots=True)
class CoverageGoals:
    """How one coverage of the operator fares against the goals."""

    coverage: Coverage
    igr_medio: Decimal
    igr_medio_max: Decimal
    igr_individual: Decimal | None
    igr_individual_max: Decimal | None
    excellence_met: bool
    baseline_igr_medio: Decimal | None
    reduction_met: bool | None


@dataclass(frozen=True, slots=True)
class GoalAssessment:
    """Which IGR goals an operator met in a quarter and the fine discount that follows."""

    segment: Segment
    excellence_met: bool
    reduction_met: bool | None
    discount_pct: int
    coverages: tuple[CoverageGoals, ...]
    rule_ids: tuple[str, ...]
    reasons: tuple[str, ...]


def _per_coverage(
    name: str,
    value: Decimal | Mapping[Coverage, Decimal | None] | None,
    wanted: tuple[Coverage, ...],
) -> dict[Coverage, Decimal | None]:
    if value is None or isinstance(value, Decimal):
        if len(wanted) > 1 and value is not None:
            raise ValueError(f"{name} must map each coverage (medical, dental) for segment both")
        return dict.fromkeys(wanted, value)
    return {coverage: value.get(coverage) for coverage in wanted}


def igr_goals(
    segment: Segment | str,
    igr_medio: Decimal | Mapping[Coverage, Decimal | None],
    igr_individual: Decimal | Mapping[Coverage, Decimal | None] | None,
    *,
    on: date,
    baseline_igr_medio: Decimal | Mapping[Coverage, Decimal | None] | None = None,
    ruleset: RuleSet | None = None,
) -> GoalAssessment:
    """Assess the Meta de Excelência and Meta de Redução under the rules in force on ``on``.

    For segment ``both`` pass mappings by coverage: every coverage must meet a goal for it
    to be met. The discount is the best goal's (excellence over reduction), not their sum.
    """
    seg = Segment(segment)
    rules = ruleset if ruleset is not None else load_ruleset()
    wanted = _COVERAGES[seg]
    medio = _per_coverage("igr_medio", igr_medio, wanted)
    individual = _per_coverage("igr_individual", igr_individual, wanted)
    baseline = _per_coverage("baseline_igr_medio", baseline_igr_medio, wanted)
    reduction_rule = rules.igr_reduction_rule(on)
    rule_ids: list[str] = []
    reasons: list[str] = []
    results: list[CoverageGoals] = []
    for coverage in wanted:
        value = medio[coverage]
        if value is None:
            raise ValueError(f"igr_medio is missing for coverage {coverage.value!r}")
        rule = rules.igr_excellence_rule(coverage, on)
        rule_ids.append(rule.id)
        excellent = value <= rule.igr_medio_max
        if not excellent:
            reasons.append(f"{coverage.value}: IGR médio {value} > {rule.igr_medio_max}")
        ind = individual[coverage]
        if rule.igr_individual_max is not None:
            if ind is None:
                excellent = False
                reasons.append(f"{coverage.value}: IGR individual not provided")
            elif ind > rule.igr_individual_max:
                excellent = False
                reasons.append(
                    f"{coverage.value}: IGR individual {ind} > {rule.igr_individual_max}"
                )
        reduced: bool | None = None
        base = baseline[coverage]
        if reduction_rule is not None and base is not None:
            target = base * (100 - reduction_rule.min_reduction_pct) / 100
            reduced = value < base and value <= target
            if not reduced:
                reasons.append(f"{coverage.value}: IGR médio {value} not reduced from {base}")
        results.append(
            CoverageGoals(
                coverage=coverage,
                igr_medio=value,
                igr_medio_max=rule.igr_medio_max,
                igr_individual=ind,
                igr_individual_max=rule.igr_individual_max,
                excellence_met=excellent,
                baseline_igr_medio=base,
                reduction_met=reduced,
            )
        )
    excellence = all(r.excellence_met for r in results)
    reduction: bool | None
    if reduction_rule is None or any(r.reduction_met is None for r in results):
        reduction = None
        reasons.append("Meta de Redução not assessed: no rule in force or no baseline IGR")
    else:
        rule_ids.append(reduction_rule.id)
        reduction = all(r.reduction_met for r in results)
    excellence_discount = min(rules.igr_excellence_rule(c, on).discount_pct for c in wanted)
    discount = 0
    if excellence:
        discount = excellence_discount
    elif reduction and reduction_rule is not None:
        discount = reduction_rule.discount_pct
    return GoalAssessment(
        segment=seg,
        excellence_met=excellence,
        reduction_met=reduction,
        discount_pct=discount,
        coverages=tuple(results),
        rule_ids=tuple(rule_ids),
        reasons=tuple(reasons),
    )
