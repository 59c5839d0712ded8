"""Protocol contracts (``protocol.events``, keyed by protocol number), all version 1.

These are facts recorded by protocol-svc: a protocol was opened, a demand registered,
answered or sent to re-analysis, an interaction recorded, a complaint registered, records
purged. Every payload carries the protocol number (the Kafka key and CloudEvents
``subject``) and the operator's ANS registration (the tenant). Times are RFC 3339 with
an offset; naive times are refused. Contact data is already normalized (CPF as 11
digits, phones in E.164).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from rn623_events.contracts.common import (
    REANALYSIS_OUTCOMES,
    RULE_ID_PATTERN,
    AnsRegistry,
    AnswerText,
    AwareDatetime,
    Category,
    Channel,
    ComplaintSource,
    ContactId,
    Coverage,
    DemandDescription,
    DemandTypeStr,
    Direction,
    InteractionFields,
    LegalBasis,
    NotificationChannel,
    Outcome,
    ProtocolNumberStr,
    RecordClass,
    ServiceName,
    check_legal_basis,
    cpf_has_valid_check_digits,
)
from rn623_events.contracts.operators import BrazilTimeZone
from rn623_events.registry import Event, contract

TOPIC = "protocol.events"

DeadlineUnit = Literal["business_days", "hours"]
"""Unit of a deadline amount: business days (operator's calendar) or clock hours."""

_RULE_ID = RULE_ID_PATTERN
_E164 = r"^\+[1-9][0-9]{6,14}$"


def _check_due_at(due_at: datetime, info: ValidationInfo) -> datetime:
    """Return ``due_at``; raise if it precedes both ``requested_at`` and ``registered_at``.

    A deadline is counted from the request (or its registration) with a non-negative
    amount, so it cannot precede both. It may precede ``registered_at`` alone: a demand
    registered late, after its deadline, is a legitimate (already breached) fact.
    """
    starts = [info.data.get(name) for name in ("requested_at", "registered_at")]
    known = [start for start in starts if isinstance(start, datetime)]
    if len(known) == len(starts) and due_at < min(known):
        raise ValueError("due_at must not be before requested_at and registered_at")
    return due_at


class ProtocolEvent(Event):
    """Base of every ``protocol.events`` payload: the protocol and its operator."""

    protocol_number: ProtocolNumberStr = Field(description="The protocol (the Kafka key).")
    ans_registry: AnsRegistry = Field(description="ANS registration of the operator (tenant).")

    def subject(self) -> str:
        """The protocol number."""
        return self.protocol_number


class Beneficiary(BaseModel):
    """Who a contact is with, as normalized by protocol-svc (personal data: never logged).

    Every field may be unknown (None): an anonymous caller still gets a protocol.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    card_number: str | None = Field(
        default=None, min_length=1, max_length=40, description="Health-plan card number."
    )
    cpf: str | None = Field(
        default=None,
        pattern=r"^[0-9]{11}$",
        description="CPF: 11 digits, no punctuation, with valid check digits.",
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=200, description="Beneficiary's name."
    )
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="E-mail address for receipts.",
    )
    phone: str | None = Field(default=None, pattern=_E164, description="Phone number (E.164).")
    whatsapp: str | None = Field(
        default=None, pattern=_E164, description="WhatsApp number (E.164)."
    )
    preferred_channels: tuple[NotificationChannel, ...] = Field(
        default=(),
        max_length=3,
        description="Channels the beneficiary prefers for receipts and answers, in order.",
    )

    @field_validator("cpf")
    @classmethod
    def _cpf_check_digits(cls, value: str | None) -> str | None:
        if value is not None and not cpf_has_valid_check_digits(value):
            raise ValueError("cpf check digits do not match (or all digits are equal)")
        return value


@contract("protocol.opened", version=1, topic=TOPIC)
class ProtocolOpened(ProtocolEvent):
    """A protocol number was issued at the start of a contact (RN 623: immediately)."""

    layout_id: str = Field(
        min_length=1, max_length=64, description="Id of the protocol-number layout used."
    )
    channel: Channel = Field(description="Channel of the contact.")
    direction: Direction = Field(description="Who started the contact.")
    opened_at: AwareDatetime = Field(
        description="When the protocol was issued, with the operator's UTC offset."
    )
    timezone: BrazilTimeZone = Field(description="IANA time zone of the operator.")
    contact_id: ContactId | None = Field(
        default=None, description="The contact center's own id of the contact, if given."
    )
    beneficiary: Beneficiary = Field(description="Who the contact is with.")

    @field_validator("timezone")
    @classmethod
    def _opened_in_operator_offset(cls, value: str, info: ValidationInfo) -> str:
        opened_at = info.data.get("opened_at")
        if isinstance(opened_at, datetime):
            expected = opened_at.astimezone(ZoneInfo(value)).utcoffset()
            if opened_at.utcoffset() != expected:
                raise ValueError("opened_at must carry the UTC offset of timezone at that instant")
        return value


@contract("demand.registered", version=1, topic=TOPIC)
class DemandRegistered(ProtocolEvent):
    """A demand was registered on a protocol, with the deadline for its conclusive answer."""

    demand_id: uuid.UUID = Field(description="Id of the demand.")
    demand_type: DemandTypeStr = Field(description="Kind of demand; sets the deadline rule.")
    category: Category | None = Field(
        default=None, description="Category (lower-case slug) narrowing the deadline rule."
    )
    description: DemandDescription | None = Field(
        default=None, description="What the beneficiary asked for."
    )
    requested_at: AwareDatetime = Field(description="When the beneficiary asked.")
    registered_at: AwareDatetime = Field(description="When protocol-svc registered the demand.")
    due_at: AwareDatetime = Field(description="Deadline of the conclusive answer.")
    immediate: bool = Field(description="Whether the answer is due immediately (urgency).")
    deadline_rule_id: str = Field(
        pattern=_RULE_ID, max_length=120, description="Id of the rulebook rule that set due_at."
    )
    deadline_legal_basis: str = Field(
        min_length=1, max_length=1000, description="Legal basis of that rule."
    )
    deadline_unit: DeadlineUnit = Field(description="Unit of deadline_amount.")
    deadline_amount: int = Field(ge=0, description="Deadline in deadline_unit.")
    ruleset_id: str = Field(
        min_length=1, max_length=120, description="Id of the rule set in force on registration."
    )
    reanalysis_of: uuid.UUID | None = Field(
        default=None,
        validate_default=True,
        description="The original demand when this is a re-analysis (demand_type reanalysis).",
    )
    operator_revision: int | None = Field(
        default=None,
        ge=1,
        description="Revision of the operator registration whose calendar set due_at.",
    )

    @field_validator("due_at")
    @classmethod
    def _due_after_request(cls, value: datetime, info: ValidationInfo) -> datetime:
        return _check_due_at(value, info)

    @field_validator("reanalysis_of")
    @classmethod
    def _reanalysis_type(cls, value: uuid.UUID | None, info: ValidationInfo) -> uuid.UUID | None:
        demand_type = info.data.get("demand_type")
        if value is not None and demand_type is not None and demand_type != "reanalysis":
            raise ValueError("reanalysis_of is only allowed when demand_type is reanalysis")
        return value


@contract("demand.answered", version=1, topic=TOPIC)
class DemandAnswered(ProtocolEvent):
    """A demand received its conclusive answer."""

    demand_id: uuid.UUID = Field(description="Id of the demand answered.")
    outcome: Outcome = Field(description="Outcome of the answer.")
    text: AnswerText = Field(description="Text of the conclusive answer.")
    legal_basis: LegalBasis | None = Field(
        default=None,
        validate_default=True,
        description="Contractual or legal basis of the answer; required when outcome is denied.",
    )
    answered_at: AwareDatetime = Field(description="When the answer was given.")
    answered_by: str | None = Field(
        default=None, min_length=1, max_length=120, description="Id of the agent who answered."
    )
    reanalysis_allowed: bool = Field(
        description="Whether the beneficiary may ask the ouvidoria for a re-analysis: true "
        "exactly when outcome is denied or partially_authorized."
    )

    @field_validator("legal_basis")
    @classmethod
    def _legal_basis_for_denials(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_legal_basis(info.data.get("outcome"), value)

    @field_validator("reanalysis_allowed")
    @classmethod
    def _reanalysis_matches_outcome(cls, value: bool, info: ValidationInfo) -> bool:
        outcome = info.data.get("outcome")
        if outcome is not None and value != (outcome in REANALYSIS_OUTCOMES):
            raise ValueError(
                "reanalysis_allowed must be true exactly when outcome is denied or "
                "partially_authorized"
            )
        return value


@contract("demand.reanalysis_requested", version=1, topic=TOPIC)
class DemandReanalysisRequested(ProtocolEvent):
    """The beneficiary asked the ouvidoria to re-analyse a denied or partial answer.

    The re-analysis is a new demand (``reanalysis_demand_id``, type ``reanalysis``) with
    its own deadline; a ``demand.registered`` with ``reanalysis_of`` accompanies it.
    """

    demand_id: uuid.UUID = Field(description="The original demand.")
    reanalysis_demand_id: uuid.UUID = Field(description="The new re-analysis demand.")
    requested_at: AwareDatetime = Field(description="When the beneficiary asked.")
    registered_at: AwareDatetime = Field(description="When protocol-svc registered it.")
    due_at: AwareDatetime = Field(description="Deadline of the re-analysis answer.")
    deadline_rule_id: str = Field(
        pattern=_RULE_ID, max_length=120, description="Id of the rulebook rule that set due_at."
    )
    deadline_legal_basis: str = Field(
        min_length=1, max_length=1000, description="Legal basis of that rule."
    )

    @field_validator("reanalysis_demand_id")
    @classmethod
    def _new_demand(cls, value: uuid.UUID, info: ValidationInfo) -> uuid.UUID:
        if value == info.data.get("demand_id"):
            raise ValueError("reanalysis_demand_id must differ from demand_id")
        return value

    @field_validator("due_at")
    @classmethod
    def _due_after_request(cls, value: datetime, info: ValidationInfo) -> datetime:
        return _check_due_at(value, info)


@contract("interaction.recorded", version=1, topic=TOPIC)
class InteractionRecorded(ProtocolEvent, InteractionFields):
    """An interaction of the protocol was recorded: a transcript, message, note or recording.

    A recording carries ``recording_uri`` (and usually ``duration_seconds``); the other
    kinds carry ``content``.
    """

    interaction_id: uuid.UUID = Field(description="Id of the interaction.")
    occurred_at: AwareDatetime = Field(description="When the interaction happened.")


@contract("complaint.registered", version=1, topic=TOPIC)
class ComplaintRegistered(ProtocolEvent):
    """A complaint (NIP, ouvidoria, SAC, consumidor.gov, Procon) was linked to the protocol.

    Complaint-linked records are kept 5 years; NIP complaints count in the IGR.
    """

    complaint_id: uuid.UUID = Field(description="Id of the complaint.")
    source: ComplaintSource = Field(description="Where the complaint came from.")
    classification: str | None = Field(
        default=None, min_length=1, max_length=200, description="Subject classification."
    )
    external_reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="The source's own reference, e.g. the NIP demand number.",
    )
    received_at: AwareDatetime = Field(description="When the source received the complaint.")
    registered_at: AwareDatetime = Field(description="When protocol-svc registered it.")
    demand_id: uuid.UUID | None = Field(
        default=None, description="The demand the complaint is about, if any."
    )
    coverage: Coverage | None = Field(
        default=None,
        description="Coverage the complaint is about (the IGR counts per coverage); set "
        "from the operator's segment when it has one coverage, null when unknown.",
    )


@contract("records.purged", version=1, topic=TOPIC)
class RecordsPurged(ProtocolEvent):
    """Records of the protocol were purged (or anonymized) at the end of their retention."""

    purge_request_id: uuid.UUID = Field(
        description="Id of the retention-svc purge request this fulfils."
    )
    record_classes: tuple[RecordClass, ...] = Field(
        min_length=1, description="Classes of record purged (distinct)."
    )
    purged_at: AwareDatetime = Field(description="When the records were purged.")
    owner: ServiceName = Field(
        description="Service that owned and purged the records, e.g. protocol-svc.",
    )
    anonymized: bool = Field(
        description="True if records were anonymized (kept for statistics) instead of deleted."
    )

    @field_validator("record_classes")
    @classmethod
    def _distinct_classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("record_classes has repeated classes")
        return value
