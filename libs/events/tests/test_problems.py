"""RFC 9457 problem documents for every kind of error."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Query
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import DBAPIError, OperationalError

from rn623_events.problems import ProblemError, install_problem_handlers, problem_type

pytestmark = pytest.mark.unit

CPF = "123.456.789-09"
NAME = "Maria Aparecida da Silva"


class Beneficiary(BaseModel):
    """Test payload part."""

    cpf: str = Field(pattern=r"^\d{11}$")
    name: str = Field(max_length=10)
    email: str

    @field_validator("email")
    @classmethod
    def _check_email(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"not an e-mail address: {value}")
        return value


class OpenProtocol(BaseModel):
    """Test payload."""

    operator: str = Field(pattern=r"^\d{6}$")
    beneficiary: Beneficiary


class _DriverError(Exception):
    """A driver error as SQLAlchemy's asyncpg adapter wraps it (with its SQLSTATE)."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"invalid byte sequence near {NAME}")
        self.sqlstate = sqlstate


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/v1/protocols")
    async def open_protocol(body: OpenProtocol) -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/v1/protocols")
    async def list_protocols(limit: Annotated[int, Query(le=100)] = 10) -> dict[str, int]:
        return {"limit": limit}

    @app.get("/v1/conflict")
    async def conflict() -> None:
        raise ProblemError(
            409, "Conflict", "Already answered.", problem_type("conflict"), protocol="1" * 20
        )

    @app.get("/v1/crash")
    async def crash() -> None:
        raise RuntimeError(f"duplicate key cpf={CPF} name={NAME}")

    @app.get("/v1/database-down")
    async def database_down() -> None:
        raise OperationalError("SELECT 1", (), ConnectionRefusedError("refused"))

    @app.get("/v1/database/{sqlstate}")
    async def database_error(sqlstate: str) -> None:
        raise DBAPIError("INSERT INTO t VALUES ($1)", (NAME,), _DriverError(sqlstate))

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client that receives 500 responses instead of re-raised exceptions."""
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def _assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert isinstance(body["type"], str)
    return body


async def test_problem_error(client: httpx.AsyncClient) -> None:
    body = _assert_problem(await client.get("/v1/conflict"), 409)
    assert body["type"] == "urn:rn623:problem:conflict"
    assert body["detail"] == "Already answered."
    assert body["protocol"] == "1" * 20


async def test_validation_lists_fields_without_echoing_input(client: httpx.AsyncClient) -> None:
    payload = {
        "operator": "12",
        "beneficiary": {"cpf": CPF, "name": NAME, "email": "maria.silva.example"},
    }
    response = await client.post("/v1/protocols", json=payload)
    body = _assert_problem(response, 422)
    assert body["type"] == "urn:rn623:problem:validation"
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {error["field"] for error in errors} == {
        "body.operator",
        "body.beneficiary.cpf",
        "body.beneficiary.name",
        "body.beneficiary.email",
    }
    assert all(set(error) == {"field", "message", "type"} for error in errors)
    for secret in (CPF, NAME, "maria.silva.example", "12345678909"):
        assert secret not in response.text
    types = {error["field"]: error["type"] for error in errors}
    assert types["body.beneficiary.cpf"] == "string_pattern_mismatch"
    assert types["body.beneficiary.email"] == "value_error"


async def test_missing_body_and_bad_json(client: httpx.AsyncClient) -> None:
    body = _assert_problem(await client.post("/v1/protocols", json={}), 422)
    assert {error["field"] for error in body["errors"]} == {  # type: ignore[attr-defined]
        "body.operator",
        "body.beneficiary",
    }
    response = await client.post(
        "/v1/protocols",
        content=b'{"beneficiary": {"cpf": "12345678909"',
        headers={"content-type": "application/json"},
    )
    _assert_problem(response, 422)
    assert "12345678909" not in response.text


async def test_query_validation(client: httpx.AsyncClient) -> None:
    body = _assert_problem(await client.get("/v1/protocols", params={"limit": "1000"}), 422)
    assert body["errors"][0]["field"] == "query.limit"  # type: ignore[index]


async def test_not_found_and_method_not_allowed(client: httpx.AsyncClient) -> None:
    body = _assert_problem(await client.get("/nope"), 404)
    assert body["title"] == "Not Found"
    response = await client.delete("/v1/protocols")
    _assert_problem(response, 405)
    assert "allow" in response.headers  # transport headers of HTTPException are kept


async def test_unhandled_exception_is_a_generic_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    tracer = TracerProvider().get_tracer("test")
    with caplog.at_level(logging.ERROR), tracer.start_as_current_span("request") as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # as a real caller does, so server instrumentation joins it
        response = await client.get("/v1/crash", headers=carrier)
    body = _assert_problem(response, 500)
    assert body["type"] == "urn:rn623:problem:internal"
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert body["trace_id"] == trace_id
    assert CPF not in response.text
    assert NAME not in response.text
    assert "RuntimeError" not in response.text
    ours = [r for r in caplog.records if r.name == "rn623_events.problems"]
    assert len(ours) == 1
    assert ours[0].getMessage() == "unhandled exception"
    assert ours[0].exception_type == "RuntimeError"  # type: ignore[attr-defined]
    assert ours[0].exc_info is None
    assert NAME not in caplog.text


@pytest.mark.parametrize("sqlstate", ["22021", "22P05"])
async def test_text_the_database_cannot_store_is_a_422(sqlstate: str) -> None:
    # handled, not re-raised to the server (which would log a crash and drop the connection)
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        body = _assert_problem(await client.get(f"/v1/database/{sqlstate}"), 422)
    assert body["type"] == "urn:rn623:problem:validation"
    assert body["errors"] == [
        {
            "field": "request",
            "message": "holds a NUL character, which cannot be stored",
            "type": "nul_character",
        }
    ]
    assert NAME not in str(body)


async def test_other_database_errors_stay_500_or_503(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.get("/v1/database/23505"), 500)
    down = await client.get("/v1/database-down")
    assert _assert_problem(down, 503)["type"] == "urn:rn623:problem:unavailable"
    assert down.headers["retry-after"] == "1"


@pytest.mark.parametrize("sqlstate", ["57P01", "57P02", "57P03", "53300", "08006", "08003"])
async def test_a_database_going_away_or_starting_is_a_503(
    client: httpx.AsyncClient, sqlstate: str
) -> None:
    response = await client.get(f"/v1/database/{sqlstate}")
    assert _assert_problem(response, 503)["type"] == "urn:rn623:problem:unavailable"
    assert NAME not in response.text
