"""IGR: monthly rounding, quarterly methods (and the x3 trap), goals for each segment."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from rn623_rulebook.igr import MonthFigures, igr_goals, monthly_igr, quarterly_igr
from rn623_rulebook.rules import Coverage, RuleNotFoundError, RuleSet, Segment, load_ruleset

pytestmark = pytest.mark.unit

Q3_2025 = date(2025, 9, 30)
D = Decimal


def _with_reduction(**changes: Any) -> RuleSet:
    data = load_ruleset().model_dump()
    data["igr_reduction"][0].update(changes)
    return RuleSet.model_validate(data)


# --- monthly -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("complaints", "beneficiaries", "expected"),
    [
        (63, 45826, "137.48"),  # a published row (Sul América, 2024-05)
        (1, 800_000, "0.13"),  # 0.125 exactly: half-up, not half-even (0.12)
        (3, 800_000, "0.38"),  # 0.375 exactly
        (201, 160_000, "125.63"),  # 125.625 exactly
        (201, 20_000_000, "1.01"),  # 1.005 exactly; binary floats round it to 1.0
        (1, 800_001, "0.12"),  # just below 0.125
        (0, 50_000, "0.00"),
        (7, 7, "100000.00"),
    ],
)
def test_monthly_igr_rounds_half_up_to_2_decimals(
    complaints: int, beneficiaries: int, expected: str
) -> None:
    value = monthly_igr(complaints, beneficiaries)
    assert value == D(expected)
    assert value is not None
    assert value.as_tuple().exponent == -2


def test_float_rounding_would_be_wrong_here() -> None:
    assert round(201 * 100_000 / 20_000_000, 2) == 1.0  # the trap this module avoids
    assert monthly_igr(201, 20_000_000) == D("1.01")


def test_monthly_igr_without_beneficiaries_is_none() -> None:
    assert monthly_igr(0, 0) is None
    assert monthly_igr(5, 0) is None


@pytest.mark.parametrize(
    ("complaints", "beneficiaries"), [(-1, 10), (1, -10), (True, 10), (1.0, 10)]
)
def test_monthly_igr_refuses_bad_counts(complaints: Any, beneficiaries: Any) -> None:
    with pytest.raises(ValueError, match="must be a non-negative integer"):
        monthly_igr(complaints, beneficiaries)


def test_month_figures_validate() -> None:
    with pytest.raises(ValueError, match="beneficiaries must be a non-negative integer"):
        MonthFigures(complaints=1, beneficiaries=-5)


# --- quarterly ---------------------------------------------------------------------


def test_mean_of_monthly_averages_the_published_monthly_values() -> None:
    months = [MonthFigures(1, 100_000), MonthFigures(2, 100_000), MonthFigures(2, 100_000)]
    assert quarterly_igr(months) == D("1.67")  # (1.00 + 2.00 + 2.00) / 3 = 1.666…


def test_mean_of_monthly_rounds_half_up() -> None:
    # (1.00 + 1.01) / 2 = 1.005 -> 1.01 (an open quarter with two months)
    assert quarterly_igr([MonthFigures(1, 100_000), MonthFigures(101, 10_000_000)]) == D("1.01")


def test_mean_uses_the_rounded_monthly_values() -> None:
    # monthly 0.125 (-> 0.13), 0.125 (-> 0.13), 0.12499… (-> 0.12): the mean of the published
    # values is 0.1266… -> 0.13, while the mean of the exact ratios would round to 0.12
    months = [MonthFigures(1, 800_000), MonthFigures(1, 800_000), MonthFigures(1, 800_001)]
    assert quarterly_igr(months) == D("0.13")


def test_ratio_of_sums_stays_on_the_monthly_scale() -> None:
    months = [MonthFigures(10, 100_000), MonthFigures(20, 200_000), MonthFigures(30, 300_000)]
    assert quarterly_igr(months, "ratio_of_sums") == D("10.00")
    assert quarterly_igr(months, "mean_of_monthly") == D("10.00")
    # the x3 trap: the quarter's complaints over an average month's beneficiaries
    average_month = sum(m.beneficiaries for m in months) // 3
    trap = monthly_igr(sum(m.complaints for m in months), average_month)
    assert trap == D("30.00")
    assert quarterly_igr(months, "ratio_of_sums") == trap / 3


def test_methods_differ_when_the_portfolio_changes_size() -> None:
    months = [MonthFigures(1, 1_000), MonthFigures(0, 100_000), MonthFigures(0, 100_000)]
    assert quarterly_igr(months, "mean_of_monthly") == D("33.33")
    assert quarterly_igr(months, "ratio_of_sums") == D("0.50")  # 1 / 201 000 * 100 000


def test_month_without_beneficiaries_is_left_out_of_the_mean() -> None:
    months = [MonthFigures(0, 0), MonthFigures(1, 100_000), MonthFigures(3, 100_000)]
    assert quarterly_igr(months) == D("2.00")
    assert quarterly_igr([MonthFigures(0, 0)] * 3) is None
    assert quarterly_igr([MonthFigures(0, 0)] * 3, "ratio_of_sums") is None


@pytest.mark.parametrize("count", [0, 4])
def test_a_quarter_has_one_to_three_months(count: int) -> None:
    with pytest.raises(ValueError, match="1 to 3 months"):
        quarterly_igr([MonthFigures(1, 10)] * count)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown quarterly IGR method 'median'"):
        quarterly_igr([MonthFigures(1, 10)], "median")  # type: ignore[arg-type]


# --- goals -------------------------------------------------------------------------


def test_medical_excellence_on_the_reference_values() -> None:
    result = igr_goals("medical", D("60.9"), D("30.5"), on=Q3_2025)
    assert result.excellence_met
    assert result.discount_pct == 80
    assert result.rule_ids == ("rn623.igr.excellence.medical",)
    assert result.reduction_met is None  # no baseline given


def test_medical_above_reference_without_baseline_gets_nothing() -> None:
    result = igr_goals(Segment.MEDICAL, D("60.91"), D("10"), on=Q3_2025)
    assert not result.excellence_met
    assert result.discount_pct == 0
    assert "medical: IGR médio 60.91 > 60.9" in result.reasons


def test_medical_individual_above_reference_fails_excellence() -> None:
    result = igr_goals("medical", D("20"), D("30.51"), on=Q3_2025)
    assert not result.excellence_met
    assert "medical: IGR individual 30.51 > 30.5" in result.reasons


def test_missing_individual_figure_fails_excellence() -> None:
    result = igr_goals("medical", D("20"), None, on=Q3_2025)
    assert not result.excellence_met
    assert "medical: IGR individual not provided" in result.reasons


def test_reduction_goal_gives_60_percent() -> None:
    result = igr_goals("medical", D("70"), D("40"), on=Q3_2025, baseline_igr_medio=D("75.2"))
    assert not result.excellence_met
    assert result.reduction_met
    assert result.discount_pct == 60
    assert "rn623.igr.reduction" in result.rule_ids


def test_no_reduction_when_equal_to_the_baseline() -> None:
    result = igr_goals("medical", D("70"), D("40"), on=Q3_2025, baseline_igr_medio=D("70"))
    assert result.reduction_met is False
    assert result.discount_pct == 0


def test_excellence_wins_over_reduction_without_adding_up() -> None:
    result = igr_goals("medical", D("50"), D("20"), on=Q3_2025, baseline_igr_medio=D("90"))
    assert result.excellence_met
    assert result.reduction_met
    assert result.discount_pct == 80


def test_reduction_percentage_is_configurable() -> None:
    ruleset = _with_reduction(min_reduction_pct=D("10"))
    fails = igr_goals(
        "medical", D("91"), D("40"), on=Q3_2025, baseline_igr_medio=D("100"), ruleset=ruleset
    )
    meets = igr_goals(
        "medical", D("90"), D("40"), on=Q3_2025, baseline_igr_medio=D("100"), ruleset=ruleset
    )
    assert (fails.reduction_met, meets.reduction_met) == (False, True)


def test_dental_reference_values() -> None:
    assert igr_goals("dental", D("1.3"), D("0.7"), on=Q3_2025).discount_pct == 80
    assert not igr_goals("dental", D("1.31"), D("0.7"), on=Q3_2025).excellence_met
    assert not igr_goals("dental", D("1.3"), D("0.71"), on=Q3_2025).excellence_met
    assert igr_goals("dental", D("1.0"), D("0.5"), on=Q3_2025).rule_ids == (
        "rn623.igr.excellence.dental",
    )


def test_both_segments_must_meet_both_references() -> None:
    medio = {Coverage.MEDICAL: D("50"), Coverage.DENTAL: D("1.2")}
    individual = {Coverage.MEDICAL: D("20"), Coverage.DENTAL: D("0.6")}
    met = igr_goals("both", medio, individual, on=Q3_2025)
    assert met.excellence_met
    assert met.discount_pct == 80
    assert [c.coverage for c in met.coverages] == [Coverage.MEDICAL, Coverage.DENTAL]
    dental_high = {**medio, Coverage.DENTAL: D("1.4")}
    missed = igr_goals("both", dental_high, individual, on=Q3_2025)
    assert not missed.excellence_met
    assert [c.excellence_met for c in missed.coverages] == [True, False]


def test_both_segments_reduction_needs_every_coverage() -> None:
    medio = {"medical": D("70"), "dental": D("2.0")}
    individual = {"medical": D("40"), "dental": D("1.0")}
    one = igr_goals(
        "both",
        medio,
        individual,
        on=Q3_2025,
        baseline_igr_medio={"medical": D("80"), "dental": D("1.9")},
    )
    assert one.reduction_met is False
    assert one.discount_pct == 0
    two = igr_goals(
        "both",
        medio,
        individual,
        on=Q3_2025,
        baseline_igr_medio={"medical": D("80"), "dental": D("2.5")},
    )
    assert two.reduction_met is True
    assert two.discount_pct == 60


def test_both_segments_need_figures_per_coverage() -> None:
    with pytest.raises(ValueError, match="must map each coverage"):
        igr_goals("both", D("10"), None, on=Q3_2025)
    with pytest.raises(ValueError, match="igr_medio is missing for coverage 'dental'"):
        igr_goals("both", {"medical": D("10")}, None, on=Q3_2025)


def test_no_goal_rules_before_rn623() -> None:
    with pytest.raises(RuleNotFoundError, match="no IGR excellence rule for 'medical'"):
        igr_goals("medical", D("10"), D("5"), on=date(2025, 6, 30))
