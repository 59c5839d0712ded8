"""RFC 9457 ``application/problem+json`` errors and the FastAPI handlers that emit them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from rn623_events.db import is_infrastructure_error, is_unstorable_text
from rn623_events.logs import redact_text

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:rn623:problem:"

_logger = logging.getLogger(__name__)


def problem_type(slug: str) -> str:
    """Return the platform problem type URI for ``slug`` (``urn:rn623:problem:<slug>``)."""
    return PROBLEM_TYPE_PREFIX + slug


class ProblemResponse(JSONResponse):
    """A JSON response served as ``application/problem+json``."""

    media_type = PROBLEM_MEDIA_TYPE


class ProblemError(Exception):
    """An error rendered as an RFC 9457 problem document; raise it anywhere in a request."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        type_: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_ or "about:blank"
        self.headers = dict(headers or {})
        self.extensions = extensions

    def to_dict(self) -> dict[str, Any]:
        """Return the problem document (without transport headers)."""
        return problem_body(self.status, self.title, self.detail, self.type, **self.extensions)

    def to_response(self) -> ProblemResponse:
        """Return the problem as a ``ProblemResponse``."""
        return ProblemResponse(self.to_dict(), status_code=self.status, headers=self.headers)


def problem_body(
    status: int, title: str, detail: str | None, type_: str, **extensions: Any
) -> dict[str, Any]:
    """Build a problem document, adding the current trace id when a span is active."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    trace_id = current_trace_id()
    if trace_id is not None:
        body["trace_id"] = trace_id
    body.update(extensions)
    return body


def current_trace_id() -> str | None:
    """Return the current OpenTelemetry trace id as hex, or ``None`` outside a span."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """Turn pydantic errors into ``{field, message, type}`` items, never echoing the input."""
    items = []
    for error in exc.errors():
        # a path can hold a client-chosen key (a dict keyed by CPF): redact it too
        field = redact_text(".".join(str(part) for part in error.get("loc", ())))
        message = str(error.get("msg", "invalid value"))
        rejected = error.get("input")
        if isinstance(rejected, str) and len(rejected) >= 2:
            message = message.replace(rejected, "[redacted]")
        items.append(
            {"field": field, "message": redact_text(message), "type": str(error.get("type"))}
        )
    return items


async def _problem_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ProblemError)
    return exc.to_response()


async def _validation_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
    problem = ProblemError(
        422,
        "Request validation failed",
        f"{len(errors)} invalid field(s)",
        problem_type("validation"),
        errors=errors,
    )
    return problem.to_response()


async def _http_exception_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, HTTPException)
    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "Error"
    detail = (
        redact_text(exc.detail) if isinstance(exc.detail, str) and exc.detail != title else None
    )
    problem = ProblemError(exc.status_code, title, detail, headers=exc.headers)
    return problem.to_response()


async def _database_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    """A 422 when the request's text holds a NUL character, which PostgreSQL cannot store
    (any text field, query parameter or header may carry one; the transaction was rolled
    back, so nothing was stored); any other database error goes on to the 500/503 handler."""
    if not is_unstorable_text(exc):
        raise exc
    _logger.info("request refused: text holds a NUL character")
    return field_problem(
        "request", "holds a NUL character, which cannot be stored", "nul_character"
    ).to_response()


async def _unhandled_handler(request: Request, exc: Exception) -> ProblemResponse:
    if is_infrastructure_error(exc):
        _logger.warning("database unavailable", extra={"exception_type": type(exc).__name__})
        return ProblemError(
            503,
            "Service Unavailable",
            "The database is unavailable; retry shortly (with the same Idempotency-Key).",
            problem_type("unavailable"),
            headers={"Retry-After": "1"},
        ).to_response()
    _logger.error("unhandled exception", extra={"exception_type": type(exc).__name__})
    problem = ProblemError(
        500,
        "Internal Server Error",
        "An unexpected error occurred; quote the trace id when reporting it.",
        problem_type("internal"),
    )
    return problem.to_response()


def install_problem_handlers(app: FastAPI) -> None:
    """Render ProblemError, validation errors, HTTP errors and crashes as problem+json."""
    app.add_exception_handler(ProblemError, _problem_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(HTTPException, _http_exception_handler)
    app.add_exception_handler(DBAPIError, _database_error_handler)
    app.add_exception_handler(Exception, _unhandled_handler)


def field_problem(field: str, message: str, kind: str) -> ProblemError:
    """A 422 naming one invalid field (``body.x``, ``query.y``), in the validation shape."""
    return ProblemError(
        422,
        "Request validation failed",
        "1 invalid field(s)",
        problem_type("validation"),
        errors=[{"field": field, "message": message, "type": kind}],
    )
