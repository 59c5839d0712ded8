"""Structured JSON logging with trace ids, and a filter that keeps personal data out of logs."""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
import traceback
from collections.abc import Mapping
from datetime import date, datetime
from typing import IO, Any
from urllib.parse import unquote
from uuid import UUID

from opentelemetry import trace
from pydantic import BaseModel
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

REDACTED = "[redacted]"

# Alternatives are tried left to right at every position; the "safe" ones match tokens that
# must survive untouched (and so stop a later alternative from starting inside them).
_SAFE_RULES = {
    "uuid": r"(?<![0-9a-f])[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}(?![0-9a-f])",
    "iso_time": r"(?<!\d)\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?)?(?!\d)",
    "hex_id": r"(?<![0-9a-z])(?=[0-9a-f]*[a-f])(?:[0-9a-f]{32}|[0-9a-f]{16})(?![0-9a-z])",
}
_PERSONAL_RULES = {
    "email": r"(?<![\w.%+-])[\w.%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+",
    "phone_intl": r"\+55[\s.-]?\(?\d{2}\)?[\s.-]?(?:9[\s.]?)?\d{4}[\s.-]?\d{4}(?!\d)",
    "phone_paren": r"\(\d{2}\)[\s.-]?(?:9[\s.]?)?\d{4}[\s.-]?\d{4}(?!\d)",
    "cpf": r"(?<!\d)\d{3}[.\s]?\d{3}[.\s]?\d{3}[-/\s]?\d{2}(?!\d)",
    "phone_ddd": r"(?<!\d)\d{2}[\s.-]?(?:9[\s.]?)?\d{4}-\d{4}(?!\d)",
    "mobile": r"(?<!\d)9[\s.]?\d{4}-\d{4}(?!\d)",
    # CPF, phones, CNS and card numbers written as bare digits; 20-digit protocol numbers
    # and longer runs are left alone.
    "digits": r"(?<!\d)\d{10,19}(?!\d)",
}
_PATTERN = re.compile(
    "|".join(f"(?P<{name}>{rule})" for name, rule in {**_SAFE_RULES, **_PERSONAL_RULES}.items()),
    re.IGNORECASE,
)
_QUERY = re.compile(r"\?[^\s\"]+")
_QUERY_LOGGERS = frozenset({"uvicorn.access", "httpx"})

# Extras under these keys (or, for the second set, keys containing them as a word) are
# dropped whole: free text and names cannot be recognised by patterns.
_PERSONAL_KEYS = frozenset(
    {
        "name", "nome", "full_name", "first_name", "last_name", "social_name", "nome_social",
        "customer_name", "contact_name", "person_name", "patient_name", "body", "request_body",
        "response_body", "note", "notes", "comment", "comments", "message_text", "content",
        "rg", "cns", "card_number", "birth_date", "birthdate", "data_nascimento",
        "authorization", "token", "access_token", "id_token", "refresh_token",
    }
)  # fmt: skip
_PERSONAL_WORDS = frozenset(
    {
        "cpf", "email", "mail", "phone", "telefone", "celular", "mobile", "whatsapp", "text",
        "texto", "description", "descricao", "transcript", "transcricao", "beneficiary",
        "beneficiario", "address", "endereco", "carteirinha", "password", "secret",
    }
)  # fmt: skip
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_RESERVED = frozenset(RESERVED_ATTRS) | {"message", "asctime"}
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _replace(match: re.Match[str]) -> str:
    return match.group(0) if match.lastgroup in _SAFE_RULES else REDACTED


def redact_text(text: str) -> str:
    """Replace CPFs, e-mail addresses and phone numbers in ``text`` with ``[redacted]``."""
    return _PATTERN.sub(_replace, text)


def redact_query(text: str) -> str:
    """Replace every URL query string in ``text`` with ``?[redacted]``."""
    return _QUERY.sub("?" + REDACTED, text)


def is_personal_key(key: str) -> bool:
    """Whether a field called ``key`` holds personal data whatever its value looks like."""
    normalized = _CAMEL.sub("_", key).lower()
    if normalized in _PERSONAL_KEYS:
        return True
    return any(word in _PERSONAL_WORDS for word in _WORD_SPLIT.split(normalized))


def redact_value(value: Any) -> Any:
    """Redact a structured value: personal keys whole, patterns inside strings, recursively."""
    if value is None or isinstance(value, bool | float | UUID | date | datetime):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int):
        text = str(value)
        return value if redact_text(text) == text else REDACTED
    if isinstance(value, BaseModel):
        return redact_value(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return redact_value(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_personal_key(str(key)) else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    return redact_text(str(value))


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def format_exception_safely(exc: BaseException | None) -> str:
    """Format a traceback as frame locations and exception types, without messages or source.

    Messages routinely quote data (database constraint keys, pydantic ``input_value``), and
    names or free text cannot be recognised by patterns, so they are left out.
    """
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    link = ""
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append((exc, link))
        if exc.__cause__ is not None:
            exc, link = exc.__cause__, _CAUSE
        else:
            exc = None if exc.__suppress_context__ else exc.__context__
            link = _CONTEXT
    parts: list[str] = []
    for error, following in reversed(chain):
        kind = type(error)
        parts.append("Traceback (most recent call last):\n")
        parts.extend(
            f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n'
            for frame in traceback.extract_tb(error.__traceback__)
        )
        parts.append(f"{kind.__module__}.{kind.__qualname__}: [message redacted]\n")
        parts.append(following)
    return redact_text("".join(parts).rstrip())


class PersonalDataFilter(logging.Filter):
    """Redacts personal data from a record's message, arguments, extras and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; never drops it."""
        self._redact_message(record)
        for key, value in list(record.__dict__.items()):
            if key in _RESERVED or key.startswith("_"):
                continue
            setattr(record, key, REDACTED if is_personal_key(key) else redact_value(value))
        if record.exc_info:
            record.exc_text = format_exception_safely(record.exc_info[1])
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True

    @staticmethod
    def _redact_message(record: logging.LogRecord) -> None:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            # Keep the argument tuple: uvicorn's own access formatter unpacks it.
            record.args = tuple(
                redact_text(redact_query(unquote(arg))) if isinstance(arg, str) else arg
                for arg in record.args
            )
            return
        if isinstance(record.msg, Mapping):
            record.msg = redact_value(record.msg)
            return
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg} (unformattable arguments)"
        if record.name in _QUERY_LOGGERS:
            message = redact_query(message)
        record.msg = redact_text(message)
        record.args = ()


class ServiceJsonFormatter(JsonFormatter):
    """JSON lines with timestamp, level, logger, message, service, trace ids and extras."""

    def __init__(self, service_name: str) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service_name},
            # uvicorn duplicates some messages with ANSI colours as an extra; drop it.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            timestamp=True,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Add the standard fields, then the current span's trace and span ids."""
        super().add_fields(log_data, record, message_dict)
        timestamp = log_data.pop("timestamp")
        fields = dict(log_data)
        log_data.clear()
        log_data["timestamp"] = timestamp.isoformat(timespec="milliseconds")
        log_data.update(fields)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            log_data.setdefault("trace_id", trace.format_trace_id(context.trace_id))
            log_data.setdefault("span_id", trace.format_span_id(context.span_id))


class _ServiceHandler(logging.StreamHandler[IO[str]]):
    """The handler installed by ``configure_logging`` (recognised and replaced on reconfigure)."""


def _ensure_filter(target: logging.Filterer, personal: PersonalDataFilter) -> None:
    if not any(isinstance(existing, PersonalDataFilter) for existing in target.filters):
        target.addFilter(personal)


def configure_logging(
    service_name: str, level: str = "INFO", json: bool = True, *, stream: IO[str] | None = None
) -> None:
    """Send all logs (uvicorn's included) through one redacting handler on the root logger."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ServiceHandler)]:
        root.removeHandler(handler)
        handler.close()
    handler = _ServiceHandler(stream or sys.stdout)
    handler.setFormatter(
        ServiceJsonFormatter(service_name)
        if json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level.upper())
    personal = PersonalDataFilter()
    for existing in root.handlers:
        _ensure_filter(existing, personal)
    for name in _UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        _ensure_filter(uvicorn_logger, personal)
