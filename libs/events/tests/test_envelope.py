"""CloudEvents envelope: Kafka round trip, parse errors and contract validation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.dlq import describe_error
from rn623_events.envelope import Envelope, EnvelopeError, make_envelope, parse_record
from rn623_events.registry import UnknownEventError

pytestmark = pytest.mark.unit

BRT = timezone(timedelta(hours=-3))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def operator(**changes: Any) -> OperatorUpserted:
    """A valid ``operator.upserted`` payload."""
    data: dict[str, Any] = {
        "ans_registry": "123456",
        "name": "Saúde Exemplo S.A.",
        "segment": "medical",
        "modality": "medicina_de_grupo",
        "beneficiaries": 120_000,
        "uf": "SP",
        "municipality_ibge": "3550308",
        "timezone": "America/Sao_Paulo",
        "extra_holidays": [{"date": "2025-01-25", "name": "Aniversário de São Paulo"}],
        "revision": 3,
        "updated_at": datetime(2025, 3, 1, 9, 30, tzinfo=BRT),
    }
    data.update(changes)
    return OperatorUpserted.model_validate(data)


def envelope(**kwargs: Any) -> Envelope:
    return make_envelope(
        operator(),
        source="protocol-svc",
        time=datetime(2025, 3, 1, 12, 30, tzinfo=UTC),
        **kwargs,
    )


def record(env: Envelope) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return env.key, env.value(), env.headers()


def without(headers: list[tuple[str, bytes]], name: str) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in headers if k != name]


def replaced(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [*without(headers, name), (name, value)]


def test_round_trip_through_kafka_record() -> None:
    env = envelope(
        correlation_id="corr-1",
        causation_id="cause-1",
        trace_headers={"traceparent": TRACEPARENT, "baggage": "ignored"},
    )
    key, value, headers = record(env)
    assert key == b"123456"
    names = dict(headers)
    assert names["ce_type"] == b"operator.upserted"
    assert names["ce_schemaversion"] == b"1"
    assert names["ce_dataschema"] == b"urn:rn623:events:operator.events:operator.upserted:v1"
    assert names["content-type"] == b"application/json"
    assert "baggage" not in names

    parsed = parse_record("operator.events", key, value, headers)
    assert parsed == env.with_trace({"traceparent": TRACEPARENT})  # only W3C headers travel
    assert parsed.decode() == operator()


def test_correlation_defaults_to_the_event_id() -> None:
    event_id = uuid.uuid4()
    env = envelope(event_id=event_id)
    assert env.correlation_id == str(event_id)
    key, value, headers = record(env)
    parsed = parse_record("operator.events", key, value, without(headers, "ce_correlationid"))
    assert parsed.correlation_id == str(event_id)
    assert parsed.causation_id is None


def test_caused_event_keeps_the_correlation() -> None:
    first = envelope(correlation_id="corr-1", trace_headers={"traceparent": TRACEPARENT})
    second = first.caused(operator(revision=4), source="protocol-svc", time=first.time)
    assert second.correlation_id == "corr-1"
    assert second.causation_id == str(first.id)
    assert second.trace_headers == {"traceparent": TRACEPARENT}


def test_make_envelope_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_envelope(operator(), source="protocol-svc", time=datetime(2025, 3, 1, 12, 30))


@pytest.mark.parametrize(
    "header", ["ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_specversion"]
)
def test_missing_header_is_rejected(header: str) -> None:
    key, value, headers = record(envelope())
    with pytest.raises(EnvelopeError, match=f"missing headers: {header}"):
        parse_record("operator.events", key, value, without(headers, header))


def test_bad_uuid_is_rejected() -> None:
    key, value, headers = record(envelope())
    with pytest.raises(EnvelopeError, match="not a UUID"):
        parse_record("operator.events", key, value, replaced(headers, "ce_id", b"not-a-uuid"))


def test_naive_time_is_rejected() -> None:
    key, value, headers = record(envelope())
    naive = replaced(headers, "ce_time", b"2025-03-01T12:30:00")
    with pytest.raises(EnvelopeError, match="no offset"):
        parse_record("operator.events", key, value, naive)


def test_unparseable_time_is_rejected() -> None:
    key, value, headers = record(envelope())
    with pytest.raises(EnvelopeError, match="RFC 3339"):
        parse_record("operator.events", key, value, replaced(headers, "ce_time", b"yesterday"))


def test_unsupported_specversion_is_rejected() -> None:
    key, value, headers = record(envelope())
    with pytest.raises(EnvelopeError, match="specversion"):
        parse_record("operator.events", key, value, replaced(headers, "ce_specversion", b"0.3"))


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_non_json_body_is_rejected(body: bytes) -> None:
    key, _, headers = record(envelope())
    with pytest.raises(EnvelopeError, match="not JSON"):
        parse_record("operator.events", key, body, headers)


def test_missing_body_is_rejected() -> None:
    key, _, headers = record(envelope())
    with pytest.raises(EnvelopeError, match="empty body"):
        parse_record("operator.events", key, None, headers)


@pytest.mark.parametrize("body", [[1, 2], "text", 42, None])
def test_non_object_json_is_rejected(body: object) -> None:
    key, _, headers = record(envelope())
    with pytest.raises(EnvelopeError, match="not a JSON object"):
        parse_record("operator.events", key, json.dumps(body).encode(), headers)


def test_non_utf8_header_is_rejected() -> None:
    key, value, headers = record(envelope())
    with pytest.raises(EnvelopeError, match="UTF-8"):
        parse_record("operator.events", key, value, replaced(headers, "ce_source", b"\xff"))


def test_decode_validates_against_the_contract() -> None:
    key, value, headers = record(envelope())
    data = json.loads(value)
    data["uf"] = "XX"
    parsed = parse_record("operator.events", key, json.dumps(data).encode(), headers)
    with pytest.raises(ValidationError, match="uf"):
        parsed.decode()


def test_decode_ignores_unknown_fields() -> None:
    key, value, headers = record(envelope())
    data = {**json.loads(value), "added_later": True}
    parsed = parse_record("operator.events", key, json.dumps(data).encode(), headers)
    assert parsed.decode() == operator()


@pytest.mark.parametrize(
    ("header", "value"), [("ce_type", b"operator.deleted"), ("ce_schemaversion", b"99")]
)
def test_unknown_type_or_version_raises(header: str, value: bytes) -> None:
    key, body, headers = record(envelope())
    parsed = parse_record("operator.events", key, body, replaced(headers, header, value))
    with pytest.raises(UnknownEventError):
        parsed.decode()


def test_deeply_nested_json_is_an_envelope_error_not_a_crash() -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"6f1c1b8e-4a33-4c51-9a52-0f4f1c6f0b11"),
        ("ce_type", b"operator.upserted"),
        ("ce_source", b"test"),
        ("ce_time", b"2026-11-23T10:00:00+00:00"),
        ("ce_subject", b"123456"),
    ]
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(EnvelopeError, match="not JSON"):
        parse_record("operator.events", b"123456", deep, headers)


def test_dead_letter_error_text_carries_no_submitted_values() -> None:
    with pytest.raises(ValidationError) as caught:
        OperatorUpserted.model_validate({"ans_registry": "123456", "name": "Maria da Silva"})
    text = describe_error(caught.value)
    assert "Maria" not in text
    assert "segment" in text  # but it still names the fields that failed
    assert "[redacted]" in describe_error(RuntimeError("cpf 123.456.789-09 rejected"))
