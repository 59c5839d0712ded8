"""The OpenAPI document shows errors as they are sent: problem+json, 401/403 when secured."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import jsonschema
import pytest
from fastapi import APIRouter, Depends
from pydantic import BaseModel, SecretStr

from rn623_events.auth import Principal, bearer_headers, require_scopes
from rn623_events.http import create_service_app
from rn623_events.openapi import document_problems, problem_responses
from rn623_events.problems import ProblemError
from rn623_events.settings import AuthSettings, ServiceSettings, TelemetrySettings

pytestmark = pytest.mark.unit

SECRET = "s" * 40
PROBLEM_JSON = "application/problem+json"


class ThingIn(BaseModel):
    name: str
    size: int


def _app() -> Any:
    router = APIRouter(prefix="/v1")

    @router.get("/things/{thing_id}", responses=problem_responses(404))
    async def get_thing(
        thing_id: int, principal: Annotated[Principal, Depends(require_scopes("things:read"))]
    ) -> dict[str, int]:
        raise ProblemError(404, "Not Found", "no such thing")

    @router.post("/things", status_code=201)
    async def add_thing(
        body: ThingIn, principal: Annotated[Principal, Depends(require_scopes("things:write"))]
    ) -> dict[str, str]:
        return {"name": body.name}

    @router.post("/callbacks", status_code=204, responses={401: {"description": "Bad signature."}})
    async def callback() -> None:
        return None

    settings = ServiceSettings(
        service_name="test-svc",
        auth=AuthSettings(secret=SecretStr(SECRET)),
        telemetry=TelemetrySettings(otel_sdk_disabled=True),
    )
    return create_service_app(
        settings=settings, title="t", version="1", routers=[router], readiness_checks={}
    )


def _content(operation: dict[str, Any], status: str) -> dict[str, Any]:
    content: dict[str, Any] = operation["responses"][status]["content"]
    return content


def test_secured_operations_document_401_403_and_problem_bodies() -> None:
    schema = _app().openapi()
    get = schema["paths"]["/v1/things/{thing_id}"]["get"]
    post = schema["paths"]["/v1/things"]["post"]
    assert set(get["responses"]) == {"200", "401", "403", "404", "422"}
    assert set(post["responses"]) == {"201", "400", "401", "403", "422"}
    for operation in (get, post):
        for status in operation["responses"]:
            if status.startswith("4"):
                reference = _content(operation, status)[PROBLEM_JSON]["schema"]["$ref"]
                expected = "ValidationProblem" if status == "422" else "Problem"
                assert reference == f"#/components/schemas/{expected}"
                assert set(_content(operation, status)) == {PROBLEM_JSON}
    names = set(schema["components"]["schemas"])
    assert {"Problem", "ValidationProblem"} <= names
    assert not {"HTTPValidationError", "ValidationError"} & names


def test_unsecured_operations_keep_only_their_declared_errors() -> None:
    callback = _app().openapi()["paths"]["/v1/callbacks"]["post"]
    assert set(callback["responses"]) == {"204", "401"}
    assert callback["responses"]["401"]["description"] == "Bad signature."
    assert set(_content(callback, "401")) == {PROBLEM_JSON}


def test_document_problems_leaves_its_input_alone() -> None:
    original = {
        "paths": {"/x": {"get": {"responses": {"422": {"description": "v"}}}}},
        "components": {"schemas": {}},
    }
    rewritten = document_problems(original)
    assert original["paths"]["/x"]["get"]["responses"] == {"422": {"description": "v"}}
    assert PROBLEM_JSON in rewritten["paths"]["/x"]["get"]["responses"]["422"]["content"]


async def test_the_errors_sent_match_the_documented_schemas() -> None:
    app = _app()
    schema = app.openapi()

    def validate(response: httpx.Response, operation: dict[str, Any]) -> None:
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        body_schema = _content(operation, str(response.status_code))[PROBLEM_JSON]["schema"]
        resolver = {"components": schema["components"], **body_schema}
        jsonschema.validate(response.json(), resolver)

    get = schema["paths"]["/v1/things/{thing_id}"]["get"]
    post = schema["paths"]["/v1/things"]["post"]
    reader = bearer_headers(SECRET, scopes=["things:read"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as client:
        validate(await client.get("/v1/things/1"), get)  # 401
        validate(await client.get("/v1/things/1", headers=reader), get)  # 404
        validate(await client.post("/v1/things", json={}, headers=reader), post)  # 403
        writer = bearer_headers(SECRET, scopes=["things:write"])
        validate(await client.post("/v1/things", json={"size": "x"}, headers=writer), post)
        broken = await client.post(
            "/v1/things",
            content=b"\xff\xfe{",  # not UTF-8: 400 (mere bad JSON is a 422)
            headers={**writer, "Content-Type": "application/json"},
        )
        assert broken.status_code == 400
        validate(broken, post)
