"""HTTP request and response bodies of protocol-svc (v1)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from protocol_svc.contact_data import normalize_cpf, normalize_email, normalize_phone
from rn623_events.contracts.operators import (
    UF,
    UF_IBGE_CODES,
    BrazilTimeZone,
    ExtraHoliday,
    Modality,
    Segment,
)
from rn623_rulebook.protocol_numbers import LAYOUTS

AnsRegistry = str
ANS_PATTERN = r"^[0-9]{6}$"
Channel = Literal["phone", "in_person", "web", "app", "chat", "whatsapp", "email"]
Direction = Literal["inbound", "outbound"]
NotificationChannel = Literal["email", "sms", "whatsapp"]
DemandType = Literal[
    "urgent_emergency",
    "assistance",
    "high_complexity",
    "elective_hospitalization",
    "non_assistance",
    "reanalysis",
    "records_access",
]


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
    category: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,80}$")
    description: str | None = Field(default=None, max_length=4000)
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
    demands: list[DemandOut]
    status_history: list[StatusChange]
