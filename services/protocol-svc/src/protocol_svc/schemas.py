"""HTTP request and response bodies of protocol-svc (v1)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from rn623_events.contracts.common import (
    AnswerText,
    Category,
    Channel,
    ComplaintSource,
    Coverage,
    DemandDescription,
    Direction,
    InteractionFields,
    LegalBasis,
    NotificationChannel,
    Outcome,
)
from rn623_events.contracts.common import DemandTypeStr as DemandType
from rn623_events.contracts.operators import (
    UF,
    UF_IBGE_CODES,
    BrazilTimeZone,
    ExtraHoliday,
    Modality,
    Segment,
)
from rn623_rulebook.contact_data import normalize_cpf, normalize_email, normalize_phone
from rn623_rulebook.protocol_numbers import LAYOUTS

ANS_PATTERN = r"^[0-9]{6}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OperatorIn(_In):
    """An operator's registration (PUT /v1/operators/{ans_registry})."""

    name: str = Field(min_length=1, max_length=200)
    segment: Segment
    modality: Modality
    beneficiaries: int = Field(ge=0)
    uf: UF
    municipality_ibge: str = Field(pattern=r"^[0-9]{7}$")
    timezone: BrazilTimeZone
    protocol_layout: str = "ans-default-20"
    extra_holidays: tuple[ExtraHoliday, ...] = ()

    @field_validator("protocol_layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        if value not in LAYOUTS:
            raise ValueError(f"unknown protocol layout; known: {', '.join(sorted(LAYOUTS))}")
        return value

    @model_validator(mode="after")
    def _municipality_in_uf(self) -> OperatorIn:
        if not self.municipality_ibge.startswith(UF_IBGE_CODES[self.uf]):
            raise ValueError("municipality_ibge is not a municipality of uf")
        return self


class OperatorOut(OperatorIn):
    """An operator's registration as stored."""

    model_config = ConfigDict(extra="ignore")

    ans_registry: str
    revision: int
    updated_at: datetime


class BeneficiaryIn(_In):
    """Who the contact is with; contact data is normalized (CPF digits, E.164 phones)."""

    card_number: str | None = Field(default=None, min_length=1, max_length=40)
    cpf: str | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = None
    phone: str | None = None
    whatsapp: str | None = None
    preferred_channels: list[NotificationChannel] = Field(default_factory=list, max_length=3)

    @field_validator("cpf")
    @classmethod
    def _cpf(cls, value: str | None) -> str | None:
        return None if value is None else normalize_cpf(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else normalize_email(value)

    @field_validator("phone", "whatsapp")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else normalize_phone(value)


class DemandIn(_In):
    """A demand of the beneficiary (what they asked for)."""

    demand_type: DemandType
    category: Category | None = None
    description: DemandDescription | None = None
    requested_at: AwareDatetime | None = Field(
        default=None, description="When the beneficiary asked; defaults to now."
    )


class ProtocolIn(_In):
    """A new contact (POST /v1/protocols)."""

    operator: str = Field(pattern=ANS_PATTERN, description="ANS registration (6 digits).")
    channel: Channel
    direction: Direction = "inbound"
    contact_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="The contact center's own id; retries with it return the same protocol.",
    )
    beneficiary: BeneficiaryIn
    demand: DemandIn | None = None


class DemandOut(BaseModel):
    """A registered demand with its deadline."""

    id: uuid.UUID
    demand_type: str
    category: str | None
    description: str | None
    status: str
    requested_at: datetime
    registered_at: datetime
    due_at: datetime
    immediate: bool
    deadline_rule_id: str
    deadline_legal_basis: str


class AnswerIn(_In):
    """A conclusive answer to a demand; a denial cites its contractual or legal basis."""

    outcome: Outcome
    text: AnswerText
    legal_basis: LegalBasis | None = None
    answered_by: str | None = Field(default=None, min_length=1, max_length=120)


class AnswerOut(BaseModel):
    """A recorded answer."""

    id: uuid.UUID
    demand_id: uuid.UUID
    outcome: str
    text: str
    legal_basis: str | None
    answered_at: datetime
    answered_by: str | None
    reanalysis_allowed: bool


class ReanalysisIn(_In):
    """The beneficiary asks the ouvidoria to re-analyse a denial or partial authorization."""

    requested_at: AwareDatetime | None = None
    description: DemandDescription | None = None


class InteractionIn(InteractionFields):
    """Part of the copy of the attendance: a transcript, message, note or recording."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    occurred_at: AwareDatetime | None = None


class InteractionOut(BaseModel):
    """A recorded interaction."""

    id: uuid.UUID
    kind: str
    occurred_at: datetime
    author: str | None
    content: str | None
    recording_uri: str | None
    duration_seconds: int | None


class ComplaintIn(_In):
    """A complaint, linked to a protocol or opening one (POST /v1/complaints)."""

    operator: str = Field(pattern=ANS_PATTERN)
    source: ComplaintSource
    classification: str | None = Field(default=None, min_length=1, max_length=200)
    external_reference: str | None = Field(
        default=None, min_length=1, max_length=100, description="E.g. the NIP number."
    )
    received_at: AwareDatetime | None = None
    protocol_number: str | None = Field(default=None, pattern=r"^[0-9]{20,30}$")
    demand_id: uuid.UUID | None = None
    channel: Channel = Field(default="web", description="Channel of the protocol opened for it.")
    beneficiary: BeneficiaryIn | None = None
    coverage: Coverage | None = Field(
        default=None,
        description="Coverage the complaint is about (medical or dental); needed for an "
        "operator with both, taken from the segment otherwise.",
    )

    @model_validator(mode="after")
    def _protocol_or_beneficiary(self) -> ComplaintIn:
        if self.protocol_number is None and self.beneficiary is None:
            raise ValueError("give protocol_number, or beneficiary to open a protocol")
        return self


class ComplaintOut(BaseModel):
    """A registered complaint."""

    id: uuid.UUID
    protocol_number: str
    source: str
    coverage: str | None
    received_at: datetime
    registered_at: datetime


class StatusChange(BaseModel):
    """One entry of a protocol's status history."""

    status: str
    reason: str
    at: datetime


class ProtocolCreated(BaseModel):
    """Answer to POST /v1/protocols."""

    protocol_number: str
    opened_at: datetime
    demand: DemandOut | None = None


class ProtocolSummary(BaseModel):
    """One protocol in a list."""

    protocol_number: str
    operator: str
    channel: str
    direction: str
    opened_at: datetime
    status: str


class ProtocolPage(BaseModel):
    """A page of protocols; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[ProtocolSummary]
    next_cursor: str | None


class ProtocolOut(BaseModel):
    """A protocol with its demands and status history."""

    protocol_number: str
    operator: str
    layout_id: str
    channel: str
    direction: str
    opened_at: datetime
    status: str
    contact_id: str | None
    anonymized_at: datetime | None = Field(
        default=None,
        description="When the beneficiary's data and free texts were removed (end of retention).",
    )
    demands: list[DemandOut]
    answers: list[AnswerOut]
    interactions: list[InteractionOut]
    status_history: list[StatusChange]
