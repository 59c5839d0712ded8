"""protocol-svc over HTTP against the real database (migrated with Alembic)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from protocol_svc_testdata import BENEFICIARY, OPERATOR_A, OPERATOR_B, OPERATOR_BODY
from rn623_rulebook import get_layout

pytestmark = pytest.mark.integration

Headers = Callable[..., dict[str, str]]


async def register(client: httpx.AsyncClient, token: Headers, ans: str, **extra: Any) -> None:
    response = await client.put(
        f"/v1/operators/{ans}", json={**OPERATOR_BODY, **extra}, headers=token()
    )
    assert response.status_code in (200, 201), response.text


async def open_protocol(
    client: httpx.AsyncClient, headers: dict[str, str], ans: str = OPERATOR_A, **extra: Any
) -> httpx.Response:
    body = {"operator": ans, "channel": "phone", "beneficiary": BENEFICIARY, **extra}
    return await client.post("/v1/protocols", json=body, headers=headers)


async def outbox_types(database_url: str) -> Counter[str]:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT event_type FROM outbox"))).scalars().all()
    await engine.dispose()
    return Counter(rows)


async def test_a_protocol_is_issued_at_once_with_its_first_demand(
    app_client: httpx.AsyncClient, token: Headers, migrated_database: str
) -> None:
    await register(app_client, token, OPERATOR_A)
    response = await open_protocol(
        app_client,
        token(),
        demand={"demand_type": "assistance", "description": "Autorização de exame"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    number = body["protocol_number"]
    layout = get_layout("ans-default-20")
    assert layout.validate(number, ans_registry=OPERATOR_A, not_after=date(2025, 11, 21)) == []
    assert number.startswith("12345620251121")  # registry + local date (São Paulo)
    assert body["opened_at"] == "2025-11-21T10:00:00-03:00"
    # Fri 21 Nov + 5 business days = Fri 28 Nov, end of day in the operator's zone
    assert body["demand"]["due_at"] == "2025-11-28T23:59:59.999999-03:00"
    assert body["demand"]["deadline_rule_id"] == "rn623.deadline.assistance"

    got = await app_client.get(f"/v1/protocols/{number}", headers=token())
    assert got.status_code == 200
    detail = got.json()
    assert [d["demand_type"] for d in detail["demands"]] == ["assistance"]
    assert [h["status"] for h in detail["status_history"]] == ["open"]
    assert await outbox_types(migrated_database) == Counter(
        {"operator.upserted": 1, "protocol.opened": 1, "demand.registered": 1}
    )


async def test_retries_with_the_same_key_return_the_same_protocol_under_concurrency(
    app_client: httpx.AsyncClient, token: Headers, migrated_database: str
) -> None:
    await register(app_client, token, OPERATOR_A)
    headers = {**token(), "Idempotency-Key": "call-0001"}
    responses = await asyncio.gather(*(open_protocol(app_client, headers) for _ in range(20)))
    numbers = {r.json()["protocol_number"] for r in responses}
    assert len(numbers) == 1
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    # the contact center's own contact id works the same way
    first = await open_protocol(app_client, token(), contact_id="cc-42")
    again = await open_protocol(app_client, token(), contact_id="cc-42")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["protocol_number"] == again.json()["protocol_number"]
    # the same key for a different request is refused
    other = await open_protocol(app_client, headers, channel="chat")
    assert other.status_code == 422
    assert other.json()["type"].endswith("idempotency-key-reused")
    assert (await outbox_types(migrated_database))["protocol.opened"] == 2


async def test_fifty_concurrent_clients_get_unique_well_formed_numbers(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    await register(app_client, token, OPERATOR_A)
    headers = token(operators=(OPERATOR_A,), scopes=("protocols:write",))
    layout = get_layout("ans-default-20")

    async def client_run() -> list[str]:
        numbers = []
        for _ in range(200):
            response = await open_protocol(app_client, headers)
            assert response.status_code == 201, response.text
            numbers.append(response.json()["protocol_number"])
        return numbers

    results = await asyncio.gather(*(client_run() for _ in range(50)))
    numbers = [n for run in results for n in run]
    assert len(numbers) == 10_000
    assert len(set(numbers)) == 10_000
    assert all(layout.validate(n, ans_registry=OPERATOR_A) == [] for n in numbers)


async def test_a_token_for_one_operator_cannot_touch_another(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    await register(app_client, token, OPERATOR_A)
    await register(app_client, token, OPERATOR_B, municipality_ibge="3304557", uf="RJ")
    b_number = (await open_protocol(app_client, token(), ans=OPERATOR_B)).json()["protocol_number"]
    only_a = token(operators=(OPERATOR_A,), scopes=("protocols:write", "protocols:read"))

    assert (await open_protocol(app_client, only_a, ans=OPERATOR_B)).status_code == 403
    assert (await app_client.get(f"/v1/protocols/{b_number}", headers=only_a)).status_code == 404
    demand = {"demand_type": "assistance"}
    posted = await app_client.post(f"/v1/protocols/{b_number}/demands", json=demand, headers=only_a)
    assert posted.status_code == 404
    assert (await app_client.get(f"/v1/operators/{OPERATOR_B}", headers=only_a)).status_code == 403
    put = await app_client.put(f"/v1/operators/{OPERATOR_A}", json=OPERATOR_BODY, headers=only_a)
    assert put.status_code == 403  # registering operators needs the admin scope
    assert (await app_client.get(f"/v1/protocols/{b_number}")).status_code == 401


async def test_bad_input_names_the_field_and_never_echoes_personal_data(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    await register(app_client, token, OPERATOR_A)
    bad = {**BENEFICIARY, "cpf": "529.982.247-26"}
    response = await open_protocol(app_client, token(), beneficiary=bad)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["body.beneficiary.cpf"]
    assert "529" not in response.text
    unknown = await open_protocol(app_client, token(), ans="999999")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "body.operator"


async def test_a_nul_character_in_any_text_is_a_422_and_stores_nothing(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    """PostgreSQL cannot store NUL: found by schemathesis as a 500 (the e2e security run)."""
    await register(app_client, token, OPERATOR_A)
    listed = await app_client.get("/v1/protocols", params={"operator": OPERATOR_A}, headers=token())
    before = len(listed.json()["items"])
    for extra in (
        {"beneficiary": {**BENEFICIARY, "name": "Maria\u0000Silva"}},
        {"contact_id": "call\u00001"},
        {"demand": {"demand_type": "assistance", "description": "exame\u0000"}},
    ):
        response = await open_protocol(app_client, token(), **extra)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["type"] == "nul_character"
        assert "Maria" not in response.text
    renamed = await app_client.put(
        f"/v1/operators/{OPERATOR_A}", json={**OPERATOR_BODY, "name": "Op\u0000"}, headers=token()
    )
    assert renamed.status_code == 422, renamed.text
    listed = await app_client.get("/v1/protocols", params={"operator": OPERATOR_A}, headers=token())
    assert len(listed.json()["items"]) == before


async def test_an_exhausted_daily_sequence_is_a_clear_error_not_a_wrap(
    app_client: httpx.AsyncClient, token: Headers, migrated_database: str
) -> None:
    await register(app_client, token, OPERATOR_A)
    engine = create_async_engine(migrated_database)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO protocol_sequences (ans_registry, day, last_value)"
                " VALUES (:a, :d, 999999)"
            ),
            {"a": OPERATOR_A, "d": date(2025, 11, 21)},
        )
    await engine.dispose()
    response = await open_protocol(app_client, token())
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("sequence-exhausted")
    assert problem["suggested_layout"] == "ans-wide-22"
    assert "999999" in problem["detail"]
