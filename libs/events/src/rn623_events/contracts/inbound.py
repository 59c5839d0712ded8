"""Contact-center contracts (``contact-center.inbound``, keyed by contact id), version 1.

What external contact-center platforms (telephony, chat, WhatsApp bots, CRMs) publish.
protocol-svc consumes the topic, validates every record against these contracts and
turns valid ones into protocol facts on ``protocol.events``; an invalid record (bad
envelope, unknown type, a field that fails validation) goes to protocol-svc's dead-letter
topic with a reason naming the failing field (e.g. ``beneficiary.cpf``), never the
submitted value, and the consumer moves on.

Contact data arrives raw, as the platform captured it: a CPF may carry its usual
punctuation (``000.000.000-00``) and a phone number its mask (``(11) 91234-5678``).
These contracts only check the shape; protocol-svc normalizes (CPF check digits, E.164
phones, e-mail syntax) and dead-letters what does not normalize.

Two type names also exist on ``protocol.events`` with other payloads
(``interaction.recorded``, ``demand.answered``): decode by topic (``Envelope.decode``
does).
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from rn623_events.contracts.common import (
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
    check_legal_basis,
)
from rn623_events.registry import Event, contract

TOPIC = "contact-center.inbound"

_RAW_CPF = r"^\s*[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}\s*$"
_RAW_PHONE = r"^[0-9+() .xX-]{1,40}$"


class InboundEvent(Event):
    """Base of every ``contact-center.inbound`` payload: the contact and its operator."""

    ans_registry: AnsRegistry = Field(description="ANS registration of the operator served.")
    contact_id: ContactId = Field(
        description="The contact center's own id of the contact (the Kafka key)."
    )

    def subject(self) -> str:
        """The contact center's contact id."""
        return self.contact_id


class RawBeneficiary(BaseModel):
    """Who a contact is with, as captured by the contact center (personal data).

    protocol-svc normalizes these values; each may be unknown (None).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    card_number: str | None = Field(
        default=None, min_length=1, max_length=40, description="Health-plan card number."
    )
    cpf: str | None = Field(
        default=None,
        pattern=_RAW_CPF,
        description="CPF: 11 digits, bare or masked as 000.000.000-00 (separators optional).",
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=200, description="Beneficiary's name."
    )
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^\s*[^@\s]+@[^@\s]+\s*$",
        description="E-mail address for receipts.",
    )
    phone: str | None = Field(
        default=None,
        pattern=_RAW_PHONE,
        description="Phone number as captured: digits, optional +, spaces, dots, hyphens, "
        "parentheses (e.g. (11) 91234-5678 or +55 11 91234-5678).",
    )
    whatsapp: str | None = Field(
        default=None, pattern=_RAW_PHONE, description="WhatsApp number, same form as phone."
    )
    preferred_channels: tuple[NotificationChannel, ...] = Field(
        default=(),
        max_length=3,
        description="Channels the beneficiary prefers for receipts and answers, in order.",
    )


class FirstDemand(BaseModel):
    """The demand the beneficiary brought when the contact opened."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    demand_type: DemandTypeStr = Field(description="Kind of demand; sets the deadline rule.")
    category: Category | None = Field(
        default=None, description="Category (lower-case slug) narrowing the deadline rule."
    )
    description: DemandDescription | None = Field(
        default=None, description="What the beneficiary asked for."
    )
    requested_at: AwareDatetime | None = Field(
        default=None, description="When the beneficiary asked; defaults to the contact's time."
    )


class DemandRef(BaseModel):
    """A demand of a protocol, as protocol-svc numbered it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    protocol_number: ProtocolNumberStr = Field(description="The demand's protocol.")
    demand_id: uuid.UUID = Field(description="Id of the demand.")


@contract("contact.opened", version=1, topic=TOPIC)
class ContactOpened(InboundEvent):
    """A contact started on a contact-center platform; protocol-svc issues its protocol.

    Validated by protocol-svc; an invalid record is dead-lettered with a reason naming
    the field.
    """

    channel: Channel = Field(description="Channel of the contact.")
    direction: Direction = Field(description="Who started the contact.")
    occurred_at: AwareDatetime = Field(description="When the contact started.")
    beneficiary: RawBeneficiary = Field(description="Who the contact is with.")
    demand: FirstDemand | None = Field(
        default=None, description="The first demand, if the beneficiary stated one."
    )


@contract("interaction.recorded", version=1, topic=TOPIC)
class InboundInteractionRecorded(InboundEvent, InteractionFields):
    """A contact center recorded an interaction of a contact (transcript, message, note, call).

    A recording carries ``recording_uri``; the other kinds carry ``content``. Validated by
    protocol-svc; an invalid record is dead-lettered with a reason naming the field.
    """

    occurred_at: AwareDatetime = Field(description="When the interaction happened.")


@contract("demand.answered", version=1, topic=TOPIC)
class InboundDemandAnswered(InboundEvent):
    """An agent of the contact center answered a demand conclusively.

    Validated by protocol-svc (including the ban on generic answers such as "em
    análise"); an invalid record is dead-lettered with a reason naming the field.
    """

    demand_ref: DemandRef = Field(description="The demand answered.")
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

    @field_validator("legal_basis")
    @classmethod
    def _legal_basis_for_denials(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_legal_basis(info.data.get("outcome"), value)


@contract("complaint.received", version=1, topic=TOPIC)
class ComplaintReceived(InboundEvent):
    """A complaint about the operator reached the contact center (NIP, ouvidoria, Procon…).

    Linked to ``protocol_number`` when given, otherwise protocol-svc opens a protocol for
    it. Validated by protocol-svc; an invalid record is dead-lettered with a reason naming
    the field.
    """

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
    protocol_number: ProtocolNumberStr | None = Field(
        default=None, description="The protocol the complaint is about, if known."
    )
    coverage: Coverage | None = Field(
        default=None,
        description="Coverage the complaint is about; needed for operators with both.",
    )
