"""Operator size (porte) by number of beneficiaries, and the channel obligations it carries.

Thresholds come from the rule set: small when beneficiaries < 20 000, large when > 100 000,
medium otherwise, so exactly 20 000 and exactly 100 000 are both medium ("20 000 to
100 000" is read as an inclusive range, and "less than" / "more than" as strict).
"""

from __future__ import annotations

from datetime import date

from rn623_rulebook.rules import ChannelObligation, Porte, RuleSet, Segment, load_ruleset


def porte(beneficiaries: int, *, on: date | None = None, ruleset: RuleSet | None = None) -> Porte:
    """Porte for a beneficiary count under the thresholds in force on ``on`` (newest if None)."""
    if isinstance(beneficiaries, bool) or not isinstance(beneficiaries, int) or beneficiaries < 0:
        raise ValueError(f"beneficiaries must be a non-negative integer, got {beneficiaries!r}")
    rule = (ruleset if ruleset is not None else load_ruleset()).porte_rule(on)
    if beneficiaries < rule.small_below:
        return Porte.SMALL
    if beneficiaries > rule.large_above:
        return Porte.LARGE
    return Porte.MEDIUM


def channel_obligations(
    porte: Porte | str, segment: Segment | str, on: date, *, ruleset: RuleSet | None = None
) -> list[ChannelObligation]:
    """Channel obligations in force on ``on`` for an operator of this porte and segment."""
    rules = ruleset if ruleset is not None else load_ruleset()
    return rules.channel_obligations(porte, segment, on)
