"""Structured logging and the personal-data filter."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

from rn623_events.logs import (
    REDACTED,
    PersonalDataFilter,
    configure_logging,
    format_exception_safely,
    is_personal_key,
    redact_text,
    redact_value,
)

pytestmark = pytest.mark.unit

PROTOCOL = "12345620250115000001"
ANS = "123456"
UUID_TEXT = "550e8400-e29b-41d4-a716-446655440000"

PERSONAL = [
    "123.456.789-09",
    "12345678909",
    "123456789-09",
    "123 456 789 09",
    "maria@example.com",
    "Maria.Silva+sac@Exemplo.COM.br",
    "joao_souza-1@mail.operadora.org",
    "+55 11 91234-5678",
    "+55 (11) 91234-5678",
    "+5511912345678",
    "5511912345678",
    "(11) 91234-5678",
    "(11)91234-5678",
    "(21) 3456-7890",
    "11 91234-5678",
    "11 9 1234-5678",
    "11912345678",
    "1134567890",
    "91234-5678",
    "898001234567890",  # CNS (Cartão Nacional de Saúde)
]

SAFE = [
    PROTOCOL,
    "protocol=" + PROTOCOL,
    ANS,
    "operator 123456 registered",
    UUID_TEXT,
    "12345678-1234-1234-1234-123456789012",
    "2025-01-15T10:30:00.123456+00:00",
    "2025-01-15T10:30:00Z",
    "2025-01-15 10:30:00",
    "2025-01-15",
    "127.0.0.1:8001",
    "localhost:9092",
    "listening on ports 80 8001 8002",
    "ip 192.168.100.10:54321",
    "range 8000-8005",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
    "retry 3 of 5 after 1.5 s",
    "offset 123456789 partition 0",
    "version 1.28.0",
    "IGR 0.87 for 2025Q3",
    "is it ready?",
    "",
]


@pytest.mark.parametrize("value", PERSONAL)
@pytest.mark.parametrize("template", ["{}", "cpf: {}.", "contact <{}>, protocol " + PROTOCOL])
def test_personal_data_is_redacted(value: str, template: str) -> None:
    text = template.format(value)
    redacted = redact_text(text)
    assert value not in redacted
    assert REDACTED in redacted
    if PROTOCOL in text:
        assert PROTOCOL in redacted


@pytest.mark.parametrize("value", SAFE)
def test_safe_values_survive(value: str) -> None:
    assert redact_text(value) == value


def test_digit_runs_longer_than_a_phone_survive() -> None:
    assert redact_text("1" * 20) == "1" * 20
    assert redact_text("9" * 25) == "9" * 25
    assert redact_text("1" * 11) == REDACTED


@pytest.mark.parametrize(
    "key",
    ["name", "Nome", "cpf", "beneficiary_cpf", "email", "E-Mail", "phone", "telefone",
     "whatsapp", "text", "answer_text", "description", "transcript", "body", "beneficiary",
     "beneficiaryName", "full_name", "password", "card_number"],
)  # fmt: skip
def test_personal_keys(key: str) -> None:
    assert is_personal_key(key)


@pytest.mark.parametrize(
    "key",
    ["protocol_number", "operator", "ans_registry", "topic", "topic_name", "event_type",
     "status", "channel", "duration_ms", "context", "trace_id", "service_name"],
)  # fmt: skip
def test_operational_keys(key: str) -> None:
    assert not is_personal_key(key)


class _Beneficiary(BaseModel):
    name: str
    cpf: str
    channel: str


@dataclass
class _Contact:
    phone: str
    protocol: str


def test_redact_value_structures() -> None:
    value = {
        "protocol": PROTOCOL,
        "beneficiary": {"name": "Maria"},
        "contact": {"nome": "João", "note": "ligar para 11 91234-5678", "channel": "phone"},
        "list": ["maria@example.com", PROTOCOL, 12345678909, 42, 1.5, True, None],
        "model": _Beneficiary(name="Maria", cpf="12345678909", channel="web"),
        "dataclass": _Contact(phone="11912345678", protocol=PROTOCOL),
    }
    assert redact_value(value) == {
        "protocol": PROTOCOL,
        "beneficiary": REDACTED,
        "contact": {"nome": REDACTED, "note": REDACTED, "channel": "phone"},
        "list": [REDACTED, PROTOCOL, REDACTED, 42, 1.5, True, None],
        "model": {"name": REDACTED, "cpf": REDACTED, "channel": "web"},
        "dataclass": {"phone": REDACTED, "protocol": PROTOCOL},
    }


# --- the filter and the JSON output ---------------------------------------------------------


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """Configure JSON logging into a buffer; restore the root logger afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, [h.filters[:] for h in root.handlers])
    buffer = io.StringIO()
    configure_logging("protocol-svc", "DEBUG", stream=buffer)
    try:
        yield logging.getLogger("rn623.test"), buffer
    finally:
        handlers, level, filters = saved
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        for handler, kept in zip(handlers, filters, strict=True):
            handler.filters[:] = kept
        root.setLevel(level)


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_fields(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = capture
    logger.info("protocol %s opened", PROTOCOL, extra={"operator": ANS, "attempt": 2})
    (line,) = _lines(buffer)
    assert line["message"] == f"protocol {PROTOCOL} opened"
    assert line["level"] == "INFO"
    assert line["logger"] == "rn623.test"
    assert line["service"] == "protocol-svc"
    assert line["operator"] == ANS
    assert line["attempt"] == 2
    assert "trace_id" not in line
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() is not None
    assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["timestamp"])


def test_trace_ids_from_current_span(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = capture
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logger.warning("inside a span")
    (line,) = _lines(buffer)
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_messages_args_and_extras_are_redacted(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    logger.info(f"beneficiary 123.456.789-09 wrote from maria@example.com about {PROTOCOL}")  # noqa: G004 - a message with personal data inline is the point
    logger.info("callback to %s for protocol %s", "(11) 91234-5678", PROTOCOL)
    logger.info("cpf %d", 12345678909)
    logger.info(
        "answer sent",
        extra={
            "protocol_number": PROTOCOL,
            "full_name": "Maria Aparecida",
            "Telefone": "anything at all",
            "detail": "sent to +55 11 91234-5678",
            "payload": {"email": "x", "channel": "sms", "cpf_digits": 12345678909},
            "operator": ANS,
            "event_id": UUID_TEXT,
        },
    )
    output = buffer.getvalue()
    for secret in ("123.456.789-09", "maria@example.com", "91234-5678", "12345678909",
                   "Maria Aparecida", "anything at all"):  # fmt: skip
        assert secret not in output
    first, second, third, fourth = _lines(buffer)
    assert first["message"] == f"beneficiary {REDACTED} wrote from {REDACTED} about {PROTOCOL}"
    assert second["message"] == f"callback to {REDACTED} for protocol {PROTOCOL}"
    assert third["message"] == f"cpf {REDACTED}"
    assert fourth["protocol_number"] == PROTOCOL
    assert fourth["full_name"] == REDACTED
    assert fourth["Telefone"] == REDACTED
    assert fourth["detail"] == f"sent to {REDACTED}"
    assert fourth["payload"] == {"email": REDACTED, "channel": "sms", "cpf_digits": REDACTED}
    assert fourth["operator"] == ANS
    assert fourth["event_id"] == UUID_TEXT


def test_tracebacks_keep_frames_and_types_but_not_messages(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = capture
    try:
        try:
            raise KeyError("maria@example.com")
        except KeyError as exc:
            raise ValueError("Key (name)=(Maria Aparecida) already exists") from exc
    except ValueError:
        logger.exception("insert failed for protocol %s", PROTOCOL)
    (line,) = _lines(buffer)
    output = buffer.getvalue()
    for secret in ("maria@example.com", "Maria Aparecida"):
        assert secret not in output
    assert line["message"] == f"insert failed for protocol {PROTOCOL}"
    text = line["exc_info"]
    assert text.startswith("Traceback (most recent call last):")
    assert "builtins.KeyError: [message redacted]" in text
    assert "direct cause" in text
    assert text.endswith("builtins.ValueError: [message redacted]")
    assert "test_logs.py" in text


def test_format_exception_safely_with_context_and_none() -> None:
    try:
        try:
            raise OSError("12345678909")
        except OSError:
            raise RuntimeError("Maria") from None
    except RuntimeError as exc:
        text = format_exception_safely(exc)
    assert "OSError" not in text  # suppressed context
    assert "Maria" not in text
    assert text.endswith("builtins.RuntimeError: [message redacted]")
    try:
        try:
            raise OSError("12345678909")
        except OSError:
            raise RuntimeError("Maria")  # noqa: B904 - the implicit context is the point
    except RuntimeError as exc:
        text = format_exception_safely(exc)
    assert "During handling" in text
    assert "12345678909" not in text
    assert format_exception_safely(None) == ""


def test_dict_messages_are_redacted(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = capture
    logger.info({"event": "contact", "phone": "11912345678", "protocol": PROTOCOL})
    (line,) = _lines(buffer)
    assert line["phone"] == REDACTED
    assert line["protocol"] == PROTOCOL


def test_uvicorn_access_query_strings(capture: tuple[logging.Logger, io.StringIO]) -> None:
    _, buffer = capture
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO)
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "10.0.0.7:51234",
        "GET",
        f"/v1/protocols/{PROTOCOL}?cpf=12345678909&email=a%40b.com",
        "1.1",
        200,
    )
    access.info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.7:51234", "GET", "/v1/x/maria%40ex.com", "1.1", 404
    )
    first, second = _lines(buffer)
    assert first["message"] == (
        f'10.0.0.7:51234 - "GET /v1/protocols/{PROTOCOL}?{REDACTED} HTTP/1.1" 200'
    )
    assert second["message"] == f'10.0.0.7:51234 - "GET /v1/x/{REDACTED} HTTP/1.1" 404'


def test_httpx_request_lines_lose_their_query(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    _, buffer = capture
    url = httpx.URL("https://sms.example/send?to=11912345678&text=Ola+Maria")
    logging.getLogger("httpx").info(
        'HTTP Request: %s %s "%s %d %s"', "GET", url, "HTTP/1.1", 200, "OK"
    )
    (line,) = _lines(buffer)
    assert (
        line["message"]
        == f'HTTP Request: GET https://sms.example/send?{REDACTED} "HTTP/1.1 200 OK"'
    )


def test_uvicorn_color_message_is_dropped(capture: tuple[logging.Logger, io.StringIO]) -> None:
    _, buffer = capture
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 42, extra={"color_message": "Started \x1b[36m%d\x1b[0m"}
    )
    (line,) = _lines(buffer)
    assert line["message"] == "Started server process [42]"
    assert "color_message" not in line


def test_uvicorn_loggers_go_through_the_filter(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    _, buffer = capture
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        assert uvicorn_logger.propagate
        assert not uvicorn_logger.handlers
        assert any(isinstance(f, PersonalDataFilter) for f in uvicorn_logger.filters)
    logging.getLogger("uvicorn.error").error("bad request from maria@example.com")
    (line,) = _lines(buffer)
    assert line["message"] == f"bad request from {REDACTED}"


def test_configure_logging_is_idempotent(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, _ = capture
    second = io.StringIO()
    configure_logging("protocol-svc", stream=second)
    root = logging.getLogger()
    ours = [h for h in root.handlers if type(h).__name__ == "_ServiceHandler"]
    assert len(ours) == 1
    assert all(
        sum(isinstance(f, PersonalDataFilter) for f in handler.filters) == 1
        for handler in root.handlers
    )
    logger.info("once")
    assert len(second.getvalue().splitlines()) == 1


def test_text_mode(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, _ = capture
    buffer = io.StringIO()
    configure_logging("protocol-svc", json=False, stream=buffer)
    logger.info("call %s", "11912345678")
    assert buffer.getvalue().rstrip().endswith(f"INFO rn623.test: call {REDACTED}")
