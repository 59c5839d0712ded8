"""CloudEvents 1.0 envelope in Kafka binary mode: attributes as ``ce_*`` headers, JSON body."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rn623_events.registry import REGISTRY, Event, Registry, schema_uri
from rn623_events.tracecontext import TRACE_HEADERS

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """A Kafka record is not a valid event envelope (missing header, bad JSON…)."""


@dataclass(frozen=True)
class Envelope:
    """One event as it travels: CloudEvents attributes, tracing ids and the JSON payload."""

    id: uuid.UUID
    type: str
    source: str
    time: datetime
    subject: str
    version: int
    topic: str
    data: Mapping[str, Any]
    correlation_id: str
    causation_id: str | None = None
    trace_headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def dataschema(self) -> str:
        """The CloudEvents ``dataschema`` URI of this event's contract."""
        return schema_uri(self.type, self.version, topic=self.topic)

    @property
    def key(self) -> bytes:
        """Kafka key: the aggregate id, so one aggregate's events stay ordered."""
        return self.subject.encode()

    def value(self) -> bytes:
        """The JSON body."""
        return json.dumps(self.data, separators=(",", ":"), ensure_ascii=False).encode()

    def headers(self) -> Headers:
        """Kafka headers carrying the CloudEvents attributes and trace context."""
        items = [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", str(self.id)),
            ("ce_type", self.type),
            ("ce_source", self.source),
            ("ce_time", self.time.isoformat()),
            ("ce_subject", self.subject),
            ("ce_dataschema", self.dataschema),
            ("ce_schemaversion", str(self.version)),
            ("ce_correlationid", self.correlation_id),
            ("content-type", CONTENT_TYPE),
        ]
        if self.causation_id:
            items.append(("ce_causationid", self.causation_id))
        items.extend((k, v) for k, v in self.trace_headers.items() if k in TRACE_HEADERS)
        return [(k, v.encode()) for k, v in items]

    def decode(self, registry: Registry | None = None) -> Event:
        """Validate the payload against its contract (by topic, type, version); return the model.

        The topic is part of the lookup: the same type name may mean different payloads
        on different topics (e.g. ``demand.answered`` on ``protocol.events`` and on
        ``contact-center.inbound``).
        """
        registry = registry if registry is not None else REGISTRY
        info = registry.get(self.type, self.version, topic=self.topic)
        return info.model.model_validate(self.data)

    def caused(self, event: Event, *, source: str, time: datetime) -> Envelope:
        """Build the envelope of an event caused by this one (same correlation id)."""
        return make_envelope(
            event,
            source=source,
            time=time,
            correlation_id=self.correlation_id,
            causation_id=str(self.id),
            trace_headers=self.trace_headers,
        )

    def with_trace(self, trace_headers: Mapping[str, str]) -> Envelope:
        """Return a copy carrying other trace headers."""
        return replace(self, trace_headers=dict(trace_headers))


def make_envelope(
    event: Event,
    *,
    source: str,
    time: datetime,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    trace_headers: Mapping[str, str] | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """Wrap a contract payload in a new envelope."""
    if time.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    eid = event_id or uuid.uuid4()
    return Envelope(
        id=eid,
        type=event.event_type,
        source=source,
        time=time,
        subject=event.subject(),
        version=event.event_version,
        topic=event.topic,
        data=event.model_dump(mode="json"),
        correlation_id=correlation_id or str(eid),
        causation_id=causation_id,
        trace_headers=dict(trace_headers or {}),
    )


def parse_record(
    topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> Envelope:
    """Parse a Kafka record into an envelope; raise ``EnvelopeError`` naming what is wrong."""
    try:
        h = {k: v.decode() for k, v in headers if v is not None}
    except UnicodeDecodeError:
        raise EnvelopeError("headers are not UTF-8") from None
    missing = [
        name
        for name in ("ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_specversion")
        if not h.get(name)
    ]
    if missing:
        raise EnvelopeError(f"missing headers: {', '.join(missing)}")
    if h["ce_specversion"] != SPEC_VERSION:
        raise EnvelopeError(f"unsupported specversion {h['ce_specversion']!r}")
    try:
        event_id = uuid.UUID(h["ce_id"])
    except ValueError:
        raise EnvelopeError("ce_id is not a UUID") from None
    try:
        time = datetime.fromisoformat(h["ce_time"])
    except ValueError:
        raise EnvelopeError("ce_time is not RFC 3339") from None
    if time.tzinfo is None:
        raise EnvelopeError("ce_time has no offset")
    try:
        version = int(h.get("ce_schemaversion", "1"))
    except ValueError:
        raise EnvelopeError("ce_schemaversion is not an integer") from None
    if value is None:
        raise EnvelopeError("empty body")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EnvelopeError(f"body is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise EnvelopeError("body is not a JSON object")
    return Envelope(
        id=event_id,
        type=h["ce_type"],
        source=h["ce_source"],
        time=time,
        subject=h["ce_subject"],
        version=version,
        topic=topic,
        data=data,
        correlation_id=h.get("ce_correlationid") or str(event_id),
        causation_id=h.get("ce_causationid"),
        trace_headers={k: h[k] for k in TRACE_HEADERS if k in h},
    )
