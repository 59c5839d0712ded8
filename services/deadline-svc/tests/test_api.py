"""The HTTP API: deadlines (order, filters, pages, tenants), the calculator, the rulebook."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from deadline_svc import repository as repo
from deadline_svc.runtime import Runtime
from deadline_svc_testdata import OPERATOR_A, OPERATOR_B

pytestmark = pytest.mark.integration

Headers = Callable[..., dict[str, str]]
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
MANAUS = ZoneInfo("America/Manaus")
NOT_REGISTERED = "999999"  # deadlines of an operator whose calendar never arrived
READER = ("deadlines:read",)


def local(year: int, month: int, day: int, hour: int = 23, zone: ZoneInfo = SAO_PAULO) -> datetime:
    """A local instant (end of the day by default)."""
    return datetime(year, month, day, hour, 59, 59, 999_999, tzinfo=zone)


async def add_operator(
    runtime: Runtime,
    ans_registry: str,
    *,
    uf: str = "SP",
    municipality_ibge: str = "3550308",
    timezone: str = "America/Sao_Paulo",
    extra_holidays: tuple[str, ...] = (),
) -> None:
    """Store an operator's calendar as operator.upserted would."""
    async with runtime.uow() as uow:
        await repo.save_operator(
            uow.session,
            {
                "ans_registry": ans_registry,
                "timezone": timezone,
                "uf": uf,
                "municipality_ibge": municipality_ibge,
                "extra_holidays": [{"date": d, "name": "Aniversário"} for d in extra_holidays],
                "revision": 1,
                "updated_at": runtime.clock.now(),
            },
        )
        await uow.commit()


_numbers = iter(range(1, 1_000_000))


async def add_deadline(
    runtime: Runtime,
    ans_registry: str,
    due_at: datetime,
    *,
    immediate: bool = False,
    status: str = "open",
    kind: str = "demand",
    protocol_number: str | None = None,
    **extra: Any,
) -> str:
    """Insert a deadline row directly; returns its id."""
    deadline_id = uuid.uuid4()
    started = datetime(2025, 11, 17, 12, 0, tzinfo=UTC)
    values = {
        "id": deadline_id,
        "protocol_number": protocol_number or f"{ans_registry}20251117{next(_numbers):06d}",
        "ans_registry": ans_registry,
        "demand_id": uuid.uuid4(),
        "kind": kind,
        "demand_type": "urgent_emergency" if immediate else "assistance",
        "category": None,
        "started_at": started,
        "registered_at": started,
        "due_at": due_at,
        "immediate": immediate,
        "rule_id": "rn623.deadline.urgent_emergency" if immediate else "rn623.deadline.assistance",
        "legal_basis": "RN 623/2024",
        "ruleset_id": "rn623-2025",
        "status": status,
        "warned": [],
        **extra,
    }
    async with runtime.uow() as uow:
        assert await repo.insert_deadlines(uow.session, [values]) == {values["demand_id"]}
        await uow.commit()
    return str(deadline_id)


async def ids(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    """Ids of one page of GET /v1/deadlines."""
    response = await client.get("/v1/deadlines", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def assert_field_problem(response: httpx.Response, field: str) -> None:
    """A 422 problem+json naming ``field``."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [error["field"] for error in response.json()["errors"]], response.text


# ---- deadlines ---------------------------------------------------------------------------


async def test_urgencies_come_first_then_the_earliest_due_with_local_times(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    await add_operator(runtime, OPERATOR_A)
    await add_operator(
        runtime, OPERATOR_B, uf="AM", municipality_ibge="1302603", timezone="America/Manaus"
    )
    later = await add_deadline(runtime, OPERATOR_A, local(2025, 11, 28))
    sooner = await add_deadline(runtime, OPERATOR_A, local(2025, 11, 25))
    urgent = await add_deadline(
        runtime, OPERATOR_A, datetime(2025, 12, 1, 12, tzinfo=UTC), immediate=True
    )
    answered = await add_deadline(
        runtime,
        OPERATOR_A,
        local(2025, 11, 24),
        status="met",
        answered_at=datetime(2025, 11, 20, 15, tzinfo=UTC),
        elapsed_business_days=2,
        elapsed_seconds=270000.0,
    )
    breached = await add_deadline(
        runtime,
        OPERATOR_B,
        local(2025, 11, 19, zone=MANAUS),
        status="breached",
        breached_at=datetime(2025, 11, 20, 4, tzinfo=UTC),
        warned=["one_business_day_left"],
    )
    orphan = await add_deadline(runtime, NOT_REGISTERED, local(2025, 11, 26))

    response = await app_client.get("/v1/deadlines", headers=token())
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    items = {item["id"]: item for item in body["items"]}
    assert [item["id"] for item in body["items"]] == [
        urgent,
        breached,
        answered,
        sooner,
        orphan,
        later,
    ]

    # Friday 21 Nov 2025 10:00 in São Paulo: Mon 24 and Tue 25 are left
    assert items[sooner]["business_days_left"] == 2
    assert items[sooner]["due_at"] == "2025-11-25T23:59:59.999999-03:00"
    assert items[sooner]["operator"] == OPERATOR_A
    assert items[sooner]["status"] == "open"
    assert items[sooner]["rule_id"] == "rn623.deadline.assistance"
    assert items[sooner]["legal_basis"] == "RN 623/2024"
    assert items[urgent]["immediate"] is True
    assert items[urgent]["due_at"] == "2025-12-01T09:00:00-03:00"
    assert items[answered]["business_days_left"] is None  # closed
    assert items[answered]["answered_at"] == "2025-11-20T12:00:00-03:00"
    assert items[answered]["elapsed_business_days"] == 2
    assert items[breached]["business_days_left"] == 0
    assert items[breached]["warned"] == ["one_business_day_left"]
    assert items[breached]["breached_at"] == "2025-11-20T00:00:00-04:00"  # Manaus time
    assert items[orphan]["business_days_left"] is None  # no calendar: no count, UTC times
    assert items[orphan]["due_at"] == "2025-11-27T02:59:59.999999Z"

    one = await app_client.get(f"/v1/deadlines/{sooner}", headers=token())
    assert one.status_code == 200
    assert one.json() == items[sooner]


async def test_every_filter(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    await add_operator(runtime, OPERATOR_A)
    await add_operator(runtime, OPERATOR_B)
    protocol = f"{OPERATOR_A}20251117999999"
    first = await add_deadline(runtime, OPERATOR_A, local(2025, 11, 24), protocol_number=protocol)
    reanalysis = await add_deadline(
        runtime, OPERATOR_A, local(2025, 11, 27), kind="reanalysis", protocol_number=protocol
    )
    met = await add_deadline(runtime, OPERATOR_A, local(2025, 11, 25), status="met")
    other = await add_deadline(runtime, OPERATOR_B, local(2025, 11, 26), status="breached")
    headers = token()

    assert await ids(app_client, headers, protocol=protocol) == [first, reanalysis]
    assert await ids(app_client, headers, operator=OPERATOR_A) == [first, met, reanalysis]
    assert await ids(app_client, headers, operator=OPERATOR_B) == [other]
    assert await ids(app_client, headers, status="open") == [first, reanalysis]
    assert await ids(app_client, headers, status="met") == [met]
    assert await ids(app_client, headers, status="breached") == [other]
    assert await ids(app_client, headers, status="met_late") == []
    assert await ids(app_client, headers, kind="reanalysis") == [reanalysis]
    assert await ids(app_client, headers, kind="demand") == [first, met, other]
    assert await ids(app_client, headers, kind="records_access") == []
    assert await ids(app_client, headers, demand_type="assistance") == [
        first,
        met,
        other,
        reanalysis,
    ]
    assert await ids(app_client, headers, demand_type="high_complexity") == []
    # due_before is exclusive, due_after inclusive
    assert await ids(app_client, headers, due_before=local(2025, 11, 25).isoformat()) == [first]
    assert await ids(app_client, headers, due_after=local(2025, 11, 26).isoformat()) == [
        other,
        reanalysis,
    ]
    assert await ids(
        app_client,
        headers,
        due_after="2025-11-25T00:00:00-03:00",
        due_before="2025-11-27T00:00:00-03:00",
        status="met",
    ) == [met]


async def test_pages_cover_every_deadline_once_in_order(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    await add_operator(runtime, OPERATOR_A)
    same_instant = local(2025, 11, 26)  # ties are broken by id
    for _ in range(4):
        await add_deadline(runtime, OPERATOR_A, same_instant)
    for day in (24, 25, 27, 28):
        await add_deadline(runtime, OPERATOR_A, local(2025, 11, day))
    for hour in (14, 15):
        await add_deadline(
            runtime, OPERATOR_A, datetime(2025, 11, 21, hour, tzinfo=UTC), immediate=True
        )
    headers = token(operators=(OPERATOR_A,), scopes=READER)
    everything = await ids(app_client, headers)
    assert len(everything) == 10

    paged: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = await app_client.get("/v1/deadlines", params=params, headers=headers)
        assert response.status_code == 200
        page = response.json()
        paged += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert paged == everything  # no duplicates, no gaps, the same order

    # a cursor keeps its filters' order too
    first = (
        await app_client.get(
            "/v1/deadlines", params={"limit": 2, "status": "open"}, headers=headers
        )
    ).json()
    rest = await ids(app_client, headers, status="open", cursor=first["next_cursor"])
    assert [item["id"] for item in first["items"]] + rest == everything


async def test_a_tenant_never_sees_another_tenants_deadlines(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    await add_operator(runtime, OPERATOR_A)
    await add_operator(runtime, OPERATOR_B)
    mine = await add_deadline(runtime, OPERATOR_A, local(2025, 11, 25))
    theirs = await add_deadline(runtime, OPERATOR_B, local(2025, 11, 24))
    their_protocol = f"{OPERATOR_B}20251117000042"
    await add_deadline(runtime, OPERATOR_B, local(2025, 11, 24), protocol_number=their_protocol)
    only_a = token(operators=(OPERATOR_A,), scopes=READER)

    assert await ids(app_client, only_a) == [mine]
    assert await ids(app_client, only_a, protocol=their_protocol) == []
    assert (await app_client.get(f"/v1/deadlines/{mine}", headers=only_a)).status_code == 200
    hidden = await app_client.get(f"/v1/deadlines/{theirs}", headers=only_a)
    assert hidden.status_code == 404  # not 403: existence is not revealed
    assert hidden.headers["content-type"].startswith("application/problem+json")
    unknown = await app_client.get(f"/v1/deadlines/{uuid.uuid4()}", headers=only_a)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == hidden.json()["detail"]
    other = await app_client.get("/v1/deadlines", params={"operator": OPERATOR_B}, headers=only_a)
    assert other.status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/v1/deadlines",
        f"/v1/deadlines/{uuid.uuid4()}",
        "/v1/calendar/add-business-days?start=2025-11-19&days=1&uf=SP",
        "/v1/rules",
    ],
)
async def test_reading_needs_a_token_with_the_deadlines_read_scope(
    app_client: httpx.AsyncClient, token: Headers, path: str
) -> None:
    missing = await app_client.get(path)
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong_scope = await app_client.get(path, headers=token(scopes=("protocols:read",)))
    assert wrong_scope.status_code == 403
    assert wrong_scope.json()["type"] == "urn:rn623:problem:insufficient-scope"
    expected = 404 if path.startswith("/v1/deadlines/") else 200
    assert (await app_client.get(path, headers=token(scopes=READER))).status_code == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "closed"}, "query.status"),
        ({"kind": "complaint"}, "query.kind"),
        ({"demand_type": "anything"}, "query.demand_type"),
        ({"protocol": "529.982.247-25"}, "query.protocol"),
        ({"operator": "12345"}, "query.operator"),
        ({"due_before": "2025-11-21T10:00:00"}, "query.due_before"),  # naive
        ({"due_after": "tomorrow"}, "query.due_after"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 201}, "query.limit"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "query.cursor"),
        ({"cursor": "%%%"}, "query.cursor"),
    ],
)
async def test_a_bad_filter_is_a_problem_naming_the_field(
    app_client: httpx.AsyncClient, token: Headers, params: dict[str, Any], field: str
) -> None:
    response = await app_client.get("/v1/deadlines", params=params, headers=token())
    assert_field_problem(response, field)
    assert "529.982.247-25" not in response.text  # the rejected value is never echoed


async def test_a_deadline_id_must_be_a_uuid(app_client: httpx.AsyncClient, token: Headers) -> None:
    response = await app_client.get("/v1/deadlines/52998224725", headers=token())
    assert_field_problem(response, "path.deadline_id")
    assert "52998224725" not in response.text


# ---- calculator --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "1700000000", "2025-1-19", "19/11/2025"])
async def test_a_date_parameter_must_be_a_calendar_date(
    app_client: httpx.AsyncClient, token: Headers, value: str
) -> None:
    for path, params in (
        ("/v1/calendar/add-business-days", {"start": value, "days": 1, "uf": "SP"}),
        ("/v1/rules", {"on": value}),
    ):
        response = await app_client.get(path, params=params, headers=token(scopes=READER))
        assert_field_problem(response, "query." + ("start" if "start" in params else "on"))


async def test_the_calculator_skips_weekends_and_holidays_of_the_place(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    sao_paulo = {"uf": "SP", "municipality": "3550308"}
    response = await app_client.get(
        "/v1/calendar/add-business-days",
        params={"start": "2025-11-19", "days": 1, **sao_paulo},
        headers=token(scopes=READER),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # Thursday 20 Nov 2025 is Consciência Negra (national since 2024)
    assert body["result"] == "2025-11-21"
    assert body["due_at"] == "2025-11-21T23:59:59.999999-03:00"
    assert [h["date"] for h in body["holidays_skipped"]] == ["2025-11-20"]
    assert "Consciência Negra" in body["holidays_skipped"][0]["name"]
    assert body["calendar"] == {
        "operator": None,
        "timezone": "America/Sao_Paulo",
        "uf": "SP",
        "municipality_ibge": "3550308",
        "has_municipal_data": True,
    }

    weekend = (
        await app_client.get(
            "/v1/calendar/add-business-days",
            params={"start": "2025-11-21", "days": 1, **sao_paulo},
            headers=token(),
        )
    ).json()
    assert weekend["result"] == "2025-11-24"
    assert weekend["holidays_skipped"] == []

    backwards = (
        await app_client.get(
            "/v1/calendar/add-business-days",
            params={"start": "2025-11-21", "days": -1, "uf": "SP"},
            headers=token(),
        )
    ).json()
    assert backwards["result"] == "2025-11-19"
    assert backwards["due_at"] is None
    assert [h["date"] for h in backwards["holidays_skipped"]] == ["2025-11-20"]
    assert backwards["calendar"]["municipality_ibge"] is None

    same_day = (
        await app_client.get(
            "/v1/calendar/add-business-days",
            params={"start": "2025-11-21", "days": 0, "uf": "AM"},
            headers=token(),
        )
    ).json()
    assert same_day["result"] == "2025-11-21"
    assert same_day["due_at"] == "2025-11-21T23:59:59.999999-04:00"  # Manaus
    assert same_day["calendar"]["timezone"] == "America/Manaus"


async def test_the_calculator_honours_an_operators_own_holidays(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    await add_operator(runtime, OPERATOR_A, extra_holidays=("2025-11-24",))
    response = await app_client.get(
        "/v1/calendar/add-business-days",
        params={"start": "2025-11-21", "days": 1, "operator": OPERATOR_A},
        headers=token(operators=(OPERATOR_A,), scopes=READER),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == "2025-11-25"  # Monday 24 is the operator's holiday
    assert body["due_at"] == "2025-11-25T23:59:59.999999-03:00"
    assert [h["date"] for h in body["holidays_skipped"]] == ["2025-11-24"]
    assert body["calendar"]["operator"] == OPERATOR_A
    assert body["calendar"]["municipality_ibge"] == "3550308"

    elsewhere = await app_client.get(
        "/v1/calendar/add-business-days",
        params={"start": "2025-11-21", "days": 1, "operator": OPERATOR_A},
        headers=token(operators=(OPERATOR_B,), scopes=READER),
    )
    assert elsewhere.status_code == 403


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2025-11-19", "days": 1}, "query.operator"),
        ({"start": "2025-11-19", "days": 1, "operator": OPERATOR_A, "uf": "SP"}, "query.uf"),
        ({"start": "2025-11-19", "days": 1, "operator": NOT_REGISTERED}, "query.operator"),
        ({"start": "2025-11-19", "days": 1, "operator": "12"}, "query.operator"),
        (
            {"start": "2025-11-19", "days": 1, "uf": "SP", "municipality": "3304557"},
            "query.municipality",
        ),
        (
            {"start": "2025-11-19", "days": 1, "uf": "SP", "municipality": "355"},
            "query.municipality",
        ),
        ({"start": "2025-11-19", "days": 1, "uf": "XX"}, "query.uf"),
        (
            {"start": "2025-11-19", "days": 1, "uf": "SP", "timezone": "Europe/Lisbon"},
            "query.timezone",
        ),
        ({"start": "19/11/2025", "days": 1, "uf": "SP"}, "query.start"),
        ({"start": "2025-11-19", "days": 3651, "uf": "SP"}, "query.days"),
        ({"start": "2025-11-19", "uf": "SP"}, "query.days"),
        ({"start": "2100-12-20", "days": 30, "uf": "SP"}, "query.days"),
        ({"start": "1850-01-02", "days": 1, "uf": "SP"}, "query.start"),
    ],
)
async def test_calculator_input_problems_name_the_field(
    app_client: httpx.AsyncClient, token: Headers, params: dict[str, Any], field: str
) -> None:
    response = await app_client.get(
        "/v1/calendar/add-business-days", params=params, headers=token()
    )
    assert_field_problem(response, field)


# ---- rules -------------------------------------------------------------------------------


async def test_the_rulebook_in_force_with_legal_basis_and_dates(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    response = await app_client.get("/v1/rules", headers=token(scopes=READER))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ruleset_id"] == "rn623-2025"
    assert body["on"] == "2025-11-21"  # the service clock's day
    rules = {rule["id"]: rule for rule in body["rules"]}
    assistance = rules["rn623.deadline.assistance"]
    assert assistance["kind"] == "deadline"
    assert assistance["demand_type"] == "assistance"
    assert (assistance["amount"], assistance["unit"]) == (5, "business_days")
    assert assistance["legal_basis"] == "RN 623/2024"
    assert assistance["effective_from"] == "2025-07-01"
    assert assistance["status"] == "in_force"
    urgent = rules["rn623.deadline.urgent_emergency"]
    assert (urgent["amount"], urgent["unit"], urgent["immediate"]) == (1, "hours", True)
    assert rules["rn623.deadline.high_complexity"]["amount"] == 10
    assert not any(rule_id.startswith("rn395.") for rule_id in rules)
    assert {rule["kind"] for rule in body["rules"]} >= {"deadline", "retention"}
    assert all(rule["legal_basis"] for rule in body["rules"])

    before = (
        await app_client.get("/v1/rules", params={"on": "2025-06-30"}, headers=token())
    ).json()
    old = {rule["id"]: rule for rule in before["rules"] if rule["kind"] == "deadline"}
    assert old["rn395.deadline.high_complexity"]["amount"] == 21
    assert old["rn395.deadline.high_complexity"]["effective_to"] == "2025-06-30"
    assert "rn623.deadline.high_complexity" not in old

    everything = (await app_client.get("/v1/rules", params={"all": "true"}, headers=token())).json()
    status = {rule["id"]: rule["status"] for rule in everything["rules"]}
    assert status["rn623.deadline.assistance"] == "in_force"
    assert status["rn395.deadline.assistance"] == "expired"
    upcoming = (
        await app_client.get(
            "/v1/rules", params={"all": "true", "on": "2020-01-01"}, headers=token()
        )
    ).json()
    assert {rule["id"]: rule["status"] for rule in upcoming["rules"]}[
        "rn623.deadline.assistance"
    ] == "upcoming"

    assert_field_problem(
        await app_client.get("/v1/rules", params={"on": "yesterday"}, headers=token()), "query.on"
    )
    assert_field_problem(
        await app_client.get("/v1/rules", params={"all": "maybe"}, headers=token()), "query.all"
    )
