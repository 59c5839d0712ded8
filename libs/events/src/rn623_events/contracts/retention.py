"""Retention contracts (``retention.events``, keyed by protocol number), version 1.

retention-svc decides when records reach the end of their retention period; the services
that hold them (protocol-svc, notification-svc) purge them on request and confirm.
Records-access requests (a free copy of the beneficiary's records, due in 72 hours) are
opened and fulfilled here too; deadline-svc tracks their deadline. The rest of the
topic's types (schedules, disposals) arrive with retention-svc.
"""

from __future__ import annotations

import uuid

from pydantic import Field, field_validator

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
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("has repeated values")
        return value

    def subject(self) -> str:
        """The protocol number."""
        return self.protocol_number


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
