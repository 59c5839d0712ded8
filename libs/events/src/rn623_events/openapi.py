"""Error answers in a service's OpenAPI document: RFC 9457 problem documents.

FastAPI documents a ``422`` with its own ``HTTPValidationError`` body as ``application/json``
and nothing else, while every service answers errors as ``application/problem+json``
(``problems.py``), and every secured operation can answer ``401`` and ``403``. The document
is rewritten so that integrators (and schema-driven tests) see what is really sent.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from rn623_events.problems import PROBLEM_MEDIA_TYPE

PROBLEM = "Problem"
VALIDATION_PROBLEM = "ValidationProblem"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

DESCRIPTIONS: dict[int, str] = {
    400: "The body cannot be read (e.g. it is not UTF-8).",
    401: "A valid bearer token is required.",
    403: "The token lacks a scope the operation needs, or may not act for the operator.",
    404: "Not found, or of an operator the caller may not act for.",
    409: "The resource's state does not allow it.",
    410: "Gone: removed at the end of its retention.",
    413: "The body is too large.",
    415: "The body's media type is not supported.",
    422: "Validation failed; ``errors`` names each invalid field.",
    503: "A dependency is unavailable; retry shortly.",
}

_PROBLEM_PROPERTIES: dict[str, Any] = {
    "type": {"type": "string", "description": "URI of the problem type."},
    "title": {"type": "string", "description": "Short summary of the problem type."},
    "status": {"type": "integer", "description": "The HTTP status code."},
    "detail": {"type": "string", "description": "What went wrong in this occurrence."},
    "instance": {"type": "string"},
    "trace_id": {"type": "string", "description": "Trace id to quote when reporting it."},
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM,
    "description": "An RFC 9457 problem document; problem types may add members.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": _PROBLEM_PROPERTIES,
    "additionalProperties": True,
}

VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": VALIDATION_PROBLEM,
    "description": "A problem document naming each invalid field of the request.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        **_PROBLEM_PROPERTIES,
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message", "type"],
                "properties": {
                    "field": {"type": "string", "description": "e.g. body.operator"},
                    "message": {"type": "string"},
                    "type": {"type": "string", "description": "Machine-readable kind."},
                },
            },
        },
    },
    "additionalProperties": True,
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the problems an operation may answer with besides those
    every operation documents (400 with a body, 401 and 403 when secured, 422)."""
    return {status: {"description": DESCRIPTIONS[status]} for status in statuses}


def _reference(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of an OpenAPI ``document`` whose error answers are problem documents: every
    4xx/5xx answer as ``application/problem+json``, with 401 and 403 on secured operations
    and 400 on operations taking a body."""
    document = copy.deepcopy(document)
    default_security = document.get("security")
    for item in document.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            security = operation.get("security", default_security)
            added = []
            if operation.get("requestBody") is not None:
                added.append(400)
            if security and any(bool(requirement) for requirement in security):
                added += [401, 403]
            for status in added:
                responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    name = VALIDATION_PROBLEM if status == "422" else PROBLEM
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": _reference(name)}}
                    if status == "422":
                        response["description"] = DESCRIPTIONS[422]
            operation["responses"] = dict(sorted(responses.items()))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in json.dumps(document):
            schemas.pop(name, None)
    schemas[PROBLEM] = PROBLEM_SCHEMA
    schemas[VALIDATION_PROBLEM] = VALIDATION_PROBLEM_SCHEMA
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document


def problem_openapi(generate: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Wrap an app's ``openapi`` method so that it serves ``document_problems`` of it."""
    cached: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not cached:
            cached.append(document_problems(generate()))
        return cached[0]

    return openapi
