"""Retention contracts (``retention.events``, keyed by protocol number), version 1.

retention-svc decides when records reach the end of their retention period; the services
that hold them (protocol-svc, notification-svc) purge them on request and confirm.
Records-access requests (a free copy of the beneficiary's records, due in 72 hours) are
opened and fulfilled here too; deadline-svc tracks their deadline. Every disposal ends in
a certificate that links to the operator's previous one by its hash.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rn623_events.contracts.common import (
    AnsRegistry,
    AwareDatetime,
    ProtocolNumberStr,
    RecordClass,
    RuleId,
    ServiceName,
)
from rn623_events.registry import Event, contract

TOPIC = "retention.events"

SHA256_HEX = r"^[0-9a-f]{64}$"

ScheduleReason = Literal["contact", "demand_registered", "resolution", "complaint"]
"""What changed a protocol's retention schedule."""


def _distinct(value: tuple[str, ...]) -> tuple[str, ...]:
    """Return ``value``; raise when it repeats an item."""
    if len(set(value)) != len(value):
        raise ValueError("has repeated values")
    return value


class ScheduleEntry(BaseModel):
    """Until when one class of a protocol's records must be kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_class: RecordClass = Field(description="Class of record.")
    retain_until: AwareDatetime | None = Field(
        description="Earliest instant the records may be purged; null while the event that "
        "starts the period (the resolution) has not happened."
    )


@contract("retention.scheduled", version=1, topic=TOPIC)
class RetentionScheduled(Event):
    """A protocol's retention schedule was set or changed (contact, resolution, complaint)."""

    protocol_number: ProtocolNumberStr = Field(description="The protocol (the Kafka key).")
    ans_registry: AnsRegistry = Field(description="ANS registration of the operator (tenant).")
    reason: ScheduleReason = Field(description="What changed the schedule.")
    entries: tuple[ScheduleEntry, ...] = Field(
        min_length=1, description="Every record class still retained, with its end."
    )
    scheduled_at: AwareDatetime = Field(description="When the schedule was computed.")

    def subject(self) -> str:
        """The protocol number."""
        return self.protocol_number


@contract("retention.purge_requested", version=1, topic=TOPIC)
class PurgeRequested(Event):
    """Records of a protocol reached the end of their retention: their owners must purge them.

    Each service named in ``owners`` deletes or anonymizes the classes it holds and
    confirms with ``records.purged`` carrying ``purge_request_id``. The request is only
    sent when no legal hold covers the records.
    """

    purge_request_id: uuid.UUID = Field(description="Id of this request, echoed by confirmations.")
    protocol_number: ProtocolNumberStr = Field(description="The protocol (the Kafka key).")
    ans_registry: AnsRegistry = Field(description="ANS registration of the operator (tenant).")
    record_classes: tuple[RecordClass, ...] = Field(
        min_length=1, description="Classes of record to purge (distinct)."
    )
    owners: tuple[ServiceName, ...] = Field(
        min_length=1,
        description="Services that hold records of these classes and must confirm, "
        "e.g. protocol-svc, notification-svc.",
    )
    requested_at: AwareDatetime = Field(description="When retention-svc asked for the purge.")

    @field_validator("record_classes", "owners")
    @classmethod
    def _distinct_values(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _distinct(value)

    def subject(self) -> str:
        """The protocol number."""
        return self.protocol_number


class OwnerConfirmation(BaseModel):
    """One owner's confirmation that it purged its records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    owner: ServiceName = Field(description="Service that purged, e.g. protocol-svc.")
    record_classes: tuple[RecordClass, ...] = Field(description="Classes it purged.")
    purged_at: AwareDatetime = Field(description="When it purged them.")
    anonymized: bool = Field(description="Whether it anonymized instead of deleting.")


@contract("retention.disposed", version=1, topic=TOPIC)
class RetentionDisposed(Event):
    """Every owner confirmed a purge: the disposal certificate, linked into the operator's
    tamper-evident chain (``hash`` covers the certificate and ``previous_hash``)."""

    certificate_id: uuid.UUID = Field(description="Id of the disposal certificate.")
    sequence: int = Field(ge=1, description="Position in the operator's chain (1, 2, ...).")
    purge_request_id: uuid.UUID = Field(description="The purge request it closes.")
    protocol_number: ProtocolNumberStr = Field(description="The protocol (the Kafka key).")
    ans_registry: AnsRegistry = Field(description="ANS registration of the operator (tenant).")
    record_classes: tuple[RecordClass, ...] = Field(
        min_length=1, description="Classes of record disposed of."
    )
    confirmations: tuple[OwnerConfirmation, ...] = Field(
        min_length=1, description="Each owner's confirmation."
    )

    @field_validator("record_classes")
    @classmethod
    def _distinct_classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _distinct(value)

    requested_at: AwareDatetime = Field(description="When the purge was requested.")
    disposed_at: AwareDatetime = Field(description="When the last owner's confirmation arrived.")
    previous_hash: str = Field(
        pattern=SHA256_HEX, description="Hash of the operator's previous certificate (zeros first)."
    )
    hash: str = Field(pattern=SHA256_HEX, description="SHA-256 of this certificate.")

    def subject(self) -> str:
        """The protocol number."""
        return self.protocol_number


AccessScope = Literal["beneficiary", "protocol"]
"""What an access request covers: every protocol of the beneficiary, or one protocol."""


class AccessRequestEvent(Event):
    """Base of the records-access payloads: the request, its protocol and operator."""

    request_id: uuid.UUID = Field(description="Id of the access request.")
    protocol_number: ProtocolNumberStr = Field(
        description="The protocol of the contact in which the beneficiary asked (the Kafka key)."
    )
    ans_registry: AnsRegistry = Field(description="ANS registration of the operator (tenant).")

    def subject(self) -> str:
        """The protocol number."""
        return self.protocol_number


@contract("access_request.opened", version=1, topic=TOPIC)
class AccessRequestOpened(AccessRequestEvent):
    """A beneficiary asked for a copy of their records (free, due in 72 hours)."""

    requested_at: AwareDatetime = Field(description="When the beneficiary asked.")
    due_at: AwareDatetime = Field(description="When the copy must be available.")
    rule_id: RuleId = Field(description="Rulebook rule applied.")
    legal_basis: str = Field(min_length=1, max_length=1000, description="The rule's basis.")
    ruleset_id: str = Field(min_length=1, max_length=120, description="Rule set in force.")


@contract("access_request.fulfilled", version=1, topic=TOPIC)
class AccessRequestFulfilled(AccessRequestEvent):
    """The copy of the records is ready for the beneficiary."""

    fulfilled_at: AwareDatetime = Field(description="When the bundle became available.")
