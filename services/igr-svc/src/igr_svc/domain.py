"""igr-svc's rules: months and quarters, the figures of a quarter, the goals, and the
projection of the open quarter. No I/O, no framework; exact decimal arithmetic."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from rn623_rulebook import MonthFigures, igr_goals, monthly_igr, quarterly_igr
from rn623_rulebook.igr import QuarterlyMethod
from rn623_rulebook.rules import Coverage, RuleNotFoundError

BRASILIA = ZoneInfo("America/Sao_Paulo")
COVERAGES: dict[str, tuple[str, ...]] = {
    "medical": ("medical",),
    "dental": ("dental",),
    "both": ("medical", "dental"),
}
UNASSIGNED = "unassigned"
# The regulator divides the newest month's complaints by the previous month's count:
# a month without its own count uses the latest one up to this many months before.
BENEFICIARY_LOOKBACK_MONTHS = 2
_QUARTER = re.compile(r"^([0-9]{4})Q([1-4])$")
CENT = Decimal("0.01")
Z95 = Decimal("1.96")  # two-sided 95 % normal quantile


def month_of(instant: datetime) -> date:
    """The month (its first day) an instant falls in, in Brasília time."""
    local = instant.astimezone(BRASILIA)
    return date(local.year, local.month, 1)


def month_text(month: date) -> str:
    """YYYY-MM."""
    return f"{month.year:04d}-{month.month:02d}"


def parse_month(text: str) -> date:
    """The first day of a YYYY-MM month."""
    year, month = text.split("-")
    return date(int(year), int(month), 1)


def add_months(month: date, count: int) -> date:
    """The month ``count`` months after (or before) ``month``."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def quarter_of(month: date) -> str:
    """The quarter of a month, e.g. 2025Q3."""
    return f"{month.year}Q{(month.month - 1) // 3 + 1}"


def parse_quarter(quarter: str) -> tuple[int, int]:
    """(year, quarter number) of "2025Q3"; ValueError otherwise."""
    match = _QUARTER.match(quarter)
    if match is None:
        raise ValueError("quarter must look like 2025Q3")
    return int(match.group(1)), int(match.group(2))


def quarter_months(quarter: str) -> tuple[date, date, date]:
    """The three months of a quarter."""
    year, number = parse_quarter(quarter)
    first = date(year, 3 * number - 2, 1)
    return first, add_months(first, 1), add_months(first, 2)


def quarter_end(quarter: str) -> date:
    """The last day of a quarter."""
    return add_months(quarter_months(quarter)[2], 1) - timedelta(days=1)


def previous_year(quarter: str) -> str:
    """The same quarter one year earlier (the reduction goal's baseline)."""
    year, number = parse_quarter(quarter)
    return f"{year - 1}Q{number}"


def next_quarter(quarter: str) -> str:
    """The quarter after."""
    return quarter_of(add_months(quarter_months(quarter)[2], 1))


def complaint_coverage(given: str | None, segment: str | None) -> str:
    """The coverage a complaint counts under: the event's, else the segment's only one."""
    if given is not None:
        return given
    if segment in ("medical", "dental"):
        return segment
    return UNASSIGNED


def beneficiaries_for(month: date, counts: Mapping[date, int]) -> tuple[int, date] | None:
    """The beneficiary count the month's IGR divides by, and the month it comes from."""
    for back in range(BENEFICIARY_LOOKBACK_MONTHS + 1):
        source = add_months(month, -back)
        if source in counts:
            return counts[source], source
    return None


@dataclass(frozen=True)
class QuarterInput:
    """What a quarter's figures are computed from, for one operator."""

    quarter: str
    segment: str
    complaints: Mapping[tuple[str, date], int]  # (coverage, month) → NIP complaints
    beneficiaries: Mapping[str, Mapping[date, int]]  # coverage → month → count
    individual: Mapping[str, Decimal]  # coverage → IGR individual, when supplied
    baseline: Mapping[str, Decimal | None]  # coverage → last year's IGR médio
    # for the open quarter: the current month; later months have no figures yet
    as_of: date | None = None


def month_figures(data: QuarterInput, coverage: str) -> list[dict[str, Any]]:
    """The quarter's three months of one coverage as published (JSON-ready)."""
    rows = []
    for month in quarter_months(data.quarter):
        complaints = data.complaints.get((coverage, month), 0)
        started = data.as_of is None or month <= data.as_of
        found = beneficiaries_for(month, data.beneficiaries.get(coverage, {})) if started else None
        count, source = found if found is not None else (None, None)
        rows.append(
            {
                "month": month_text(month),
                "complaints": complaints,
                "beneficiaries": count,
                "beneficiaries_month": month_text(source) if source else None,
                "igr": _text(monthly_igr(complaints, count) if count is not None else None),
            }
        )
    return rows


def igr_medio(months: list[dict[str, Any]], method: QuarterlyMethod) -> Decimal | None:
    """The IGR médio of a coverage's months (those with a beneficiary count)."""
    figures = [
        MonthFigures(m["complaints"], m["beneficiaries"])
        for m in months
        if m["beneficiaries"] is not None
    ]
    return quarterly_igr(figures, method) if figures else None


def quarter_figures(data: QuarterInput, method: QuarterlyMethod) -> dict[str, Any]:
    """A quarter's figures per coverage, the goals met and the discount (JSON-ready)."""
    coverages = COVERAGES[data.segment]
    per_coverage: list[dict[str, Any]] = []
    medio: dict[str, Decimal | None] = {}
    for coverage in coverages:
        months = month_figures(data, coverage)
        value = igr_medio(months, method)
        medio[coverage] = value
        per_coverage.append({"coverage": coverage, "months": months, "igr_medio": _text(value)})
    goals = _goals(data, medio)
    for entry in per_coverage:
        entry.update(goals["coverages"].get(entry["coverage"], _NO_GOALS))
    return {
        "quarter": data.quarter,
        "segment": data.segment,
        "method": method,
        "coverages": per_coverage,
        "excellence_met": goals["excellence_met"],
        "reduction_met": goals["reduction_met"],
        "discount_pct": goals["discount_pct"],
        "rule_ids": goals["rule_ids"],
        "reasons": goals["reasons"],
    }


_NO_GOALS = {
    "igr_medio_max": None,
    "igr_individual": None,
    "igr_individual_max": None,
    "excellence_met": None,
    "reduction_met": None,
}


def _goals(data: QuarterInput, medio: Mapping[str, Decimal | None]) -> dict[str, Any]:
    """The goals under the rules in force at the quarter's end; unknown when they cannot
    be assessed (no rule in force then, or a coverage without figures)."""
    empty: dict[str, Any] = {
        "coverages": {},
        "excellence_met": None,
        "reduction_met": None,
        "discount_pct": 0,
        "rule_ids": [],
    }
    missing = [c for c, v in medio.items() if v is None]
    if missing:
        return {**empty, "reasons": [f"{c}: no beneficiary count for the quarter" for c in missing]}
    known = {c: v for c, v in medio.items() if v is not None}
    try:
        assessment = igr_goals(
            data.segment,
            _single_or_map(data.segment, known),
            _single_or_map(data.segment, dict(data.individual)) if data.individual else None,
            on=quarter_end(data.quarter),
            baseline_igr_medio=_baseline(data),
        )
    except RuleNotFoundError:
        return {**empty, "reasons": ["no IGR goal rule in force at the end of the quarter"]}
    return {
        "coverages": {
            c.coverage.value: {
                "igr_medio_max": _text(c.igr_medio_max),
                "igr_individual": _text(c.igr_individual),
                "igr_individual_max": _text(c.igr_individual_max),
                "excellence_met": c.excellence_met,
                "reduction_met": c.reduction_met,
            }
            for c in assessment.coverages
        },
        "excellence_met": assessment.excellence_met,
        "reduction_met": assessment.reduction_met,
        "discount_pct": assessment.discount_pct,
        "rule_ids": list(assessment.rule_ids),
        "reasons": list(assessment.reasons),
    }


def _single_or_map(segment: str, values: Mapping[str, Decimal]) -> Any:
    """A single-coverage segment takes a plain value; ``both`` a mapping by coverage."""
    if segment == "both":
        return {Coverage(c): v for c, v in values.items()}
    return values.get(segment)


def _baseline(data: QuarterInput) -> Any:
    if not data.baseline or any(v is None for v in data.baseline.values()):
        return None
    return _single_or_map(data.segment, {c: v for c, v in data.baseline.items() if v is not None})


def projection(data: QuarterInput, now: datetime) -> dict[str, Any]:
    """Project the open quarter: complaints so far at their run rate over the whole quarter,
    each month's beneficiaries as last known; the interval treats the complaint counts as
    Poisson (variance = count) scaled like the projection, normal approximation."""
    months = quarter_months(data.quarter)
    start = datetime(months[0].year, months[0].month, 1, tzinfo=BRASILIA)
    end = datetime.combine(quarter_end(data.quarter) + timedelta(days=1), datetime.min.time())
    end = end.replace(tzinfo=BRASILIA)
    total = (end - start).total_seconds()
    elapsed = min(max((now - start).total_seconds(), 0.0), total)
    fraction = elapsed / total if total else 1.0
    result: dict[str, Any] = {
        "method": "run_rate_poisson_95",
        "description": "NIP complaints so far scaled to the whole quarter at the same daily "
        "rate, over the latest beneficiary counts; 95 % interval from Poisson-distributed "
        "complaint counts (normal approximation)",
        "elapsed_fraction": _text(Decimal(fraction).quantize(Decimal("0.0001"))),
        "coverages": [],
    }
    for coverage in COVERAGES[data.segment]:
        so_far = sum(data.complaints.get((coverage, m), 0) for m in months)
        counts = data.beneficiaries.get(coverage, {})
        known = [beneficiaries_for(m, counts) for m in months]
        latest = next((k for k in reversed(known) if k is not None), None)
        if latest is None:
            latest = _latest_before(counts, months[0])
        if fraction <= 0 or latest is None:
            result["coverages"].append(
                {"coverage": coverage, "igr_medio": None, "low": None, "high": None}
            )
            continue
        beneficiaries = [k[0] if k is not None else latest[0] for k in known]
        # three months of equal weight: IGR médio ≈ projected quarter complaints / 3 over
        # the mean of the monthly counts (either method agrees on this approximation)
        expected = so_far / fraction
        spread = float(Z95) * math.sqrt(max(so_far, 1)) / fraction
        mean_beneficiaries = sum(beneficiaries) / 3
        result["coverages"].append(
            {
                "coverage": coverage,
                "complaints_so_far": so_far,
                "complaints_expected": round(expected),
                "igr_medio": _igr(expected / 3, mean_beneficiaries),
                "low": _igr(max(expected - spread, 0) / 3, mean_beneficiaries),
                "high": _igr((expected + spread) / 3, mean_beneficiaries),
            }
        )
    return result


def _latest_before(counts: Mapping[date, int], month: date) -> tuple[int, date] | None:
    earlier = [m for m in counts if m < month]
    return (counts[max(earlier)], max(earlier)) if earlier else None


def _igr(monthly_complaints: float, beneficiaries: float) -> str | None:
    if beneficiaries <= 0:
        return None
    value = Decimal(monthly_complaints) * 100_000 / Decimal(beneficiaries)
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _text(value: Decimal | None) -> str | None:
    """A decimal as exact text (JSON keeps it exact), None stays None."""
    return None if value is None else str(value)
