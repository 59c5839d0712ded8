"""Notification contracts (``notification.events``, keyed by protocol number), version 1.

notification-svc sends each receipt, answer copy and records-ready notice as one
*message*, tried on one channel after another (e.g. WhatsApp, then SMS, then e-mail)
until a channel proves delivery. ``notification.sent`` says a provider accepted it on a
channel, ``notification.delivered`` that the provider confirmed delivery (or reading),
``notification.failed`` that a channel failed (``final`` when no channel is left).
notification-svc also confirms its purges here with ``records.purged``. No payload
carries the recipient's address or the text.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from rn623_events.contracts.common import (
    AnsRegistry,
    AwareDatetime,
    NotificationChannel,
    ProtocolNumberStr,
)
from rn623_events.contracts.protocols import RecordsPurged
from rn623_events.registry import Event, contract

TOPIC = "notification.events"

NotificationPurpose = Literal["receipt", "answer", "access_fulfilled"]
"""Why a message is sent: the receipt of a contact or demand, the copy of an answer, or
the notice that a copy of the records is ready."""

ProviderName = Literal["smtp", "zenvia", "twilio", "meta"]
"""Provider that carried a message: an SMTP relay, Zenvia, Twilio or Meta's Cloud API."""


class NotificationEvent(Event):
    """Base of the message payloads: the message, its protocol, operator and purpose."""

    notification_id: uuid.UUID = Field(description="Id of the message (all its channels).")
    protocol_number: ProtocolNumberStr = Field(description="The protocol (the Kafka key).")
    ans_registry: AnsRegistry = Field(description="ANS registration of the operator (tenant).")
    purpose: NotificationPurpose = Field(description="Why the message is sent.")
    demand_id: uuid.UUID | None = Field(
        default=None, description="The demand the message is about, if any."
    )

    def subject(self) -> str:
        """The protocol number."""
        return self.protocol_number


class ChannelEvent(NotificationEvent):
    """A message on one channel, through one provider."""

    delivery_id: uuid.UUID = Field(description="Id of the attempt on this channel.")
    channel: NotificationChannel = Field(description="Channel of the attempt.")
    provider: ProviderName | None = Field(
        default=None, description="Provider used (none when no provider was reached)."
    )
    provider_message_id: str | None = Field(
        default=None, max_length=200, description="The provider's id of the message."
    )


@contract("notification.sent", version=1, topic=TOPIC)
class NotificationSent(ChannelEvent):
    """A provider accepted the message on a channel (not yet proof of delivery)."""

    sent_at: AwareDatetime = Field(description="When the provider accepted it.")


@contract("notification.delivered", version=1, topic=TOPIC)
class NotificationDelivered(ChannelEvent):
    """The provider confirmed delivery (or reading) on a channel: the proof of delivery."""

    status: Literal["delivered", "read"] = Field(description="What the provider confirmed.")
    delivered_at: AwareDatetime = Field(description="When, as the provider reported it.")


@contract("notification.failed", version=1, topic=TOPIC)
class NotificationFailed(ChannelEvent):
    """A channel failed or gave no proof of delivery in time; ``final`` when it was the last."""

    reason: str = Field(
        pattern=r"^[a-z0-9_.:-]{1,120}$",
        description="Why, e.g. provider_rejected:21211, not_delivered, delivery_timeout, "
        "retries_exhausted, no_contact.",
    )
    failed_at: AwareDatetime = Field(description="When the channel was given up.")
    final: bool = Field(
        description="True when no channel is left to try: the message ends failed, or sent "
        "without proof of delivery when some channel accepted it."
    )
    next_channel: NotificationChannel | None = Field(
        default=None, description="The channel tried next, when not final."
    )


@contract("records.purged", version=1, topic=TOPIC)
class NotificationRecordsPurged(RecordsPurged):
    """notification-svc purged its records of a protocol (messages, timelines, contacts)."""
