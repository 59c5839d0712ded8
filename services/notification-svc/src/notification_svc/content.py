"""What a message says, frozen when it is created: the facts the templates render.

A message's content is captured from the events that caused it and stored with it, so a
retry, a fallback to another channel or a restart sends exactly the same words, whatever
happened since. Times are aware datetimes; templates show them in ``timezone``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

Purpose = Literal["receipt", "answer", "access_fulfilled"]
"""Why a message is sent: a receipt of the contact/demand, the answer, records ready."""


class Branding(BaseModel):
    """How the operator presents itself in messages (per-operator profile)."""

    model_config = ConfigDict(frozen=True)

    operator_name: str
    display_name: str | None = None  # short name for SMS/WhatsApp, defaults to operator_name
    ans_registry: str
    support_phone: str | None = None
    ouvidoria_phone: str | None = None
    ouvidoria_email: str | None = None
    website: str | None = None  # where the beneficiary follows up a protocol
    records_url: str | None = None  # where the beneficiary gets a copy of the records
    logo_url: str | None = None
    primary_color: str = "#0b5394"


class DemandInfo(BaseModel):
    """A demand as the receipt states it, with the due date of its answer."""

    model_config = ConfigDict(frozen=True)

    demand_id: uuid.UUID
    demand_type: str
    category: str | None = None
    requested_at: AwareDatetime
    due_at: AwareDatetime
    immediate: bool = False
    deadline_unit: Literal["business_days", "hours"] = "business_days"
    deadline_amount: int = 0


class AnswerInfo(BaseModel):
    """The conclusive answer to a demand."""

    model_config = ConfigDict(frozen=True)

    demand_id: uuid.UUID
    demand_type: str | None = None
    outcome: Literal["authorized", "partially_authorized", "denied", "informed", "resolved"]
    text: str
    legal_basis: str | None = None
    answered_at: AwareDatetime
    reanalysis_allowed: bool = False
    # How long the ouvidoria has to answer a re-analysis (rulebook), when one is allowed.
    reanalysis_business_days: int | None = None


class AccessInfo(BaseModel):
    """A records-access request whose copy is ready."""

    model_config = ConfigDict(frozen=True)

    request_id: uuid.UUID
    fulfilled_at: AwareDatetime


class MessageContent(BaseModel):
    """Everything a message's templates need."""

    model_config = ConfigDict(frozen=True)

    purpose: Purpose
    protocol_number: str
    opened_at: datetime
    contact_channel: str  # channel of the contact: phone, chat, whatsapp...
    timezone: str  # IANA zone of the operator: every date is shown in it
    beneficiary_name: str | None = None
    branding: Branding
    demands: tuple[DemandInfo, ...] = ()
    answer: AnswerInfo | None = None
    access: AccessInfo | None = None
