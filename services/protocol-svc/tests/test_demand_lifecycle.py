"""Answers, re-analysis, interactions and complaints over HTTP (real database)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from protocol_svc_testdata import BENEFICIARY, OPERATOR_A, OPERATOR_B, OPERATOR_BODY

pytestmark = pytest.mark.integration

Headers = Callable[..., dict[str, str]]


async def protocol_with_demand(client: httpx.AsyncClient, token: Headers) -> tuple[str, str]:
    """Register operator A and open a protocol with an assistance demand."""
    put = await client.put(f"/v1/operators/{OPERATOR_A}", json=OPERATOR_BODY, headers=token())
    assert put.status_code in (200, 201)
    body = {
        "operator": OPERATOR_A,
        "channel": "phone",
        "beneficiary": BENEFICIARY,
        "demand": {"demand_type": "assistance", "description": "Ressonância magnética"},
    }
    created = (await client.post("/v1/protocols", json=body, headers=token())).json()
    return created["protocol_number"], created["demand"]["id"]


async def event_counts(database_url: str) -> Counter[str]:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT event_type FROM outbox"))).scalars().all()
    await engine.dispose()
    return Counter(rows)


@pytest.mark.parametrize(
    ("answer", "field", "rule"),
    [
        (
            {"outcome": "informed", "text": "Sua solicitação está em análise."},
            "body.text",
            "generic_answer",
        ),
        ({"outcome": "informed", "text": "EM PROCESSAMENTO"}, "body.text", "generic_answer"),
        (
            {"outcome": "denied", "text": "Procedimento negado por falta de cobertura contratual."},
            "body.legal_basis",
            "missing_legal_basis",
        ),
    ],
)
async def test_inconclusive_answers_are_refused_naming_the_rule(
    app_client: httpx.AsyncClient, token: Headers, answer: dict[str, Any], field: str, rule: str
) -> None:
    number, demand_id = await protocol_with_demand(app_client, token)
    response = await app_client.post(
        f"/v1/protocols/{number}/demands/{demand_id}/answer", json=answer, headers=token()
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("inconclusive-answer")
    assert {"field": field, "type": rule} in [
        {"field": e["field"], "type": e["type"]} for e in response.json()["errors"]
    ]


async def test_a_denial_its_reanalysis_and_the_events(
    app_client: httpx.AsyncClient, token: Headers, migrated_database: str
) -> None:
    number, demand_id = await protocol_with_demand(app_client, token)
    denial = {
        "outcome": "denied",
        "text": "O exame solicitado não tem cobertura no seu plano ambulatorial.",
        "legal_basis": "Cláusula 7.2 do contrato; Lei 9.656/1998, art. 10",
        "answered_by": "agent-17",
    }
    url = f"/v1/protocols/{number}/demands/{demand_id}"
    answered = await app_client.post(f"{url}/answer", json=denial, headers=token())
    assert answered.status_code == 201, answered.text
    assert answered.json()["reanalysis_allowed"] is True
    again = await app_client.post(f"{url}/answer", json=denial, headers=token())
    assert again.status_code == 409

    reanalysis = await app_client.post(f"{url}/reanalysis", json={}, headers=token())
    assert reanalysis.status_code == 201, reanalysis.text
    new_demand = reanalysis.json()
    assert new_demand["demand_type"] == "reanalysis"
    # Fri 21 Nov 2025 + 7 business days: 24, 25, 26, 27, 28 Nov, 1, 2 Dec
    assert new_demand["due_at"] == "2025-12-02T23:59:59.999999-03:00"
    assert new_demand["deadline_rule_id"] == "rn623.deadline.reanalysis"

    detail = (await app_client.get(f"/v1/protocols/{number}", headers=token())).json()
    assert [a["outcome"] for a in detail["answers"]] == ["denied"]
    assert [d["status"] for d in detail["demands"]] == ["answered", "open"]
    assert [h["reason"] for h in detail["status_history"]] == [
        "opened",
        "demand answered",
        "re-analysis requested",
    ]
    counts = await event_counts(migrated_database)
    assert counts["demand.answered"] == 1
    assert counts["demand.reanalysis_requested"] == 1
    assert counts["demand.registered"] == 2  # the first demand and the re-analysis


async def test_only_a_denial_or_partial_authorization_can_be_reanalysed(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    number, demand_id = await protocol_with_demand(app_client, token)
    url = f"/v1/protocols/{number}/demands/{demand_id}"
    before = await app_client.post(f"{url}/reanalysis", json={}, headers=token())
    assert before.status_code == 409  # nothing answered yet
    authorized = {
        "outcome": "authorized",
        "text": "Exame autorizado; agende no laboratório credenciado com a guia 778899.",
    }
    assert (
        await app_client.post(f"{url}/answer", json=authorized, headers=token())
    ).status_code == 201
    after = await app_client.post(f"{url}/reanalysis", json={}, headers=token())
    assert after.status_code == 409
    assert after.json()["type"].endswith("reanalysis-not-allowed")


async def test_interactions_form_the_copy_of_the_attendance(
    app_client: httpx.AsyncClient, token: Headers, migrated_database: str
) -> None:
    number, _ = await protocol_with_demand(app_client, token)
    url = f"/v1/protocols/{number}/interactions"
    message = {"kind": "message", "author": "agent", "content": "Recebemos o seu pedido."}
    recording = {
        "kind": "recording",
        "recording_uri": "s3://calls/2025/11/21/abc.wav",
        "duration_seconds": 312,
    }
    assert (await app_client.post(url, json=message, headers=token())).status_code == 201
    assert (await app_client.post(url, json=recording, headers=token())).status_code == 201
    missing = await app_client.post(url, json={"kind": "recording"}, headers=token())
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["body.recording_uri"]
    detail = (await app_client.get(f"/v1/protocols/{number}", headers=token())).json()
    assert [i["kind"] for i in detail["interactions"]] == ["message", "recording"]
    assert (await event_counts(migrated_database))["interaction.recorded"] == 2


async def test_complaints_link_to_a_protocol_or_open_one(
    app_client: httpx.AsyncClient, token: Headers, migrated_database: str
) -> None:
    number, demand_id = await protocol_with_demand(app_client, token)
    nip = {
        "operator": OPERATOR_A,
        "source": "nip",
        "external_reference": "NIP-2025-000123",
        "protocol_number": number,
        "demand_id": demand_id,
    }
    linked = await app_client.post("/v1/complaints", json=nip, headers=token())
    assert linked.status_code == 201, linked.text
    assert linked.json()["protocol_number"] == number

    procon = {"operator": OPERATOR_A, "source": "procon", "beneficiary": BENEFICIARY}
    opened = await app_client.post("/v1/complaints", json=procon, headers=token())
    assert opened.status_code == 201, opened.text
    assert opened.json()["protocol_number"] != number
    neither = await app_client.post(
        "/v1/complaints", json={"operator": OPERATOR_A, "source": "sac"}, headers=token()
    )
    assert neither.status_code == 422

    operator_b = {**OPERATOR_BODY, "uf": "RJ", "municipality_ibge": "3304557"}
    await app_client.put(f"/v1/operators/{OPERATOR_B}", json=operator_b, headers=token())
    only_b = token(operators=(OPERATOR_B,), scopes=("protocols:write",))
    foreign = await app_client.post(
        "/v1/complaints", json={**nip, "operator": OPERATOR_B}, headers=only_b
    )
    assert foreign.status_code == 404  # B can neither see nor use A's protocol
    counts = await event_counts(migrated_database)
    assert counts["complaint.registered"] == 2
    assert counts["protocol.opened"] == 2


async def test_a_complaint_counts_under_the_operators_coverage(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    number, _ = await protocol_with_demand(app_client, token)  # a medical operator
    nip = {"operator": OPERATOR_A, "source": "nip", "protocol_number": number}
    implied = await app_client.post("/v1/complaints", json=nip, headers=token())
    assert implied.json()["coverage"] == "medical"
    wrong = await app_client.post(
        "/v1/complaints", json={**nip, "coverage": "dental"}, headers=token()
    )
    assert wrong.status_code == 422
    assert [e["field"] for e in wrong.json()["errors"]] == ["body.coverage"]

    both = {**OPERATOR_BODY, "segment": "both", "uf": "RJ", "municipality_ibge": "3304557"}
    await app_client.put(f"/v1/operators/{OPERATOR_B}", json=both, headers=token())
    for coverage in (None, "dental"):
        body = {"operator": OPERATOR_B, "source": "nip", "beneficiary": BENEFICIARY}
        if coverage is not None:
            body["coverage"] = coverage
        created = await app_client.post("/v1/complaints", json=body, headers=token())
        assert created.status_code == 201, created.text
        assert created.json()["coverage"] == coverage  # unknown unless given
