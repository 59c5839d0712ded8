"""HTTP request and response bodies of igr-svc (v1).

IGR values (monthly IGR, IGR médio, reference values, IGR individual) are exact decimals
and travel as JSON strings such as ``"137.48"``, never as binary floating point.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ANS_PATTERN = r"^[0-9]{6}$"
# Years 2000-2099: anything else is a typo (the regulator's data starts in 2015).
QUARTER_PATTERN = r"^20[0-9]{2}Q[1-4]$"
MONTH_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"

CoverageName = Literal["medical", "dental"]
QuarterStatus = Literal["open", "closed"]
ExportFormat = Literal["csv", "json"]

DecimalText = Annotated[
    str | None, Field(description='Exact decimal as text (e.g. "137.48"); null if unknown.')
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- beneficiaries -------------------------------------------------------------------------


class BeneficiariesIn(_In):
    """An operator's beneficiaries in a month, per coverage (give at least one)."""

    medical: int | None = Field(default=None, ge=0, le=1_000_000_000)
    dental: int | None = Field(default=None, ge=0, le=1_000_000_000)

    @model_validator(mode="after")
    def _one_of(self) -> BeneficiariesIn:
        if self.medical is None and self.dental is None:
            raise ValueError("give medical or dental")
        return self


class BeneficiariesOut(BaseModel):
    """The counts stored for an operator's month (null: no count for that coverage)."""

    operator: str = Field(description="ANS registration of the operator (6 digits).")
    month: str = Field(description="The month (YYYY-MM).")
    medical: int | None
    dental: int | None


class BeneficiaryCountOut(BaseModel):
    """One stored count: an operator's coverage in a month."""

    month: str = Field(description="The month (YYYY-MM).")
    coverage: CoverageName
    count: int
    source: str = Field(description="api or import (the regulator's open data).")
    updated_at: dt.datetime


class BeneficiaryListOut(BaseModel):
    """An operator's beneficiary counts from ``from`` to ``to``, by month and coverage."""

    operator: str
    from_month: str = Field(serialization_alias="from")
    to_month: str = Field(serialization_alias="to")
    items: list[BeneficiaryCountOut]


class ImportOut(BaseModel):
    """What an open-data import stored."""

    rows: int = Field(description="Data rows read.")
    counts: int = Field(description="Distinct (operator, coverage, month) counts stored.")
    operators: int = Field(description="Operators in the file.")
    months: int = Field(description="Distinct beneficiary months in the file.")


# ---- IGR individual ------------------------------------------------------------------------

IndividualValue = Annotated[Decimal | None, Field(ge=0, max_digits=12, decimal_places=2)]


class IndividualIn(_In):
    """The operator's IGR individual of a quarter per coverage, as the ANS technical sheet
    defines it (decimals ≥ 0 with at most 2 places, preferably as strings; give at least
    one)."""

    medical: IndividualValue = None
    dental: IndividualValue = None

    @model_validator(mode="after")
    def _one_of(self) -> IndividualIn:
        if self.medical is None and self.dental is None:
            raise ValueError("give medical or dental")
        return self


class IndividualOut(BaseModel):
    """The IGR individual stored for an operator's quarter."""

    operator: str
    quarter: str
    medical: DecimalText
    dental: DecimalText


# ---- figures -------------------------------------------------------------------------------


class MonthOut(BaseModel):
    """One month of one coverage: NIP complaints, beneficiaries and the monthly IGR."""

    month: str = Field(description="The month (YYYY-MM).")
    complaints: int
    beneficiaries: int | None = Field(description="The count the IGR divides by.")
    beneficiaries_month: str | None = Field(
        description="The month that count comes from (the latest known up to the month)."
    )
    igr: DecimalText


class CoverageOut(BaseModel):
    """A quarter of one coverage and how it fares against the goals."""

    coverage: CoverageName
    months: list[MonthOut]
    complaints: int = Field(description="NIP complaints in the quarter.")
    beneficiaries_average: DecimalText = Field(
        description="Mean of the months' beneficiary counts (2 decimals); null without any."
    )
    igr_medio: DecimalText
    igr_medio_max: DecimalText = Field(description="Meta de Excelência reference value.")
    igr_individual: DecimalText = Field(
        default=None, description="The IGR individual supplied for the quarter, if any."
    )
    excellence_met: bool | None
    reduction_met: bool | None


class FiguresOut(BaseModel):
    """A quarter's figures per coverage, the goals met and the fine discount."""

    segment: str
    method: str = Field(description="How the IGR médio is formed.")
    coverages: list[CoverageOut]
    excellence_met: bool | None = Field(description="Meta de Excelência (every coverage).")
    reduction_met: bool | None = Field(description="Meta de Redução (every coverage).")
    discount_pct: int = Field(description="Fine discount that would apply (%).")
    rule_ids: list[str]
    reasons: list[str] = Field(description="Why a goal is not met or not assessed.")


class ProjectionCoverageOut(BaseModel):
    """The projected IGR médio of one coverage, with its 95 % interval."""

    coverage: CoverageName
    complaints_so_far: int | None = None
    complaints_expected: int | None = None
    igr_medio: DecimalText
    low: DecimalText
    high: DecimalText


class ProjectionOut(BaseModel):
    """Where the open quarter is heading at the current complaint rate."""

    method: str
    description: str
    elapsed_fraction: DecimalText
    coverages: list[ProjectionCoverageOut]


class IgrOut(BaseModel):
    """An operator's IGR in a quarter: frozen figures once closed, live ones while open."""

    operator: str = Field(description="ANS registration of the operator (6 digits).")
    name: str
    quarter: str
    status: QuarterStatus
    figures: FiguresOut | None = Field(
        description="Open: live figures. Closed: the figures frozen at closing (revision 0); "
        "null when the operator had none then."
    )
    computed_at: dt.datetime = Field(description="When ``figures`` were computed.")
    revision: int | None = Field(description="Closed: the latest revision (0 = as closed).")
    revised_figures: FiguresOut | None = Field(
        description="Closed: the latest revision's figures when it is above 0."
    )
    revised_at: dt.datetime | None
    late_complaints: int | None = Field(
        description="Closed: complaints counted into the quarter after it closed."
    )
    closed_at: dt.datetime | None
    projection: ProjectionOut | None = Field(
        description="Only for the quarter in progress: where it is heading."
    )


class HistoryCoverageOut(BaseModel):
    """One coverage of a quarter in an operator's history."""

    coverage: CoverageName
    igr_medio: DecimalText
    igr_medio_max: DecimalText
    excellence_met: bool | None
    reduction_met: bool | None


class HistoryItemOut(BaseModel):
    """One quarter of an operator's history (closed: latest revision; open: live)."""

    quarter: str
    status: QuarterStatus
    revision: int | None = Field(description="Closed: the revision shown.")
    coverages: list[HistoryCoverageOut] = Field(
        description="Empty when a closed quarter has no figures for the operator."
    )
    excellence_met: bool | None
    reduction_met: bool | None
    discount_pct: int | None


class HistoryOut(BaseModel):
    """An operator's IGR quarter by quarter, oldest first."""

    operator: str
    name: str
    items: list[HistoryItemOut]


class RankingItemOut(BaseModel):
    """One operator in the ranking of a coverage."""

    position: int | None = Field(
        description="1 + operators with a lower IGR médio (ties share it); null without one."
    )
    operator: str
    name: str
    segment: str
    igr_medio: DecimalText
    igr_medio_max: DecimalText
    complaints: int = Field(description="NIP complaints of the coverage in the quarter.")
    excellence_met: bool | None
    reduction_met: bool | None


class RankingOut(BaseModel):
    """Operators by IGR médio of a coverage, lowest first (without one: last)."""

    quarter: str
    status: QuarterStatus
    coverage: CoverageName
    total: int = Field(description="Operators ranked in all.")
    items: list[RankingItemOut]
    next_cursor: str | None


class ExportRowOut(BaseModel):
    """One monthly row of the regulator's layout (snake_case)."""

    registro_ans: str
    razao_social: str
    cobertura: str = Field(description="Assistência médica or Exclusivamente odontológica.")
    igr: str = Field(description="Monthly IGR, exact decimal text.")
    qtd_reclamacoes: int
    qtd_beneficiarios: int
    competencia: str = Field(description="The month (YYYYMM).")
    competencia_beneficiario: str = Field(description="The beneficiary count's month (YYYYMM).")


# ---- indicators ----------------------------------------------------------------------------


class DeadlineIndicatorsOut(BaseModel):
    """Deadlines of one kind in the quarter."""

    kind: str = Field(description="demand, reanalysis or records_access.")
    scheduled: int
    met_on_time: int
    met_late: int
    breached: int
    on_time_share: float | None = Field(
        description="met_on_time / (met_on_time + met_late + breached), 4 decimals."
    )
    average_hours: float | None = Field(description="Mean clock hours to answer.")
    average_business_days: float | None = Field(description="Mean business days to answer.")


class ReanalysisIndicatorsOut(BaseModel):
    """Re-analyses by the ouvidoria in the quarter."""

    requested: int
    rate: float | None = Field(
        description="Requests / (denied + partially authorized answers), 4 decimals."
    )
    outcomes: dict[str, int]


class ComplaintIndicatorsOut(BaseModel):
    """Complaints of the quarter (every source, not only NIP)."""

    by_source: dict[str, int]
    by_classification: dict[str, int]


class IndicatorsOut(BaseModel):
    """The ouvidoria's indicators of an operator in a quarter."""

    operator: str
    quarter: str
    deadlines: list[DeadlineIndicatorsOut]
    answers: dict[str, int] = Field(description="Answers (not re-analyses) by outcome.")
    reanalysis: ReanalysisIndicatorsOut
    complaints: ComplaintIndicatorsOut


class CloseOut(BaseModel):
    """A quarter closed for every operator."""

    quarter: str
    operators: int = Field(description="Operators whose figures were frozen.")
