"""Request and response bodies of notification-svc's HTTP API.

Responses never carry a recipient's full address: a delivery shows it masked
(``+55119****0001``, ``m***@example.org``) so a list of messages is not a list of
contacts. The full text of a message is shown (the "copy of the attendance").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from rn623_events.contracts.common import NotificationChannel
from rn623_events.contracts.notifications import NotificationPurpose, ProviderName

ANS_PATTERN = r"^[0-9]{6}$"
PROTOCOL_PATTERN = r"^[0-9]{20,30}$"

MessageStatus = Literal["pending", "delivered", "sent", "failed", "unreachable"]
DeliveryStatusOut = Literal["queued", "sending", "sent", "delivered", "read", "failed", "cancelled"]
_PHONE = r"^\+[1-9][0-9]{6,14}$"
_Short = Annotated[str, Field(min_length=1, max_length=200)]
EmailAddress = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class TimelineEntry(BaseModel):
    """One status of a delivery, when and from where (dispatcher, webhook or timer)."""

    status: str
    at: datetime
    source: str
    provider: str | None = None
    detail: str | None = None


class DeliveryOut(BaseModel):
    """A message on one channel."""

    id: uuid.UUID
    channel: NotificationChannel
    position: int = Field(description="Order of the channel in the message's plan (0 first).")
    recipient: str | None = Field(description="The address, masked; null once purged.")
    status: DeliveryStatusOut
    provider: str | None = Field(description="Provider that accepted the message.")
    provider_message_id: str | None
    attempts: int
    queued_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    last_error: str | None
    timeline: list[TimelineEntry]


class NotificationOut(BaseModel):
    """A receipt, answer copy or records notice, with every channel tried."""

    id: uuid.UUID
    operator: str
    protocol_number: str
    purpose: NotificationPurpose
    demand_id: uuid.UUID | None
    status: MessageStatus
    channels: list[NotificationChannel] = Field(description="The plan: channels in order.")
    delivered_channel: NotificationChannel | None
    delivered_at: datetime | None
    created_at: datetime
    subject: str = Field(description="The e-mail subject line.")
    text: str = Field(description="The full text of the message.")
    deliveries: list[DeliveryOut]


class NotificationPage(BaseModel):
    """A page of notifications, newest first."""

    items: list[NotificationOut]
    next_cursor: str | None


class BrandingIn(BaseModel):
    """How the operator presents itself in messages."""

    model_config = ConfigDict(extra="forbid")

    display_name: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    support_phone: Annotated[str, Field(min_length=3, max_length=40)] | None = None
    ouvidoria_phone: Annotated[str, Field(min_length=3, max_length=40)] | None = None
    ouvidoria_email: EmailAddress | None = None
    website: AnyHttpUrl | None = None
    records_url: AnyHttpUrl | None = None
    logo_url: AnyHttpUrl | None = None
    primary_color: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] | None = None


class SendersIn(BaseModel):
    """Who messages come from on each channel."""

    model_config = ConfigDict(extra="forbid")

    email: _Short | None = Field(default=None, description='E-mail From, e.g. "Op <a@b.c>".')
    reply_to: EmailAddress | None = None
    sms: Annotated[str, Field(min_length=1, max_length=20)] | None = Field(
        default=None, description="SMS sender id or number."
    )
    whatsapp: Annotated[str, Field(pattern=_PHONE)] | None = Field(
        default=None, description="WhatsApp business number (Zenvia, Twilio)."
    )
    meta: Annotated[str, Field(pattern=r"^[0-9]{5,30}$")] | None = Field(
        default=None, description="Meta Cloud API phone number id."
    )


class ProfileIn(BaseModel):
    """An operator's notification profile; what it leaves out comes from the defaults."""

    model_config = ConfigDict(extra="forbid")

    branding: BrandingIn = Field(default_factory=BrandingIn)
    senders: SendersIn = Field(default_factory=SendersIn)
    channel_order: list[NotificationChannel] | None = Field(
        default=None, min_length=1, max_length=3, description="Channels tried, in order."
    )
    channel_providers: dict[NotificationChannel, list[ProviderName]] | None = Field(
        default=None, description="Providers of each channel, in failover order."
    )
    delivery_timeouts: dict[NotificationChannel, Annotated[float, Field(gt=0, le=86400)]] | None = (
        Field(default=None, description="Seconds a channel has to prove delivery.")
    )

    @field_validator("channel_order")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("channel_order has repeated channels")
        return value

    @field_validator("channel_providers")
    @classmethod
    def _providers_fit(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        allowed = {
            "email": {"smtp"},
            "sms": {"zenvia", "twilio"},
            "whatsapp": {"meta", "zenvia", "twilio"},
        }
        for channel, providers in (value or {}).items():
            wrong = [p for p in providers if p not in allowed[channel]]
            if wrong:
                raise ValueError(f"{', '.join(wrong)} cannot carry {channel}")
            if len(set(providers)) != len(providers):
                raise ValueError(f"providers of {channel} repeat")
        return value


class ProfileOut(ProfileIn):
    """A stored profile."""

    model_config = ConfigDict(extra="ignore")

    operator: str
    revision: int
    updated_at: datetime
