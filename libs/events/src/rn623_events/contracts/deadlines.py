"""Deadline contracts (``deadline.events``, keyed by protocol number), all version 1.

deadline-svc tracks every deadline a protocol owes: the conclusive answer of each demand
(re-analyses included) and, later, each records-access request. A deadline is scheduled
once, may be recomputed while open (the operator's calendar or the rule set changed),
warns at checkpoints, and ends met (on time or late) or breached at its due instant (a
breached deadline is still met late when the answer comes).
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from rn623_events.contracts.common import (
    AnsRegistry,
    AwareDatetime,
    Category,
    DemandTypeStr,
    ProtocolNumberStr,
    RuleId,
)
from rn623_events.registry import Event, contract

TOPIC = "deadline.events"

DeadlineKind = Literal["demand", "reanalysis", "records_access"]
"""What a deadline is for: a demand's answer, a re-analysis, or a copy of the records."""

Checkpoint = Literal["one_business_day_left", "elapsed_80_percent"]
"""A warning point before the due instant (configurable set; these are the defaults)."""

RecomputeReason = Literal["calendar_changed", "ruleset_changed"]
"""Why an open deadline was recomputed."""


class DeadlineEvent(Event):
    """Base of every ``deadline.events`` payload."""

    deadline_id: uuid.UUID = Field(description="Id of the deadline.")
    protocol_number: ProtocolNumberStr = Field(description="The protocol (the Kafka key).")
    ans_registry: AnsRegistry = Field(description="ANS registration of the operator (tenant).")
    demand_id: uuid.UUID | None = Field(
        default=None, description="The demand whose answer is due (none for records access)."
    )
    access_request_id: uuid.UUID | None = Field(
        default=None, description="The records-access request (kind records_access)."
    )
    kind: DeadlineKind = Field(description="What the deadline is for.")
    due_at: AwareDatetime = Field(description="The due instant (after any recomputation).")

    def subject(self) -> str:
        """The protocol number."""
        return self.protocol_number


@contract("deadline.scheduled", version=1, topic=TOPIC)
class DeadlineScheduled(DeadlineEvent):
    """A deadline started: the rule, its legal basis and the due instant."""

    demand_type: DemandTypeStr | None = Field(
        default=None, description="Kind of demand (none for records access)."
    )
    category: Category | None = Field(default=None, description="Category of the demand.")
    started_at: AwareDatetime = Field(description="When the count started (the request).")
    immediate: bool = Field(
        description="Urgency/emergency: due at once, tracked with the rulebook's tolerance "
        "and surfaced first."
    )
    rule_id: RuleId = Field(description="Rulebook rule applied.")
    legal_basis: str = Field(min_length=1, max_length=1000, description="The rule's basis.")
    ruleset_id: str = Field(min_length=1, max_length=120, description="Rule set in force.")


@contract("deadline.warning", version=1, topic=TOPIC)
class DeadlineWarning(DeadlineEvent):
    """An open deadline passed a warning checkpoint (each checkpoint warns once)."""

    checkpoint: Checkpoint = Field(description="The checkpoint passed.")
    warned_at: AwareDatetime = Field(description="When the checkpoint was passed.")
    business_days_left: int = Field(
        ge=0, description="Business days left until the due day (0: due today)."
    )


@contract("deadline.breached", version=1, topic=TOPIC)
class DeadlineBreached(DeadlineEvent):
    """The due instant passed with no conclusive answer."""

    breached_at: AwareDatetime = Field(description="When the breach was recorded.")


@contract("deadline.met", version=1, topic=TOPIC)
class DeadlineMet(DeadlineEvent):
    """The conclusive answer came: on time, or late (after the due instant)."""

    answered_at: AwareDatetime = Field(description="When the answer was given.")
    late: bool = Field(description="True if answered after due_at.")
    elapsed_business_days: int = Field(
        ge=0, description="Business days from the start of the count to the answer."
    )
    elapsed_seconds: float = Field(ge=0, description="Clock time from the start to the answer.")


@contract("deadline.recomputed", version=1, topic=TOPIC)
class DeadlineRecomputed(DeadlineEvent):
    """An open deadline's due instant changed (``due_at`` is the new one)."""

    previous_due_at: AwareDatetime = Field(description="The due instant before the change.")
    reason: RecomputeReason = Field(description="What changed.")
    recomputed_at: AwareDatetime = Field(description="When it was recomputed.")
