"""The HTTP API: retention, legal holds, access requests, certificates, purges, tenants."""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from retention_svc import domain, models
from retention_svc.runtime import Runtime
from retention_svc_testdata import BENEFICIARY_SECRET, OPERATOR_A, OPERATOR_B
from rn623_events.clock import ManualClock
from rn623_events.db import outbox_table

pytestmark = pytest.mark.integration

Headers = Callable[..., dict[str, str]]
CPF, OTHER_CPF, BAD_CPF = "52998224725", "11144477735", "52998224724"
READ, WRITE, RECORDS = "retention:read", "retention:write", "records:read"
PAST = datetime(2025, 8, 1, 12, tzinfo=UTC)  # before the clock (21 Nov 2025 13:00 UTC)
FUTURE = datetime(2027, 11, 21, 12, tzinfo=UTC)
_numbers = itertools.count(1)


def number(operator: str = OPERATOR_A) -> str:
    """A fresh 20-digit protocol number of ``operator``."""
    return f"{operator}20251121{next(_numbers):06d}"


def key_of(operator: str, cpf: str | None, card: str | None = None) -> str | None:
    """The beneficiary pseudonym the consumers store for a CPF or card number."""
    return domain.beneficiary_key(BENEFICIARY_SECRET, operator, cpf=cpf, card_number=card)


async def execute(runtime: Runtime, *statements: Any) -> None:
    """Run statements in one committed unit of work."""
    async with runtime.uow() as uow:
        for statement in statements:
            await uow.session.execute(statement)
        await uow.commit()


async def add_protocol(
    runtime: Runtime,
    operator: str = OPERATOR_A,
    *,
    cpf: str | None = CPF,
    card: str | None = None,
    timezone: str = "America/Sao_Paulo",
    schedule: dict[str, datetime | None] | None = None,
    **entry: Any,
) -> str:
    """Insert a protocol and its schedule (by default: two classes past their retention)."""
    protocol, now = number(operator), runtime.clock.now()
    ends = schedule if schedule is not None else {"recording": PAST, "protocol_record": PAST}
    facts = {"protocol_number": protocol, "ans_registry": operator, "updated_at": now}
    entry = {"status": "retained", "purge_request_id": None, **entry}
    rows = [
        {**facts, **entry, "record_class": record_class, "retain_until": retain_until}
        for record_class, retain_until in ends.items()
    ]
    await execute(
        runtime,
        models.protocols.insert().values(
            **facts,
            timezone=timezone,
            beneficiary_key=key_of(operator, cpf, card),
            contact_at=datetime(2025, 5, 1, 15, tzinfo=UTC),
        ),
        models.schedules.insert().values(rows),
    )
    return protocol


async def post(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    """POST a JSON body."""
    return await client.post(path, json=body, headers=headers)


async def place(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """POST /v1/legal-holds (201 expected); returns the hold."""
    response = await client.post(
        "/v1/legal-holds",
        json={"operator": OPERATOR_A, "reason": "ação judicial", **body},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def get_json(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
) -> Any:
    """GET ``path`` (200 expected) and return the body."""
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def ids(page: dict[str, Any]) -> list[str]:
    """The ids of a page's items."""
    return [item["id"] for item in page["items"]]


def assert_field_problem(response: httpx.Response, field: str) -> None:
    """A 422 problem+json naming ``field``."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [error["field"] for error in response.json()["errors"]], response.text


# ---- retention and holds -------------------------------------------------------------------


async def test_retention_shows_the_schedule_and_the_holds_covering_it(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime, clock: ManualClock
) -> None:
    protocol = await add_protocol(
        runtime, schedule={"recording": PAST, "protocol_record": None}, timezone="America/Manaus"
    )
    purge_id = uuid.uuid4()
    purged = await add_protocol(
        runtime, schedule={"notification": PAST}, status="disposed", purge_request_id=purge_id
    )
    other_beneficiary = await add_protocol(runtime, cpf=OTHER_CPF)
    by_card = await add_protocol(runtime, cpf=None, card="0001234")
    headers = token(operators=[OPERATOR_A], scopes=[READ, WRITE], subject="legal-team")

    body = await get_json(app_client, "/v1/retention", headers, protocol=protocol)
    assert body == {
        **body,
        "protocol_number": protocol,
        "operator": OPERATOR_A,
        "timezone": "America/Manaus",
        "contact_at": "2025-05-01T11:00:00-04:00",  # Manaus time
        "complaint_at": None,
        "beneficiary_known": True,
        "held": False,
        "hold_ids": [],
    }
    assert [tuple(entry.values()) for entry in body["entries"]] == [
        ("protocol_record", None, "retained", None, False, []),
        ("recording", "2025-08-01T08:00:00-04:00", "retained", None, False, []),
    ]
    assert list(body["entries"][0]) == [
        "record_class", "retain_until", "status", "purge_request_id", "held", "hold_ids"
    ]  # fmt: skip
    assert CPF not in str(body)
    assert key_of(OPERATOR_A, CPF) not in str(body)
    disposed = (await get_json(app_client, "/v1/retention", headers, protocol=purged))["entries"]
    assert (disposed[0]["status"], disposed[0]["purge_request_id"]) == ("disposed", str(purge_id))

    by_cpf = await place(
        app_client, headers, scope="beneficiary", beneficiary={"cpf": "529.982.247-25"}
    )
    clock.advance(timedelta(seconds=1))  # hold ids come in the order the holds were placed
    on_protocol = await place(app_client, headers, scope="protocol", protocol_number=protocol)
    # another operator's hold covers nothing of A
    await place(app_client, token(), operator=OPERATOR_B, scope="operator")
    assert by_cpf["has_beneficiary"] is True
    assert CPF not in str(by_cpf)
    assert "beneficiary_key" not in by_cpf

    body = await get_json(app_client, "/v1/retention", headers, protocol=protocol)
    expected = [by_cpf["id"], on_protocol["id"]]
    assert (body["held"], body["hold_ids"]) == (True, expected)
    assert all(entry["held"] and entry["hold_ids"] == expected for entry in body["entries"])
    other = await get_json(app_client, "/v1/retention", headers, protocol=other_beneficiary)
    assert other["hold_ids"] == []
    card_hold = await place(
        app_client, headers, scope="beneficiary", beneficiary={"card_number": "0001234"}
    )
    carded = await get_json(app_client, "/v1/retention", headers, protocol=by_card)
    assert carded["hold_ids"] == [card_hold["id"]]

    whole = await place(app_client, headers, scope="operator")
    other = await get_json(app_client, "/v1/retention", headers, protocol=other_beneficiary)
    assert other["hold_ids"] == [whole["id"]]
    assert other["entries"][0]["held"] is True

    unknown = await app_client.get("/v1/retention", params={"protocol": number()}, headers=headers)
    assert unknown.status_code == 404
    assert_field_problem(
        await app_client.get("/v1/retention", params={"protocol": "12"}, headers=headers),
        "query.protocol",
    )


async def test_holds_are_placed_listed_released_once_and_audited(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime, clock: ManualClock
) -> None:
    protocol = await add_protocol(runtime)
    headers = token(operators=[OPERATOR_A], scopes=[READ, WRITE], subject="legal-team")
    response = await post(
        app_client,
        "/v1/legal-holds",
        headers,
        operator=OPERATOR_A,
        scope="protocol",
        protocol_number=protocol,
        reason="processo 0001",
    )
    assert response.status_code == 201, response.text
    hold = response.json()
    assert response.headers["location"] == f"/v1/legal-holds/{hold['id']}"
    assert hold == {
        "id": hold["id"],
        "operator": OPERATOR_A,
        "scope": "protocol",
        "protocol_number": protocol,
        "has_beneficiary": False,
        "reason": "processo 0001",
        "placed_by": "legal-team",
        "placed_at": "2025-11-21T13:00:00Z",
        "released_by": None,
        "released_at": None,
        "release_reason": None,
        "active": True,
    }
    clock.advance(timedelta(hours=1))
    second = await place(app_client, headers, scope="operator")
    clock.advance(timedelta(hours=1))
    third = await place(app_client, headers, scope="operator")

    holds = functools.partial(get_json, app_client, "/v1/legal-holds", headers)
    listed = await holds(limit=2)
    assert ids(listed) == [third["id"], second["id"]]  # newest first
    rest = await holds(limit=2, cursor=listed["next_cursor"])
    assert (ids(rest), rest["next_cursor"]) == ([hold["id"]], None)
    assert ids(await holds(protocol=protocol)) == [hold["id"]]

    clock.advance(timedelta(minutes=5))
    path = f"/v1/legal-holds/{hold['id']}"
    response = await app_client.delete(path, params={"reason": "acordo"}, headers=headers)
    assert response.status_code == 200, response.text
    released = response.json()
    assert released == {
        **hold,
        "released_by": "legal-team",
        "released_at": "2025-11-21T15:05:00Z",
        "release_reason": "acordo",
        "active": False,
    }
    again = await app_client.delete(path, params={"reason": "de novo"}, headers=headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["type"] == "urn:rn623:problem:hold-already-released"

    detail = await get_json(app_client, path, headers)
    assert detail == {**released, "audit": detail["audit"]}
    assert [tuple(change.values()) for change in detail["audit"]] == [
        ("placed", "legal-team", "2025-11-21T13:00:00Z", "processo 0001"),
        ("released", "legal-team", "2025-11-21T15:05:00Z", "acordo"),
    ]
    assert ids(await holds(active="true")) == [third["id"], second["id"]]
    assert ids(await holds(active="false")) == [hold["id"]]
    async with runtime.sessions() as session:
        actions = (await session.execute(sa.select(models.hold_audit.c.action))).scalars().all()
    assert sorted(actions) == ["placed", "placed", "placed", "released"]  # none from the 409

    assert_field_problem(await app_client.delete(path, headers=headers), "query.reason")
    blank = await app_client.delete(path, params={"reason": "  "}, headers=headers)
    assert_field_problem(blank, "query.reason")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "beneficiary", "beneficiary": {"cpf": BAD_CPF}}, "body.beneficiary.cpf"),
        ({"scope": "beneficiary", "beneficiary": {"cpf": "5299822472"}}, "body.beneficiary.cpf"),
        ({"scope": "beneficiary", "beneficiary": {}}, "body.beneficiary"),
        ({"scope": "beneficiary"}, "body.beneficiary"),
        ({"scope": "protocol"}, "body.protocol_number"),
        ({"scope": "protocol", "protocol_number": "123"}, "body.protocol_number"),
        ({"scope": "operator", "beneficiary": {"cpf": CPF}}, "body.beneficiary"),
        ({"scope": "operator", "protocol_number": "1" * 20}, "body.protocol_number"),
        ({"scope": "everything"}, "body.scope"),
        ({"scope": "operator", "reason": ""}, "body.reason"),
        ({"scope": "operator", "reason": "x" * 1001}, "body.reason"),
        ({"scope": "operator", "operator": "12345"}, "body.operator"),
    ],
)
async def test_a_bad_hold_is_a_problem_naming_the_field(
    app_client: httpx.AsyncClient, token: Headers, body: dict[str, Any], field: str
) -> None:
    body = {"operator": OPERATOR_A, "reason": "r", **body}
    response = await post(app_client, "/v1/legal-holds", token(), **body)
    assert_field_problem(response, field)
    assert BAD_CPF not in response.text
    assert CPF not in response.text


async def test_a_nul_character_in_a_reason_is_a_422_not_a_crash(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    """PostgreSQL cannot store NUL: found by schemathesis as a 500 (the e2e security run)."""
    refused = await post(
        app_client,
        "/v1/legal-holds",
        token(),
        operator=OPERATOR_A,
        scope="operator",
        reason="a\x00",
    )
    assert_field_problem(refused, "request")
    hold = await place(app_client, token(), scope="operator")
    released = await app_client.delete(
        f"/v1/legal-holds/{hold['id']}", params={"reason": "fim\x00"}, headers=token()
    )
    assert_field_problem(released, "request")
    still = await get_json(app_client, f"/v1/legal-holds/{hold['id']}", token())
    assert still["active"] is True


async def test_holds_and_access_requests_refuse_another_operators_protocol(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    theirs = await add_protocol(runtime, OPERATOR_B)
    hold = {"scope": "protocol", "reason": "r"}
    for path, body in (("/v1/legal-holds", hold), ("/v1/access-requests", {})):
        response = await post(
            app_client, path, token(), operator=OPERATOR_A, protocol_number=theirs, **body
        )
        assert_field_problem(response, "body.protocol_number")


async def test_another_operators_number_is_refused_alike_known_or_not(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    known, unknown = await add_protocol(runtime, OPERATOR_B), number(OPERATOR_B)
    hold = {"scope": "protocol", "reason": "r"}
    for path, body in (("/v1/legal-holds", hold), ("/v1/access-requests", {})):
        answers = [
            await post(app_client, path, token(), operator=OPERATOR_A, protocol_number=n, **body)
            for n in (known, unknown)
        ]
        assert [a.status_code for a in answers] == [422, 422]
        assert answers[0].json()["errors"] == answers[1].json()["errors"]


# ---- purges --------------------------------------------------------------------------------


async def test_the_preview_lists_what_is_due_and_not_held(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    first = await add_protocol(runtime, schedule={"recording": PAST, "protocol_record": FUTURE})
    later = {"recording": PAST + timedelta(days=1), "complaint_linked": PAST + timedelta(days=2)}
    second = await add_protocol(runtime, cpf=OTHER_CPF, schedule=later)
    await add_protocol(runtime, schedule={"recording": None})  # not known yet
    await add_protocol(runtime, schedule={"recording": PAST}, status="purge_requested")
    await add_protocol(runtime, OPERATOR_B)
    headers = token(operators=[OPERATOR_A], scopes=[READ])
    preview = functools.partial(
        get_json, app_client, "/v1/purges/preview", headers, operator=OPERATOR_A
    )

    body = await preview()
    assert body == {**body, "operator": OPERATOR_A, "as_of": "2025-11-21T13:00:00Z", "total": 3}
    assert body["next_cursor"] is None
    assert [tuple(item.values()) for item in body["items"]] == [
        (first, "recording", "2025-08-01T12:00:00Z", ["protocol-svc"]),
        (second, "recording", "2025-08-02T12:00:00Z", ["protocol-svc"]),
        (
            second,
            "complaint_linked",
            "2025-08-03T12:00:00Z",
            ["protocol-svc", "notification-svc"],
        ),
    ]
    page = await preview(limit=2)
    assert (page["total"], len(page["items"])) == (3, 2)
    rest = await preview(limit=2, cursor=page["next_cursor"])
    assert page["items"] + rest["items"] == body["items"]
    earlier = await preview(as_of="2025-08-02T00:00:00-03:00")
    assert [item["protocol_number"] for item in earlier["items"]] == [first]

    await place(app_client, token(), scope="protocol", protocol_number=second)
    held = await preview()
    assert held["total"] == 1
    assert [item["protocol_number"] for item in held["items"]] == [first]
    await place(app_client, token(), scope="operator")
    assert await preview() == {**body, "total": 0, "items": []}

    for params, field in (
        ({"operator": OPERATOR_A, "as_of": "2025-11-21T10:00:00"}, "query.as_of"),  # naive
        ({"operator": OPERATOR_A, "as_of": "yesterday"}, "query.as_of"),
        ({}, "query.operator"),
        ({"operator": OPERATOR_A, "cursor": "bm90IGEgY3Vyc29y"}, "query.cursor"),
        ({"operator": OPERATOR_A, "limit": 201}, "query.limit"),
    ):
        response = await app_client.get("/v1/purges/preview", params=params, headers=headers)
        assert_field_problem(response, field)


async def test_the_preview_skips_the_records_of_a_held_beneficiary(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    await add_protocol(runtime)
    other = await add_protocol(runtime, cpf=OTHER_CPF)
    await place(app_client, token(), scope="beneficiary", beneficiary={"cpf": CPF})
    body = await get_json(app_client, "/v1/purges/preview", token(), operator=OPERATOR_A)
    assert body["total"] == 2
    assert {item["protocol_number"] for item in body["items"]} == {other}


async def test_purge_requests_show_who_confirmed_and_who_is_awaited(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    pending, disposed = uuid.uuid4(), uuid.uuid4()
    owners, classes = ["notification-svc", "protocol-svc"], ["complaint_linked"]
    requests = [
        {
            "id": request_id,
            "protocol_number": number(),
            "ans_registry": OPERATOR_A,
            "record_classes": classes,
            "owners": owners,
            "requested_at": at,
            "disposed_at": done,
        }
        for request_id, at, done in ((pending, PAST, None), (disposed, FUTURE, FUTURE))
    ]
    confirmations = [
        {
            "purge_request_id": request_id,
            "owner": owner,
            "record_classes": classes,
            "purged_at": PAST,
            "anonymized": False,
            "received_at": PAST,
        }
        for request_id, owner in (
            (pending, "protocol-svc"),
            (disposed, "protocol-svc"),
            (disposed, "notification-svc"),
        )
    ]
    await execute(
        runtime,
        models.purge_requests.insert().values(requests),
        models.purge_confirmations.insert().values(confirmations),
    )
    purges = functools.partial(get_json, app_client, "/v1/purges", token(scopes=[READ]))
    assert ids(await purges()) == [str(disposed), str(pending)]  # newest first
    waiting = (await purges(status="pending"))["items"]
    assert [(p["id"], p["status"], p["disposed_at"]) for p in waiting] == [
        (str(pending), "pending", None)
    ]
    assert (waiting[0]["confirmed_by"], waiting[0]["waiting_for"]) == (
        ["protocol-svc"],
        ["notification-svc"],
    )
    done = (await purges(status="disposed"))["items"]
    assert (done[0]["confirmed_by"], done[0]["waiting_for"]) == (owners, [])
    assert done[0]["disposed_at"] == "2027-11-21T12:00:00Z"
    assert_field_problem(
        await app_client.get("/v1/purges", params={"status": "open"}, headers=token()),
        "query.status",
    )


# ---- access requests -----------------------------------------------------------------------


async def test_an_access_request_is_due_in_72_hours_and_its_bundle_comes_once_fulfilled(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    protocol = await add_protocol(runtime, timezone="America/Manaus")
    headers = token(operators=[OPERATOR_A], scopes=[READ, WRITE, RECORDS], subject="sac")
    response = await post(
        app_client, "/v1/access-requests", headers, operator=OPERATOR_A, protocol_number=protocol
    )
    assert response.status_code == 202, response.text
    opened = response.json()
    request_id = opened["id"]
    assert response.headers["location"] == f"/v1/access-requests/{request_id}"
    assert opened == {
        **opened,
        "operator": OPERATOR_A,
        "protocol_number": protocol,
        "scope": "beneficiary",
        "status": "open",
        "requested_by": "sac",
        "requested_at": "2025-11-21T09:00:00-04:00",  # Manaus time
        "due_at": "2025-11-24T09:00:00-04:00",  # exactly 72 hours later
        "rule_id": "rn623.deadline.records_access",
        "fulfilled_at": None,
        "attempts": 0,
        "last_error": None,
        "bundle_url": None,
    }

    async with runtime.sessions() as session:
        events = await session.execute(
            sa.select(outbox_table).where(outbox_table.c.event_type == "access_request.opened")
        )
        event = events.mappings().one()
    assert (event["topic"], event["key"]) == ("retention.events", protocol)
    payload = event["payload"]
    assert (payload["request_id"], payload["ans_registry"]) == (request_id, OPERATOR_A)
    assert datetime.fromisoformat(payload["due_at"]) == datetime(2025, 11, 24, 13, tzinfo=UTC)
    assert payload["rule_id"] == "rn623.deadline.records_access"

    path = f"/v1/access-requests/{request_id}"
    assert await get_json(app_client, path, headers) == opened
    still_open = await app_client.get(f"{path}/bundle", headers=headers)
    assert still_open.status_code == 409
    assert still_open.json()["type"] == "urn:rn623:problem:access-request-open"

    bundle = {"protocols": [{"protocol_number": protocol, "beneficiary": {"cpf": CPF}}]}
    await execute(
        runtime,
        sa.update(models.access_requests)
        .where(models.access_requests.c.id == uuid.UUID(request_id))
        .values(status="fulfilled", bundle=bundle, fulfilled_at=FUTURE, attempts=1),
    )
    fulfilled = await get_json(app_client, path, headers)
    assert fulfilled == {
        **opened,
        "status": "fulfilled",
        "attempts": 1,
        "fulfilled_at": "2027-11-21T08:00:00-04:00",
        "bundle_url": f"{path}/bundle",
    }
    assert CPF not in str(fulfilled)  # personal data only through the bundle
    got = await app_client.get(f"{path}/bundle", headers=headers)
    assert (got.status_code, got.json()) == (200, bundle)
    assert got.headers["cache-control"] == "no-store"

    requests = functools.partial(get_json, app_client, "/v1/access-requests", headers)
    assert ids(await requests(status="fulfilled")) == [request_id]
    assert ids(await requests(status="open")) == []
    assert ids(await requests(protocol=protocol)) == [request_id]


async def test_an_access_request_on_an_unknown_protocol_uses_the_default_zone(
    app_client: httpx.AsyncClient, token: Headers, clock: ManualClock
) -> None:
    headers = token(operators=[OPERATOR_A], scopes=[READ, WRITE])
    opened = []
    for _ in range(3):
        response = await post(
            app_client,
            "/v1/access-requests",
            headers,
            operator=OPERATOR_A,
            protocol_number=number(),
            scope="protocol",
        )
        assert response.status_code == 202, response.text
        opened.append(response.json())
        clock.advance(timedelta(minutes=1))
    assert opened[-1]["due_at"] == "2025-11-24T10:02:00-03:00"
    assert opened[-1]["scope"] == "protocol"
    requests = functools.partial(get_json, app_client, "/v1/access-requests", headers)
    page = await requests(limit=2)
    rest = await requests(limit=2, cursor=page["next_cursor"])
    assert ids(page) + ids(rest) == [request["id"] for request in reversed(opened)]
    for body, field in (
        ({"operator": OPERATOR_A}, "body.protocol_number"),
        ({"operator": OPERATOR_A, "protocol_number": "1" * 20, "scope": "all"}, "body.scope"),
        ({"operator": "1234567", "protocol_number": "1" * 20}, "body.operator"),
    ):
        response = await post(app_client, "/v1/access-requests", headers, **body)
        assert_field_problem(response, field)
    listing = await app_client.get("/v1/access-requests", params={"status": "x"}, headers=headers)
    assert_field_problem(listing, "query.status")


# ---- disposal certificates -----------------------------------------------------------------


async def add_chain(runtime: Runtime, operator: str, count: int) -> list[dict[str, Any]]:
    """Insert a valid chain of ``count`` certificates and its head."""
    chain: list[dict[str, Any]] = []
    previous = domain.GENESIS_HASH
    confirmation = {"owner": "protocol-svc", "record_classes": ["recording"]}
    for sequence in range(1, count + 1):
        certificate: dict[str, Any] = {
            "id": uuid.uuid4(),
            "ans_registry": operator,
            "sequence": sequence,
            "purge_request_id": uuid.uuid4(),
            "protocol_number": number(operator),
            "record_classes": ["recording"],
            "confirmations": [
                {**confirmation, "purged_at": "2025-11-20T12:00:00+00:00", "anonymized": False}
            ],
            "requested_at": PAST,
            "disposed_at": PAST + timedelta(minutes=sequence),
            "previous_hash": previous,
        }
        certificate["hash"] = previous = domain.certificate_hash(certificate)
        chain.append(certificate)
    head = {"ans_registry": operator, "sequence": count, "hash": previous}
    await execute(
        runtime,
        models.certificates.insert().values(chain),
        models.chain_heads.insert().values(head),
    )
    return chain


async def test_certificates_are_listed_in_chain_order_and_the_chain_verifies(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    chain = await add_chain(runtime, OPERATOR_A, 3)
    theirs = await add_chain(runtime, OPERATOR_B, 1)
    headers = token(operators=[OPERATOR_A], scopes=[READ])
    certificates = functools.partial(get_json, app_client, "/v1/disposal-certificates", headers)

    listed = await certificates(limit=2)
    rest = await certificates(limit=2, cursor=listed["next_cursor"])
    assert rest["next_cursor"] is None
    items = listed["items"] + rest["items"]
    assert [(c["operator"], c["sequence"]) for c in items] == [(OPERATOR_A, n) for n in (1, 2, 3)]
    assert ids({"items": items}) == [str(c["id"]) for c in chain]
    assert items[1]["previous_hash"] == chain[0]["hash"] == items[0]["hash"]
    assert items[0]["confirmations"] == chain[0]["confirmations"]
    assert items[0]["disposed_at"] == "2025-08-01T12:01:00Z"
    one = await get_json(app_client, f"/v1/disposal-certificates/{chain[1]['id']}", headers)
    assert one == items[1]
    assert ids(await certificates(protocol=chain[2]["protocol_number"])) == [str(chain[2]["id"])]

    verify = functools.partial(get_json, app_client, "/v1/disposal-certificates/verify")
    assert await verify(headers, operator=OPERATOR_A) == {
        "operator": OPERATOR_A,
        "certificates": 3,
        "valid": True,
        "broken_at_sequence": None,
        "problem": None,
        "head_sequence": 3,
    }
    empty = await verify(token(), operator="000001")
    assert (empty["valid"], empty["certificates"], empty["head_sequence"]) == (True, 0, None)

    await execute(
        runtime,
        sa.update(models.certificates)
        .where(models.certificates.c.id == chain[1]["id"])
        .values(record_classes=["recording", "protocol_record"]),
    )
    tampered = await verify(headers, operator=OPERATOR_A)
    assert tampered == {
        **tampered,
        "certificates": 3,
        "valid": False,
        "broken_at_sequence": 2,
        "problem": "hash_mismatch",
    }
    assert (await verify(token(), operator=OPERATOR_B))["valid"] is True  # chains are apart
    await execute(  # a certificate removed from the end: only the head tells
        runtime, sa.delete(models.certificates).where(models.certificates.c.id == theirs[0]["id"])
    )
    truncated = await verify(token(), operator=OPERATOR_B)
    assert (truncated["valid"], truncated["certificates"], truncated["head_sequence"]) == (
        False,
        0,
        1,
    )
    assert (truncated["broken_at_sequence"], truncated["problem"]) == (1, "head_sequence_mismatch")
    assert_field_problem(
        await app_client.get("/v1/disposal-certificates/verify", headers=headers),
        "query.operator",
    )


# ---- tenants and scopes --------------------------------------------------------------------


async def test_a_tenant_never_sees_or_changes_another_tenants_data(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    protocol = await add_protocol(runtime)
    hold = await place(app_client, token(), scope="protocol", protocol_number=protocol)
    access = {"operator": OPERATOR_A, "protocol_number": protocol}
    request_id = (await post(app_client, "/v1/access-requests", token(), **access)).json()["id"]
    chain = await add_chain(runtime, OPERATOR_A, 1)
    only_b = token(operators=[OPERATOR_B], scopes=[READ, WRITE, RECORDS])

    for path, params in (
        ("/v1/retention", {"protocol": protocol}),
        (f"/v1/legal-holds/{hold['id']}", {}),
        (f"/v1/access-requests/{request_id}", {}),
        (f"/v1/access-requests/{request_id}/bundle", {}),
        (f"/v1/disposal-certificates/{chain[0]['id']}", {}),
    ):
        hidden = await app_client.get(path, params=params, headers=only_b)
        assert hidden.status_code == 404, path  # not 403: existence is not revealed
        assert hidden.headers["content-type"].startswith("application/problem+json")
    unknown = await app_client.get(f"/v1/legal-holds/{uuid.uuid4()}", headers=only_b)
    hidden = await app_client.get(f"/v1/legal-holds/{hold['id']}", headers=only_b)
    assert unknown.json()["detail"] == hidden.json()["detail"]
    released = await app_client.delete(
        f"/v1/legal-holds/{hold['id']}", params={"reason": "r"}, headers=only_b
    )
    assert released.status_code == 404
    assert (await get_json(app_client, f"/v1/legal-holds/{hold['id']}", token()))["active"]

    for path in ("/v1/legal-holds", "/v1/access-requests", "/v1/disposal-certificates"):
        assert ids(await get_json(app_client, path, only_b)) == [], path
    for path in (
        "/v1/legal-holds",
        "/v1/access-requests",
        "/v1/disposal-certificates",
        "/v1/purges",
        "/v1/purges/preview",
        "/v1/disposal-certificates/verify",
    ):
        other = await app_client.get(path, params={"operator": OPERATOR_A}, headers=only_b)
        assert other.status_code == 403, path
    for path, body in (
        ("/v1/legal-holds", {"operator": OPERATOR_A, "scope": "operator", "reason": "r"}),
        ("/v1/access-requests", access),
    ):
        refused = await post(app_client, path, only_b, **body)
        assert refused.status_code == 403, path
        assert refused.json()["type"] == "urn:rn623:problem:operator-forbidden"


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", f"/v1/retention?protocol={OPERATOR_A}20251121999999", READ),
        ("GET", "/v1/legal-holds", READ),
        ("GET", f"/v1/legal-holds/{uuid.uuid4()}", READ),
        ("DELETE", f"/v1/legal-holds/{uuid.uuid4()}?reason=r", WRITE),
        ("POST", "/v1/legal-holds", WRITE),
        ("POST", "/v1/access-requests", WRITE),
        ("GET", "/v1/access-requests", READ),
        ("GET", f"/v1/access-requests/{uuid.uuid4()}", READ),
        ("GET", f"/v1/access-requests/{uuid.uuid4()}/bundle", RECORDS),
        ("GET", "/v1/disposal-certificates", READ),
        ("GET", f"/v1/disposal-certificates/{uuid.uuid4()}", READ),
        ("GET", f"/v1/disposal-certificates/verify?operator={OPERATOR_A}", READ),
        ("GET", f"/v1/purges/preview?operator={OPERATOR_A}", READ),
        ("GET", "/v1/purges", READ),
    ],
)
async def test_every_endpoint_needs_a_token_with_its_scope(
    app_client: httpx.AsyncClient, token: Headers, method: str, path: str, scope: str
) -> None:
    missing = await app_client.request(method, path)
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/problem+json")
    others = [s for s in (READ, WRITE, RECORDS, "protocols:read") if s != scope]
    wrong = await app_client.request(method, path, headers=token(scopes=others))
    assert wrong.status_code == 403
    assert wrong.json()["type"] == "urn:rn623:problem:insufficient-scope"
    allowed = await app_client.request(method, path, headers=token(scopes=[scope]))
    assert allowed.status_code not in (401, 403), allowed.text
