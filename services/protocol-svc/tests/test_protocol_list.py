"""GET /v1/protocols: filters, keyset pagination and tenant scoping."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from protocol_svc_testdata import BENEFICIARY, OPERATOR_A, OPERATOR_B, OPERATOR_BODY
from rn623_events.cursors import encode_cursor

pytestmark = pytest.mark.integration

Headers = Callable[..., dict[str, str]]
OTHER = {**BENEFICIARY, "cpf": "111.444.777-35"}


async def test_listing_filters_pages_and_stays_within_the_callers_operators(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    await app_client.put(f"/v1/operators/{OPERATOR_A}", json=OPERATOR_BODY, headers=token())
    rio = {**OPERATOR_BODY, "uf": "RJ", "municipality_ibge": "3304557"}
    await app_client.put(f"/v1/operators/{OPERATOR_B}", json=rio, headers=token())
    numbers = []
    for operator, person in (
        (OPERATOR_A, BENEFICIARY),
        (OPERATOR_A, BENEFICIARY),
        (OPERATOR_A, OTHER),
        (OPERATOR_B, BENEFICIARY),
    ):
        body = {"operator": operator, "channel": "chat", "beneficiary": person}
        numbers.append(
            (await app_client.post("/v1/protocols", json=body, headers=token())).json()[
                "protocol_number"
            ]
        )

    only_a = token(operators=(OPERATOR_A,), scopes=("protocols:read",))
    mine = (await app_client.get("/v1/protocols", headers=only_a)).json()
    assert {p["protocol_number"] for p in mine["items"]} == set(numbers[:3])  # never B's
    by_person = await app_client.get(
        "/v1/protocols", params={"cpf": "529.982.247-25"}, headers=only_a
    )
    assert {p["protocol_number"] for p in by_person.json()["items"]} == set(numbers[:2])
    assert (
        await app_client.get("/v1/protocols", params={"operator": OPERATOR_B}, headers=only_a)
    ).status_code == 403

    first = (await app_client.get("/v1/protocols", params={"limit": 2}, headers=only_a)).json()
    second = (
        await app_client.get(
            "/v1/protocols", params={"limit": 2, "cursor": first["next_cursor"]}, headers=only_a
        )
    ).json()
    paged = [p["protocol_number"] for p in first["items"] + second["items"]]
    assert sorted(paged) == sorted(numbers[:3])
    assert len(set(paged)) == 3
    assert second["next_cursor"] is None

    assert (
        await app_client.get("/v1/protocols", params={"status": "answered"}, headers=only_a)
    ).json()["items"] == []
    naive = encode_cursor(("2025-11-21T10:00:00", "12345620251121000001"))  # no offset
    for cursor in ("nonsense!", naive):
        bad = await app_client.get("/v1/protocols", params={"cursor": cursor}, headers=only_a)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "query.cursor"
    wrong_cpf = await app_client.get(
        "/v1/protocols", params={"cpf": "529.982.247-26"}, headers=only_a
    )
    assert wrong_cpf.status_code == 422
    # the problem names the field but never echoes the CPF (the random trace_id may hold
    # any three digits, so the CPF is looked for whole, bare and masked)
    assert "529.982.247-26" not in wrong_cpf.text
    assert "52998224726" not in wrong_cpf.text
