"""IGR contracts (``igr.events``, keyed by ANS registration), version 1.

igr-svc closes each quarter for every operator and publishes its figures exactly as the
regulator computes them (monthly IGR per coverage, the quarterly IGR médio), with the
goals met and the fine discount that follows. A closed quarter never changes: complaints
that arrive late are published as a new revision of the quarter.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rn623_events.contracts.common import AnsRegistry, AwareDatetime, Coverage
from rn623_events.contracts.operators import Segment
from rn623_events.registry import Event, contract

TOPIC = "igr.events"

QUARTER_PATTERN = r"^[0-9]{4}Q[1-4]$"
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"

QuarterlyMethod = Literal["mean_of_monthly", "ratio_of_sums"]
"""How the quarterly IGR médio is formed from the months (DESIGN §2)."""


class MonthFigure(BaseModel):
    """One month of one coverage: NIP complaints, beneficiaries and the monthly IGR."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    month: str = Field(pattern=MONTH_PATTERN, description="The month (YYYY-MM).")
    complaints: int = Field(ge=0, description="NIP complaints received in the month.")
    beneficiaries: int | None = Field(
        ge=0, description="Beneficiaries the IGR divides by; null when no count is known."
    )
    beneficiaries_month: str | None = Field(
        pattern=MONTH_PATTERN,
        description="The month the beneficiary count comes from (the latest known up to "
        "the month, as the regulator publishes).",
    )
    igr: Decimal | None = Field(description="Monthly IGR, half-up to 2 decimals.")


class CoverageFigures(BaseModel):
    """A quarter of one coverage and how it fares against the goals."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    coverage: Coverage = Field(description="medical or dental.")
    months: tuple[MonthFigure, ...] = Field(description="The quarter's three months.")
    igr_medio: Decimal | None = Field(description="Quarterly IGR médio (monthly scale).")
    igr_medio_max: Decimal | None = Field(description="Meta de Excelência reference value.")
    excellence_met: bool | None = Field(description="Whether this coverage met excellence.")
    reduction_met: bool | None = Field(description="Whether it met the reduction goal.")


@contract("igr.computed", version=1, topic=TOPIC)
class IgrComputed(Event):
    """The IGR of an operator for a closed quarter (revision 0), or a later revision."""

    ans_registry: AnsRegistry = Field(description="ANS registration of the operator (the key).")
    quarter: str = Field(pattern=QUARTER_PATTERN, description="The quarter, e.g. 2025Q3.")
    revision: int = Field(
        ge=0, description="0 when the quarter closed; n for the n-th revision after it."
    )
    segment: Segment = Field(description="The operator's segment when computed.")
    method: QuarterlyMethod = Field(description="How the IGR médio was formed.")
    coverages: tuple[CoverageFigures, ...] = Field(
        min_length=1, description="One entry per coverage of the operator's segment."
    )
    excellence_met: bool | None = Field(description="Meta de Excelência (every coverage).")
    reduction_met: bool | None = Field(description="Meta de Redução (every coverage).")
    discount_pct: int = Field(ge=0, le=100, description="Fine discount that would apply.")
    rule_ids: tuple[str, ...] = Field(description="Rulebook rules applied.")
    computed_at: AwareDatetime = Field(description="When the figures were computed.")

    def subject(self) -> str:
        """The operator's ANS registration."""
        return self.ans_registry
