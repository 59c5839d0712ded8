"""Rule sets: loading, validation errors, effective dates, category narrowing and overrides."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from rn623_rulebook.rules import (
    DeadlineOverride,
    DeadlineRule,
    DeadlineUnit,
    DemandType,
    OverrideError,
    RuleNotFoundError,
    RuleSet,
    RulesetError,
    available_rulesets,
    load_ruleset,
    parse_ruleset,
)

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
LAST_RN395_DAY = date(2025, 6, 30)
FIRST_RN623_DAY = date(2025, 7, 1)

MINIMAL = """
id: test-set
version: "1"
title: Test rules
published_on: 2025-01-01
deadlines:
  - id: t.assistance
    demand_type: assistance
    unit: business_days
    amount: 5
    legal_basis: "RN 623/2024"
    effective_from: 2025-07-01
"""


def _with_deadline(**fields: object) -> str:
    """MINIMAL plus one more deadline rule with the given fields."""
    data = yaml.safe_load(MINIMAL)
    rule = {
        "id": "t.extra",
        "demand_type": "non_assistance",
        "unit": "business_days",
        "amount": 7,
        "legal_basis": "RN 623/2024",
        "effective_from": date(2025, 7, 1),
    }
    rule.update(fields)
    data["deadlines"].append(rule)
    return yaml.safe_dump(data)


def _amounts(rules: list[DeadlineRule]) -> dict[str, int]:
    return {rule.id: rule.amount for rule in rules}


# --- loading -----------------------------------------------------------------------


def test_packaged_ruleset_loads_and_is_cached() -> None:
    ruleset = load_ruleset()
    assert ruleset.id == "rn623-2025"
    assert "rn623-2025" in available_rulesets()
    assert load_ruleset() is ruleset
    assert load_ruleset("rn623-2025") is ruleset


def test_every_packaged_ruleset_is_valid_and_every_rule_cites_a_norm() -> None:
    for ruleset_id in available_rulesets():
        ruleset = load_ruleset(ruleset_id)
        assert ruleset.id == ruleset_id
        for rule in ruleset.all_rules():
            assert rule.legal_basis.strip()
            assert any(norm in rule.legal_basis for norm in ("RN ", "ANS")), rule.id


def test_unknown_ruleset_id_is_refused_with_the_available_ones() -> None:
    with pytest.raises(RulesetError, match=r"no packaged ruleset 'nope'; available: rn623-2025"):
        load_ruleset("nope")


def test_minimal_ruleset_parses() -> None:
    ruleset = parse_ruleset(MINIMAL)
    assert isinstance(ruleset, RuleSet)
    assert ruleset.deadlines[0].unit is DeadlineUnit.BUSINESS_DAYS


# --- validation errors -------------------------------------------------------------


def test_invalid_yaml_is_reported_with_its_source() -> None:
    with pytest.raises(RulesetError, match=r"ruleset broken\.yaml: not valid YAML"):
        parse_ruleset("id: [unclosed", source="broken.yaml")


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(RulesetError, match="expected a mapping"):
        parse_ruleset("- just\n- a list\n")


def test_bad_field_names_the_rule_and_the_field() -> None:
    text = _with_deadline(amount=-3)
    with pytest.raises(RulesetError) as info:
        parse_ruleset(text, source="x.yaml")
    message = str(info.value)
    assert "ruleset x.yaml is invalid (1 problem(s))" in message
    assert "deadlines.1.amount (rule 't.extra')" in message
    assert "greater than or equal to 0" in message


def test_unknown_demand_type_and_unit_are_refused() -> None:
    with pytest.raises(RulesetError) as info:
        parse_ruleset(_with_deadline(demand_type="gossip", unit="weeks"))
    message = str(info.value)
    assert "2 problem(s)" in message
    assert "deadlines.1.demand_type (rule 't.extra')" in message
    assert "deadlines.1.unit (rule 't.extra')" in message


def test_unknown_field_is_refused() -> None:
    with pytest.raises(RulesetError, match=r"deadlines\.1\.days .*Extra inputs are not permitted"):
        parse_ruleset(_with_deadline(days=3))


def test_missing_legal_basis_is_refused() -> None:
    data = yaml.safe_load(MINIMAL)
    del data["deadlines"][0]["legal_basis"]
    with pytest.raises(
        RulesetError, match=r"deadlines\.0\.legal_basis \(rule 't\.assistance'\): Field required"
    ):
        parse_ruleset(yaml.safe_dump(data))


def test_effective_to_before_effective_from_is_refused() -> None:
    text = _with_deadline(effective_to=date(2025, 1, 1))
    with pytest.raises(RulesetError, match=r"'t.extra': effective_to 2025-01-01 is before"):
        parse_ruleset(text)


def test_duplicate_rule_ids_are_refused() -> None:
    with pytest.raises(RulesetError, match=r"duplicate rule id 't\.assistance'"):
        parse_ruleset(_with_deadline(id="t.assistance"))


def test_overlapping_rules_for_the_same_key_are_refused() -> None:
    text = _with_deadline(id="t.assistance.bis", demand_type="assistance", amount=4)
    with pytest.raises(RulesetError, match=r"'t.assistance' and 't.assistance.bis' overlap"):
        parse_ruleset(text)


def test_successive_rules_for_the_same_key_are_accepted() -> None:
    data = yaml.safe_load(MINIMAL)
    data["deadlines"][0]["effective_to"] = date(2026, 12, 31)
    data["deadlines"].append(
        {
            **data["deadlines"][0],
            "id": "t.assistance.2027",
            "amount": 4,
            "effective_from": date(2027, 1, 1),
            "effective_to": None,
        }
    )
    ruleset = parse_ruleset(yaml.safe_dump(data))
    assert ruleset.deadline_rules("assistance", None, date(2026, 12, 31))[0].amount == 5
    assert ruleset.deadline_rules("assistance", None, date(2027, 1, 1))[0].amount == 4


def test_immediate_deadline_must_be_in_hours() -> None:
    with pytest.raises(RulesetError, match="an immediate deadline must be in hours"):
        parse_ruleset(_with_deadline(immediate=True))


def test_business_day_channel_needs_hours() -> None:
    data = yaml.safe_load(MINIMAL)
    data["channels"] = [
        {
            "id": "t.phone",
            "channel": "telephone",
            "portes": ["small"],
            "segments": ["medical"],
            "availability": "business_days",
            "legal_basis": "RN 623/2024",
            "effective_from": date(2025, 7, 1),
        }
    ]
    with pytest.raises(RulesetError, match="needs min_hours_per_business_day"):
        parse_ruleset(yaml.safe_dump(data))


# --- effective dates ---------------------------------------------------------------


def test_demand_on_2025_06_30_is_judged_by_rn395() -> None:
    rules = load_ruleset().deadline_rules(DemandType.HIGH_COMPLEXITY, None, LAST_RN395_DAY)
    assert _amounts(rules) == {"rn395.deadline.high_complexity": 21}
    assert rules[0].legal_basis.startswith("RN 395/2016")


def test_demand_on_2025_07_01_is_judged_by_rn623() -> None:
    rules = load_ruleset().deadline_rules(DemandType.HIGH_COMPLEXITY, None, FIRST_RN623_DAY)
    assert _amounts(rules) == {"rn623.deadline.high_complexity": 10}
    assert rules[0].legal_basis.startswith("RN 623/2024")


@pytest.mark.parametrize(
    ("demand_type", "unit", "amount"),
    [
        ("urgent_emergency", DeadlineUnit.HOURS, 1),
        ("assistance", DeadlineUnit.BUSINESS_DAYS, 5),
        ("high_complexity", DeadlineUnit.BUSINESS_DAYS, 10),
        ("elective_hospitalization", DeadlineUnit.BUSINESS_DAYS, 10),
        ("non_assistance", DeadlineUnit.BUSINESS_DAYS, 7),
        ("reanalysis", DeadlineUnit.BUSINESS_DAYS, 7),
        ("records_access", DeadlineUnit.HOURS, 72),
    ],
)
def test_rn623_defaults(demand_type: str, unit: DeadlineUnit, amount: int) -> None:
    rules = load_ruleset().deadline_rules(demand_type, None, date(2026, 3, 2))
    assert len(rules) == 1
    assert (rules[0].unit, rules[0].amount) == (unit, amount)
    assert rules[0].immediate is (demand_type == "urgent_emergency")


def test_non_assistance_had_no_regulatory_deadline_before_rn623() -> None:
    assert load_ruleset().deadline_rules("non_assistance", None, LAST_RN395_DAY) == []


def test_unknown_demand_type_is_refused() -> None:
    with pytest.raises(ValueError, match="'gossip' is not a valid DemandType"):
        load_ruleset().deadline_rules("gossip", None, FIRST_RN623_DAY)


def test_rules_in_force_switch_on_the_boundary() -> None:
    ruleset = load_ruleset()
    before = {rule.id for rule in ruleset.rules_in_force(LAST_RN395_DAY)}
    after = {rule.id for rule in ruleset.rules_in_force(FIRST_RN623_DAY)}
    assert "rn395.deadline.assistance" in before - after
    assert "rn623.deadline.assistance" in after - before
    assert "ans.porte" in before & after


# --- category narrowing ------------------------------------------------------------


def test_category_rule_narrows_only_its_category() -> None:
    ruleset = load_ruleset()
    lab = ruleset.deadline_rules("assistance", "outpatient_clinical_lab", FIRST_RN623_DAY)
    assert _amounts(lab) == {
        "rn623.deadline.assistance": 5,
        "rn566.deadline.assistance.outpatient_clinical_lab": 3,
    }
    assert min(rule.amount for rule in lab) == 3
    other = ruleset.deadline_rules("assistance", "consultation", FIRST_RN623_DAY)
    assert _amounts(other) == {"rn623.deadline.assistance": 5}
    assert _amounts(ruleset.deadline_rules("assistance", None, FIRST_RN623_DAY)) == {
        "rn623.deadline.assistance": 5
    }


def test_category_rule_is_not_applied_to_another_demand_type() -> None:
    rules = load_ruleset().deadline_rules(
        "non_assistance", "outpatient_clinical_lab", date(2026, 1, 5)
    )
    assert _amounts(rules) == {"rn623.deadline.non_assistance": 7}


def test_category_mechanism_with_an_example_rule() -> None:
    """Example only (not a regulatory value): a category rule shorter than the type-wide one."""
    ruleset = parse_ruleset(
        _with_deadline(id="t.example.category", demand_type="assistance", category="x", amount=2)
    )
    rules = ruleset.deadline_rules("assistance", "x", date(2025, 8, 1))
    assert [rule.id for rule in rules] == ["t.assistance", "t.example.category"]


# --- operator overrides ------------------------------------------------------------


def test_stricter_override_is_added_and_wins_the_minimum() -> None:
    override = DeadlineOverride(
        rule_id="rn623.deadline.non_assistance", unit="business_days", amount=3, reason="SLA"
    )
    rules = load_ruleset().deadline_rules("non_assistance", None, FIRST_RN623_DAY, [override])
    assert _amounts(rules) == {
        "rn623.deadline.non_assistance": 7,
        "override:rn623.deadline.non_assistance": 3,
    }
    derived = rules[1]
    assert derived.legal_basis.startswith("Operator override of rn623.deadline.non_assistance")
    assert derived.note == "stricter operator deadline: SLA"
    assert derived.demand_type is DemandType.NON_ASSISTANCE


def test_equal_override_is_accepted() -> None:
    override = DeadlineOverride(rule_id="rn623.deadline.assistance", unit="business_days", amount=5)
    assert load_ruleset().check_override(override).id == "rn623.deadline.assistance"


def test_urgent_tolerance_can_be_tightened_to_zero_hours() -> None:
    override = DeadlineOverride(rule_id="rn623.deadline.urgent_emergency", unit="hours", amount=0)
    rules = load_ruleset().deadline_rules("urgent_emergency", None, FIRST_RN623_DAY, [override])
    assert min(rule.amount for rule in rules) == 0
    assert all(rule.immediate for rule in rules)


def test_longer_override_is_refused_naming_the_rule() -> None:
    override = DeadlineOverride(rule_id="rn623.deadline.assistance", unit="business_days", amount=6)
    with pytest.raises(OverrideError) as info:
        load_ruleset().deadline_rules("assistance", None, FIRST_RN623_DAY, [override])
    message = str(info.value)
    assert "rn623.deadline.assistance" in message
    assert "RN 623/2024" in message
    assert "may only shorten" in message


def test_override_in_another_unit_is_refused() -> None:
    override = DeadlineOverride(
        rule_id="rn623.deadline.records_access", unit="business_days", amount=1
    )
    with pytest.raises(
        OverrideError, match=r"'rn623.deadline.records_access'.*must use the rule's unit"
    ):
        load_ruleset().check_override(override)


def test_override_of_an_unknown_rule_is_refused() -> None:
    override = DeadlineOverride(rule_id="rn999.deadline.x", unit="hours", amount=1)
    with pytest.raises(OverrideError, match=r"'rn999\.deadline\.x', which is not a deadline rule"):
        load_ruleset().deadline_rules("assistance", None, FIRST_RN623_DAY, [override])


def test_override_applies_only_with_its_rule_and_its_dates() -> None:
    ruleset = load_ruleset()
    override = DeadlineOverride(
        rule_id="rn623.deadline.assistance",
        unit="business_days",
        amount=2,
        effective_from=date(2025, 9, 1),
    )
    assert len(ruleset.deadline_rules("assistance", None, date(2025, 8, 29), [override])) == 1
    on_day = ruleset.deadline_rules("assistance", None, date(2025, 9, 1), [override])
    assert _amounts(on_day)["override:rn623.deadline.assistance"] == 2
    assert on_day[1].effective_from == date(2025, 9, 1)
    # an RN 623 override does not apply to a demand judged by RN 395
    assert len(ruleset.deadline_rules("assistance", None, LAST_RN395_DAY, [override])) == 1
    # nor to another demand type
    assert len(ruleset.deadline_rules("non_assistance", None, date(2025, 9, 1), [override])) == 1


def test_override_amount_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        DeadlineOverride(rule_id="rn623.deadline.assistance", unit="business_days", amount=-1)


# --- other queries -----------------------------------------------------------------


def test_rule_lookup_by_id() -> None:
    ruleset = load_ruleset()
    assert ruleset.rule("rn623.deadline.assistance").effective_from == FIRST_RN623_DAY
    with pytest.raises(KeyError, match="no rule 'nope'"):
        ruleset.rule("nope")


def test_missing_retention_rule_raises_rule_not_found() -> None:
    with pytest.raises(RuleNotFoundError, match="no retention rule for 'recording'"):
        parse_ruleset(MINIMAL).retention_rule("recording", FIRST_RN623_DAY)


def test_docs_list_every_packaged_rule() -> None:
    docs = REPO_ROOT / "docs" / "rules.md"
    text = docs.read_text(encoding="utf-8")
    missing = [
        rule.id
        for ruleset_id in available_rulesets()
        for rule in load_ruleset(ruleset_id).all_rules()
        if f"`{rule.id}`" not in text
    ]
    assert not missing, f"docs/rules.md does not describe: {missing}"
