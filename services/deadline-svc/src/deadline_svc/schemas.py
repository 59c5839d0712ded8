"""HTTP response bodies of deadline-svc (v1)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from rn623_rulebook.rules import (
    ChannelObligation,
    DeadlineRule,
    IgrExcellenceRule,
    IgrReductionRule,
    PorteRule,
    RetentionRule,
)

ANS_PATTERN = r"^[0-9]{6}$"
PROTOCOL_PATTERN = r"^[0-9]{20,30}$"
IBGE_PATTERN = r"^[0-9]{7}$"

DeadlineStatus = Literal["open", "met", "met_late", "breached"]


class DeadlineOut(BaseModel):
    """A tracked deadline; times are in the operator's time zone (UTC when it is unknown)."""

    id: uuid.UUID
    protocol_number: str
    operator: str = Field(description="ANS registration of the operator (6 digits).")
    demand_id: uuid.UUID | None
    access_request_id: uuid.UUID | None = Field(
        default=None, description="The records-access request (kind records_access)."
    )
    kind: str = Field(description="What the deadline is for: demand, reanalysis, records_access.")
    demand_type: str | None
    category: str | None
    status: str = Field(description="open, met, met_late or breached.")
    immediate: bool = Field(description="An urgency: answered immediately (listed first).")
    started_at: dt.datetime = Field(description="When the count started (the request).")
    due_at: dt.datetime = Field(description="The due instant.")
    rule_id: str
    legal_basis: str
    ruleset_id: str
    warned: list[str] = Field(description="Warning checkpoints already emitted.")
    breached_at: dt.datetime | None
    answered_at: dt.datetime | None
    elapsed_business_days: int | None
    elapsed_seconds: float | None
    recomputed_at: dt.datetime | None
    business_days_left: int | None = Field(
        description=(
            "Business days after today until the due day (0 on the due day and once "
            "breached); null when the deadline is closed or the operator's calendar is unknown."
        )
    )


class DeadlinePage(BaseModel):
    """A page of deadlines; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[DeadlineOut]
    next_cursor: str | None


class CalendarUsed(BaseModel):
    """The business-day calendar a computation used."""

    operator: str | None = Field(description="The operator whose calendar it is, if any.")
    timezone: str
    uf: str | None
    municipality_ibge: str | None
    has_municipal_data: bool = Field(
        description="Whether municipal holidays were known for the municipality."
    )


class HolidayOut(BaseModel):
    """A holiday (Portuguese name)."""

    date: dt.date
    name: str


class BusinessDaysOut(BaseModel):
    """Answer of the business-day calculator."""

    start: dt.date
    days: int
    result: dt.date = Field(description="The n-th business day after start (before it if < 0).")
    due_at: dt.datetime | None = Field(
        description=(
            "For days >= 0: the deadline of a request made on start under the RN 623 counting "
            "convention (end of the n-th business day, calendar's time zone)."
        )
    )
    calendar: CalendarUsed
    holidays_skipped: list[HolidayOut] = Field(
        description="Holidays on weekdays between start and result that were not counted."
    )


RuleStatus = Literal["in_force", "expired", "upcoming"]


class _RuleOut(BaseModel):
    status: RuleStatus = Field(
        description="On the requested day: in force, no longer in force, or not yet in force."
    )


class DeadlineRuleOut(DeadlineRule, _RuleOut):
    """A response-deadline rule."""

    kind: Literal["deadline"] = "deadline"


class RetentionRuleOut(RetentionRule, _RuleOut):
    """A record-retention rule."""

    kind: Literal["retention"] = "retention"


class ChannelRuleOut(ChannelObligation, _RuleOut):
    """A channel-availability obligation."""

    kind: Literal["channel"] = "channel"


class PorteRuleOut(PorteRule, _RuleOut):
    """The operator-size (porte) thresholds."""

    kind: Literal["porte"] = "porte"


class IgrExcellenceRuleOut(IgrExcellenceRule, _RuleOut):
    """An IGR Meta de Excelência."""

    kind: Literal["igr_excellence"] = "igr_excellence"


class IgrReductionRuleOut(IgrReductionRule, _RuleOut):
    """The IGR Meta de Redução."""

    kind: Literal["igr_reduction"] = "igr_reduction"


RuleOut = Annotated[
    DeadlineRuleOut
    | RetentionRuleOut
    | ChannelRuleOut
    | PorteRuleOut
    | IgrExcellenceRuleOut
    | IgrReductionRuleOut,
    Field(discriminator="kind"),
]


class RulesOut(BaseModel):
    """The rulebook: the rule set and its rules (in force on ``on`` unless ``all``)."""

    ruleset_id: str
    version: str
    title: str
    published_on: dt.date
    on: dt.date = Field(description="The day the rules are judged in force on.")
    rules: list[RuleOut]


class RecomputeOut(BaseModel):
    """How many open deadlines of the operator moved."""

    operator: str
    recomputed: int
