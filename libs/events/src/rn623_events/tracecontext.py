"""W3C trace-context propagation through Kafka headers."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import propagate
from opentelemetry.context import Context

TRACE_HEADERS = ("traceparent", "tracestate")


def current_trace_headers() -> dict[str, str]:
    """Return the W3C headers (``traceparent``/``tracestate``) of the current span, if any."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in TRACE_HEADERS}


def context_from_headers(headers: Iterable[tuple[str, bytes]] | dict[str, str]) -> Context:
    """Build an OpenTelemetry context from Kafka headers (or a plain mapping)."""
    if isinstance(headers, dict):
        carrier = {k: v for k, v in headers.items() if k in TRACE_HEADERS}
    else:
        carrier = {k: v.decode("latin-1") for k, v in headers if k in TRACE_HEADERS and v}
    return propagate.extract(carrier)
