"""Retention contracts (``retention.events``, keyed by protocol number), version 1.

retention-svc decides when records reach the end of their retention period; the services
that hold them (protocol-svc, notification-svc) purge them on request and confirm. The
rest of the topic's types (schedules, disposals, access requests) arrive with
retention-svc.
"""

from __future__ import annotations

import uuid

from pydantic import Field, field_validator

from rn623_events.contracts.common import (
    AnsRegistry,
    AwareDatetime,
    ProtocolNumberStr,
    RecordClass,
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
