"""The HTTP API: beneficiary counts and imports, the IGR of open and closed quarters, the
history, the ranking, the export, the indicators, closing quarters, tenants and scopes."""

from __future__ import annotations

import gzip
import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from igr_svc import closer
from igr_svc.consumers import IgrHandlers
from igr_svc.domain import BRASILIA
from igr_svc.runtime import Runtime
from rn623_events.clock import ManualClock
from rn623_events.contracts.deadlines import DeadlineBreached, DeadlineMet, DeadlineScheduled
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import (
    ComplaintRegistered,
    DemandAnswered,
    DemandRegistered,
)
from rn623_events.envelope import make_envelope
from rn623_events.registry import Event

pytestmark = pytest.mark.integration

Headers = Callable[..., dict[str, str]]
READ, WRITE = "igr:read", "igr:write"
_numbers = itertools.count(1)

HEADER = (
    "REGISTRO_ANS;RAZAO_SOCIAL;COBERTURA;IGR;QTD_RECLAMACOES;QTD_BENEFICIARIOS;"
    "PORTE_OPERADORA;COMPETENCIA;COMPETENCIA_BENEFICIARIO;DT_ATUALIZACAO"
)
OPEN_DATA = "\r\n".join(
    [
        HEADER,
        "310001;OPERADORA IMPORTADA S.A.;Assistência médica;137,48;63;45826;Médio;202508;"
        "202507;2025-10-07",
        "310001;OPERADORA IMPORTADA S.A.;Assistência médica;0,00;0;45900;Médio;202509;"
        "202508;2025-10-07",
        "310001;OPERADORA IMPORTADA S.A.;Exclusivamente odontológica;0,00;0;1200;Médio;202509;"
        "202508;2025-10-07",
        "310002;ODONTO EXEMPLO LTDA;Exclusivamente odontológica;1,25;1;80000;Grande;202509;"
        "202508;2025-10-07",
        "310003;SAÚDE EXEMPLO;Assistência médica;10,00;5;50000;Médio;202509;202508;2025-10-07",
        "310003;SAÚDE EXEMPLO;Assistência médica;12,00;6;50000;Médio;202507;202506;2025-10-07",
        "",
    ]
)
SUMMARY = {"rows": 6, "counts": 6, "operators": 3, "months": 3}


def at(year: int, month: int, day: int, hour: int = 12) -> datetime:
    """An instant in Brasília time."""
    return datetime(year, month, day, hour, tzinfo=BRASILIA)


async def feed(runtime: Runtime, handler: str, events: list[Event], time: datetime) -> None:
    """Run a batch of events through the consumer's handler in one committed unit of work."""
    items = [(event, make_envelope(event, source="protocol-svc", time=time)) for event in events]
    async with runtime.uow() as uow:
        await getattr(IgrHandlers(runtime), handler)(items, uow)
        await uow.commit()


async def add_operator(
    runtime: Runtime, ans: str, segment: str = "medical", name: str | None = None
) -> None:
    """Register an operator as operator.upserted would."""
    event = OperatorUpserted(
        ans_registry=ans,
        name=name or f"OPERADORA {ans} S.A.",
        segment=segment,
        modality="medicina_de_grupo",
        beneficiaries=50_000,
        uf="SP",
        municipality_ibge="3550308",
        timezone="America/Sao_Paulo",
        revision=1,
        updated_at=at(2025, 7, 1),
    )
    async with runtime.uow() as uow:
        await IgrHandlers(runtime).operator_upserted(event, uow)
        await uow.commit()


def protocol(ans: str, when: datetime) -> str:
    """A fresh 20-digit protocol number."""
    return f"{ans}{when:%Y%m%d}{next(_numbers):06d}"


async def complain(
    runtime: Runtime,
    ans: str,
    count: int,
    when: datetime,
    *,
    source: str = "nip",
    coverage: str | None = None,
    classification: str | None = None,
) -> None:
    """``count`` complaints received at ``when``, through the consumer."""
    events: list[Event] = [
        ComplaintRegistered(
            protocol_number=protocol(ans, when),
            ans_registry=ans,
            complaint_id=uuid.uuid4(),
            source=source,
            classification=classification,
            received_at=when,
            registered_at=when,
            coverage=coverage,
        )
        for _ in range(count)
    ]
    await feed(runtime, "complaints", events, when)


async def put_count(
    client: httpx.AsyncClient, headers: dict[str, str], ans: str, month: str, **counts: int
) -> dict[str, Any]:
    """PUT an operator's beneficiaries of a month (200 expected)."""
    response = await client.put(
        f"/v1/operators/{ans}/beneficiaries/{month}", json=counts, headers=headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def get_json(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
) -> Any:
    """GET ``path`` (200 expected) and return the body."""
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def assert_field_problem(response: httpx.Response, field: str) -> None:
    """A 422 problem+json naming ``field``."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [error["field"] for error in response.json()["errors"]], response.text


def assert_problem(response: httpx.Response, status: int, slug: str | None = None) -> None:
    """A problem+json of ``status`` (and type ``slug``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if slug is not None:
        assert response.json()["type"] == f"urn:rn623:problem:{slug}"


def months_of(figures: dict[str, Any], coverage: str = "medical") -> list[tuple[Any, ...]]:
    """(month, complaints, beneficiaries, beneficiaries_month, igr) of a coverage."""
    entry = next(c for c in figures["coverages"] if c["coverage"] == coverage)
    return [tuple(m.values()) for m in entry["months"]]


# ---- beneficiaries -------------------------------------------------------------------------


async def test_beneficiary_counts_are_stored_replaced_and_listed(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    ans = "100001"
    writer = token(operators=[ans], scopes=[READ, WRITE])
    assert await put_count(app_client, writer, ans, "2025-10", medical=45_826) == {
        "operator": ans,
        "month": "2025-10",
        "medical": 45_826,
        "dental": None,
    }
    both = await put_count(app_client, writer, ans, "2025-10", dental=1_200)
    assert (both["medical"], both["dental"]) == (45_826, 1_200)  # the other one is kept
    replaced = await put_count(app_client, writer, ans, "2025-10", medical=46_000, dental=None)
    assert (replaced["medical"], replaced["dental"]) == (46_000, 1_200)
    await put_count(app_client, writer, ans, "2025-08", medical=45_000)
    await put_count(app_client, writer, ans, "2024-12", medical=1)

    listed = await get_json(
        app_client, f"/v1/operators/{ans}/beneficiaries", writer, **{"from": "2025-08"}
    )
    assert (listed["operator"], listed["from"], listed["to"]) == (ans, "2025-08", "2025-11")
    assert [(i["month"], i["coverage"], i["count"], i["source"]) for i in listed["items"]] == [
        ("2025-08", "medical", 45_000, "api"),
        ("2025-10", "dental", 1_200, "api"),
        ("2025-10", "medical", 46_000, "api"),
    ]
    assert listed["items"][0]["updated_at"].startswith("2025-11-21T13:00:00")
    default = await get_json(app_client, f"/v1/operators/{ans}/beneficiaries", writer)
    assert (default["from"], len(default["items"])) == ("2024-12", 4)  # 12 months to now
    older = await get_json(app_client, f"/v1/operators/{ans}/beneficiaries", writer, to="2025-01")
    assert [i["month"] for i in older["items"]] == ["2024-12"]

    path = f"/v1/operators/{ans}/beneficiaries"
    for month, body, field in (
        ("2025-13", {"medical": 1}, "path.month"),
        ("2025-1", {"medical": 1}, "path.month"),
        ("2025-12", {"medical": 1}, "path.month"),  # a future month
        ("2025-10", {}, "body"),
        ("2025-10", {"medical": None, "dental": None}, "body"),
        ("2025-10", {"medical": -1}, "body.medical"),
        ("2025-10", {"medical": "many"}, "body.medical"),
        ("2025-10", {"medical": 1, "vision": 2}, "body.vision"),
    ):
        response = await app_client.put(f"{path}/{month}", json=body, headers=writer)
        assert_field_problem(response, field)
    assert_field_problem(
        await app_client.get(path, params={"from": "2025-10", "to": "2025-09"}, headers=writer),
        "query.from",
    )
    assert_field_problem(
        await app_client.get(path, params={"from": "2010-01"}, headers=writer), "query.from"
    )
    assert_field_problem(
        await app_client.get(path, params={"to": "2025/10"}, headers=writer), "query.to"
    )
    other = token(operators=["100002"], scopes=[READ, WRITE])
    assert_problem(
        await app_client.put(f"{path}/2025-10", json={"medical": 1}, headers=other),
        403,
        "operator-forbidden",
    )
    assert_problem(await app_client.get(path, headers=other), 403, "operator-forbidden")
    reader = token(operators=[ans], scopes=[READ])
    assert_problem(
        await app_client.put(f"{path}/2025-10", json={"medical": 1}, headers=reader),
        403,
        "insufficient-scope",
    )


async def test_the_regulators_open_data_file_is_imported_plain_or_gzipped(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    csv_type = {"content-type": "text/csv; charset=utf-8"}
    response = await app_client.post(
        "/v1/beneficiaries/import", content=OPEN_DATA.encode(), headers={**token(), **csv_type}
    )
    assert response.status_code == 200, response.text
    assert response.json() == SUMMARY

    listed = await get_json(
        app_client,
        "/v1/operators/310001/beneficiaries",
        token(),
        **{"from": "2025-07", "to": "2025-09"},
    )
    assert [(i["month"], i["coverage"], i["count"], i["source"]) for i in listed["items"]] == [
        ("2025-07", "medical", 45_826, "import"),
        ("2025-08", "dental", 1_200, "import"),
        ("2025-08", "medical", 45_900, "import"),
    ]
    # operators known only from the file: their name and segment come from it
    igr = await get_json(app_client, "/v1/igr/310001", token(), quarter="2025Q3")
    assert igr["name"] == "OPERADORA IMPORTADA S.A."
    assert igr["figures"]["segment"] == "both"
    assert [c["coverage"] for c in igr["figures"]["coverages"]] == ["medical", "dental"]
    dental = await get_json(app_client, "/v1/igr/310002", token(), quarter="2025Q3")
    assert [c["coverage"] for c in dental["figures"]["coverages"]] == ["dental"]

    compressed = gzip.compress(OPEN_DATA.encode())
    for headers in (
        {"content-type": "application/gzip"},
        {"content-type": "text/csv", "content-encoding": "gzip"},
    ):
        response = await app_client.post(
            "/v1/beneficiaries/import", content=compressed, headers={**token(), **headers}
        )
        assert response.status_code == 200, response.text
        assert response.json() == SUMMARY  # the same counts again: replaced, not added
    with_bom = await app_client.post(
        "/v1/beneficiaries/import",
        content=b"\xef\xbb\xbf" + OPEN_DATA.encode(),
        headers={**token(), **csv_type},
    )
    assert with_bom.json() == SUMMARY


async def test_a_malformed_import_names_line_and_column_and_stores_nothing(
    app_client: httpx.AsyncClient, token: Headers
) -> None:
    lines = OPEN_DATA.split("\r\n")
    lines[1] = lines[1].replace("310001", "320001")
    lines[2] = lines[2].replace(";45900;", ";muitos;")
    bad = "\r\n".join(lines).encode()
    csv_type = {"content-type": "text/csv"}

    response = await app_client.post(
        "/v1/beneficiaries/import", content=bad, headers={**token(), **csv_type}
    )
    assert_problem(response, 422, "open-data")
    problem = response.json()
    assert (problem["line"], problem["column"]) == (3, "QTD_BENEFICIARIOS")
    assert problem["detail"].startswith("line 3, QTD_BENEFICIARIOS: ")
    assert problem["errors"][0]["field"] == "body"
    stored = await get_json(
        app_client, "/v1/operators/320001/beneficiaries", token(), **{"from": "2025-07"}
    )
    assert stored["items"] == []  # the good line before it was rolled back

    no_column = await app_client.post(
        "/v1/beneficiaries/import",
        content=b"REGISTRO_ANS;COBERTURA\r\n310001;x\r\n",
        headers={**token(), **csv_type},
    )
    assert (no_column.json()["line"], no_column.json()["column"]) == (1, "QTD_BENEFICIARIOS")
    latin1 = await app_client.post(
        "/v1/beneficiaries/import",
        content=OPEN_DATA.encode("latin-1"),
        headers={**token(), **csv_type},
    )
    assert_problem(latin1, 422, "open-data")
    assert latin1.json()["line"] == 2
    broken = await app_client.post(
        "/v1/beneficiaries/import",
        content=gzip.compress(OPEN_DATA.encode())[:-20],
        headers={**token(), "content-type": "application/gzip"},
    )
    assert_problem(broken, 422, "open-data")
    not_gzip = await app_client.post(
        "/v1/beneficiaries/import",
        content=OPEN_DATA.encode(),
        headers={**token(), "content-type": "application/gzip"},
    )
    assert_problem(not_gzip, 422, "open-data")

    for headers in (
        {"content-type": "application/json"},
        {"content-type": "text/csv; charset=iso-8859-1"},
        {"content-type": "text/csv", "content-encoding": "br"},
        {},
    ):
        refused = await app_client.post(
            "/v1/beneficiaries/import", content=OPEN_DATA.encode(), headers={**token(), **headers}
        )
        assert_problem(refused, 415, "unsupported-media-type")
    too_large = await app_client.post(
        "/v1/beneficiaries/import",
        content=OPEN_DATA.encode(),
        headers={**token(), **csv_type, "content-length": str(51 * 1024 * 1024)},
    )
    assert_problem(too_large, 413, "too-large")
    # a file may hold any operator: a token for some operators only is refused
    some = token(operators=["310001", "310002", "310003"], scopes=[WRITE])
    refused = await app_client.post(
        "/v1/beneficiaries/import", content=OPEN_DATA.encode(), headers={**some, **csv_type}
    )
    assert_problem(refused, 403, "operator-forbidden")


# ---- the IGR of an operator ----------------------------------------------------------------


async def test_the_open_quarter_has_exact_monthly_igr_goals_and_a_projection(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    ans = "400001"
    await add_operator(runtime, ans, name="SAÚDE ABERTA S.A.")
    headers = token(operators=[ans], scopes=[READ, WRITE])
    await put_count(app_client, headers, ans, "2025-10", medical=45_826)
    await put_count(app_client, headers, ans, "2025-11", medical=45_826)
    await complain(runtime, ans, 63, at(2025, 10, 15))
    await complain(runtime, ans, 20, at(2025, 11, 10))
    await complain(runtime, ans, 4, at(2025, 11, 10), source="ouvidoria")  # not in the IGR
    await complain(runtime, ans, 1, at(2025, 9, 30, 23))  # 2025Q3 in Brasília time

    body = await get_json(app_client, f"/v1/igr/{ans}", headers)  # the current quarter
    assert {k: body[k] for k in ("operator", "name", "quarter", "status")} == {
        "operator": ans,
        "name": "SAÚDE ABERTA S.A.",
        "quarter": "2025Q4",
        "status": "open",
    }
    assert body["computed_at"].startswith("2025-11-21T13:00:00")
    assert [body[k] for k in ("revision", "revised_figures", "late_complaints", "closed_at")] == [
        None,
        None,
        None,
        None,
    ]
    figures = body["figures"]
    assert (figures["segment"], figures["method"]) == ("medical", "mean_of_monthly")
    assert months_of(figures) == [
        ("2025-10", 63, 45_826, "2025-10", "137.48"),  # 63 / 45 826 * 100 000
        ("2025-11", 20, 45_826, "2025-11", "43.64"),
        ("2025-12", 0, None, None, None),  # not started yet: no figure
    ]
    medical = figures["coverages"][0]
    # the months so far (the projection covers the whole quarter)
    assert (medical["igr_medio"], medical["igr_medio_max"]) == ("90.56", "60.9")
    assert (medical["complaints"], medical["beneficiaries_average"]) == (83, "45826.00")
    assert medical["igr_individual"] is None
    assert (figures["excellence_met"], figures["discount_pct"]) == (False, 0)
    assert any("IGR individual not provided" in r for r in figures["reasons"])
    projection = body["projection"]
    assert projection["method"] == "run_rate_poisson_95"
    assert projection["elapsed_fraction"] == "0.5589"  # 51 days 10 hours of 92 days
    assert projection["coverages"] == [
        {
            "coverage": "medical",
            "complaints_so_far": 83,
            "complaints_expected": 149,  # 83 / 0.5589
            "igr_medio": "108.03",  # 149 / 3 months over 45 826
            "low": "84.79",
            "high": "131.27",
        }
    ]

    individual = await app_client.put(
        f"/v1/igr/{ans}/individual/2025Q4", json={"medical": "12.30"}, headers=headers
    )
    assert individual.status_code == 200, individual.text
    assert individual.json() == {
        "operator": ans,
        "quarter": "2025Q4",
        "medical": "12.30",
        "dental": None,
    }
    figures = (await get_json(app_client, f"/v1/igr/{ans}", headers))["figures"]
    assert figures["coverages"][0]["igr_individual"] == "12.30"
    # the individual figure is now in, but the IGR médio so far is above the limit
    assert (figures["excellence_met"], figures["discount_pct"]) == (False, 0)
    assert figures["reasons"][0] == "medical: IGR médio 90.56 > 60.9"
    for body_in in (
        {"medical": "12.345"},
        {"medical": "-1"},
        {"medical": "muito"},
        {"dental": None},
        {"medical": "1", "other": "1"},
    ):
        response = await app_client.put(
            f"/v1/igr/{ans}/individual/2025Q4", json=body_in, headers=headers
        )
        assert response.status_code == 422, (body_in, response.text)

    past = await get_json(app_client, f"/v1/igr/{ans}", headers, quarter="2025Q3")
    assert (past["status"], past["projection"]) == ("open", None)
    assert months_of(past["figures"])[2] == ("2025-09", 1, None, None, None)
    assert past["figures"]["coverages"][0]["igr_medio"] is None
    assert past["figures"]["excellence_met"] is None
    assert_field_problem(
        await app_client.get(f"/v1/igr/{ans}", params={"quarter": "2026Q1"}, headers=headers),
        "query.quarter",
    )
    for bad in ("2025Q5", "2025-Q3", "1999Q1"):
        response = await app_client.get(f"/v1/igr/{ans}", params={"quarter": bad}, headers=headers)
        assert_field_problem(response, "query.quarter")


async def test_an_operator_with_both_segments_has_both_coverages(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    ans = "600001"
    await add_operator(runtime, ans, segment="both")
    await put_count(app_client, token(), ans, "2025-10", medical=100_000, dental=20_000)
    await complain(runtime, ans, 7, at(2025, 10, 3), coverage="medical")
    await complain(runtime, ans, 1, at(2025, 10, 4), coverage="dental")
    await complain(runtime, ans, 2, at(2025, 10, 5))  # coverage unknown: in neither

    figures = (await get_json(app_client, f"/v1/igr/{ans}", token()))["figures"]
    assert figures["segment"] == "both"
    assert [c["coverage"] for c in figures["coverages"]] == ["medical", "dental"]
    assert months_of(figures, "medical")[0] == ("2025-10", 7, 100_000, "2025-10", "7.00")
    assert months_of(figures, "dental")[0] == ("2025-10", 1, 20_000, "2025-10", "5.00")
    assert [c["igr_medio_max"] for c in figures["coverages"]] == ["60.9", "1.3"]
    projection = (await get_json(app_client, f"/v1/igr/{ans}", token()))["projection"]
    assert [c["coverage"] for c in projection["coverages"]] == ["medical", "dental"]


async def test_a_closed_quarter_is_frozen_and_late_complaints_make_a_revision(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime, clock: ManualClock
) -> None:
    ans = "500001"
    await add_operator(runtime, ans)
    await put_count(app_client, token(), ans, "2025-10", medical=50_000)
    await put_count(app_client, token(), ans, "2025-11", medical=50_000)
    await complain(runtime, ans, 10, at(2025, 10, 10))
    await complain(runtime, ans, 5, at(2025, 11, 10))
    close = "/v1/igr/quarters/2025Q4/close"
    assert_problem(await app_client.post(close, headers=token()), 409, "quarter-not-ended")

    clock.advance(datetime(2026, 1, 10, 13, tzinfo=UTC) - clock.now())
    await put_count(app_client, token(), ans, "2025-12", medical=50_000)
    await complain(runtime, ans, 5, at(2025, 12, 20))
    assert_problem(
        await app_client.post(close, headers=token(scopes=[READ, WRITE])),
        403,
        "insufficient-scope",
    )
    closed = await app_client.post(close, headers=token(scopes=["admin"]))
    assert closed.status_code == 200, closed.text
    assert closed.json() == {"quarter": "2025Q4", "operators": 1}
    assert_problem(await app_client.post(close, headers=token()), 409, "quarter-closed")
    # a closed quarter's beneficiary counts are frozen with its figures
    frozen = await app_client.put(
        f"/v1/operators/{ans}/beneficiaries/2025-11", json={"medical": 1}, headers=token()
    )
    assert_problem(frozen, 409, "quarter-closed")
    assert_problem(
        await app_client.post("/v1/igr/quarters/2026Q1/close", headers=token()),
        409,
        "quarter-not-ended",
    )
    assert_field_problem(
        await app_client.post("/v1/igr/quarters/2026Q7/close", headers=token()), "path.quarter"
    )

    body = await get_json(app_client, f"/v1/igr/{ans}", token(), quarter="2025Q4")
    assert (body["status"], body["revision"], body["late_complaints"]) == ("closed", 0, 0)
    assert body["closed_at"].startswith("2026-01-10T13:00:00")
    assert body["computed_at"] == body["closed_at"]
    assert (body["revised_figures"], body["projection"]) == (None, None)
    frozen = body["figures"]
    assert months_of(frozen) == [
        ("2025-10", 10, 50_000, "2025-10", "20.00"),
        ("2025-11", 5, 50_000, "2025-11", "10.00"),
        ("2025-12", 5, 50_000, "2025-12", "10.00"),
    ]
    assert frozen["coverages"][0]["igr_medio"] == "13.33"
    assert frozen["coverages"][0]["complaints"] == 20
    refused = await app_client.put(
        f"/v1/igr/{ans}/individual/2025Q4", json={"medical": "1.00"}, headers=token()
    )
    assert_problem(refused, 409, "quarter-closed")

    clock.advance(timedelta(days=1))
    await complain(runtime, ans, 1, at(2025, 12, 28))  # late: the quarter is closed
    body = await get_json(app_client, f"/v1/igr/{ans}", token(), quarter="2025Q4")
    assert (body["revision"], body["late_complaints"], body["figures"]) == (0, 1, frozen)
    assert await closer.publish_revisions(runtime) == 1

    body = await get_json(app_client, f"/v1/igr/{ans}", token(), quarter="2025Q4")
    assert (body["revision"], body["late_complaints"]) == (1, 1)
    assert body["figures"] == frozen  # revision 0 never changes
    assert body["revised_at"].startswith("2026-01-11T13:00:00")
    revised = body["revised_figures"]
    assert months_of(revised)[2] == ("2025-12", 6, 50_000, "2025-12", "12.00")
    assert revised["coverages"][0]["igr_medio"] == "14.00"

    history = await get_json(app_client, f"/v1/igr/{ans}/history", token(), **{"from": "2025Q3"})
    assert (history["operator"], history["name"]) == (ans, f"OPERADORA {ans} S.A.")
    assert [(i["quarter"], i["status"], i["revision"]) for i in history["items"]] == [
        ("2025Q3", "open", None),
        ("2025Q4", "closed", 1),
        ("2026Q1", "open", None),
    ]
    q4 = history["items"][1]
    assert q4["coverages"] == [
        {
            "coverage": "medical",
            "igr_medio": "14.00",
            "igr_medio_max": "60.9",
            "excellence_met": False,
            "reduction_met": None,
        }
    ]
    assert (q4["excellence_met"], q4["discount_pct"]) == (False, 0)
    assert history["items"][0]["coverages"][0]["igr_medio"] is None
    default = await get_json(app_client, f"/v1/igr/{ans}/history", token())
    assert [i["quarter"] for i in default["items"]][::7] == ["2024Q2", "2026Q1"]
    ranked = await get_json(app_client, "/v1/igr/ranking", token(), quarter="2025Q4")
    assert (ranked["status"], ranked["items"][0]["igr_medio"]) == ("closed", "14.00")
    exported = await get_json(
        app_client, "/v1/igr/export", token(), quarter="2025Q4", format="json"
    )
    assert [(r["competencia"], r["igr"]) for r in exported] == [
        ("202510", "20.00"),
        ("202511", "10.00"),
        ("202512", "12.00"),
    ]


async def test_history_ranges_are_checked(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    ans = "500002"
    await add_operator(runtime, ans)
    path = f"/v1/igr/{ans}/history"
    twenty = await get_json(app_client, path, token(), **{"from": "2021Q1", "to": "2025Q4"})
    assert len(twenty["items"]) == 20
    for params, field in (
        ({"from": "2020Q4", "to": "2025Q4"}, "query.from"),  # 21 quarters
        ({"from": "2025Q4", "to": "2025Q3"}, "query.from"),
        ({"to": "2026Q1"}, "query.to"),  # the future
        ({"from": "2025Q9"}, "query.from"),
    ):
        response = await app_client.get(path, params=params, headers=token())
        assert_field_problem(response, field)


# ---- ranking and export --------------------------------------------------------------------


async def test_the_ranking_orders_visible_operators_by_igr_medio(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    a, b, c, d, e = "710001", "710002", "710003", "710004", "710005"
    for ans in (a, b, c, d):
        await add_operator(runtime, ans)
    await add_operator(runtime, e, segment="dental")
    for ans, complaints in ((a, 30), (b, 10), (c, 10)):
        await put_count(app_client, token(), ans, "2025-09", medical=100_000)
        await complain(runtime, ans, complaints, at(2025, 9, 10))
    await put_count(app_client, token(), e, "2025-09", dental=100_000)
    await complain(runtime, d, 3, at(2025, 9, 10))  # no beneficiaries: no IGR

    def rows(page: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(i["position"], i["operator"], i["igr_medio"]) for i in page["items"]]

    everyone = await get_json(app_client, "/v1/igr/ranking", token(), quarter="2025Q3")
    assert (everyone["status"], everyone["coverage"], everyone["total"]) == (
        "open",
        "medical",
        4,
    )
    assert rows(everyone) == [
        (1, b, "10.00"),
        (1, c, "10.00"),  # a tie shares the position
        (3, a, "30.00"),
        (None, d, None),  # without an IGR: last
    ]
    first = everyone["items"][0]
    assert first == {
        "position": 1,
        "operator": b,
        "name": f"OPERADORA {b} S.A.",
        "segment": "medical",
        "igr_medio": "10.00",
        "igr_medio_max": "60.9",
        "complaints": 10,
        "excellence_met": False,
        "reduction_met": None,
    }
    page = await get_json(app_client, "/v1/igr/ranking", token(), quarter="2025Q3", limit=2)
    assert rows(page) == rows(everyone)[:2]
    rest = await get_json(
        app_client,
        "/v1/igr/ranking",
        token(),
        quarter="2025Q3",
        limit=2,
        cursor=page["next_cursor"],
    )
    assert (rows(rest), rest["next_cursor"]) == (rows(everyone)[2:], None)

    tenant = token(operators=[a, c, d], scopes=[READ])
    visible = await get_json(app_client, "/v1/igr/ranking", tenant, quarter="2025Q3")
    assert rows(visible) == [(1, c, "10.00"), (2, a, "30.00"), (None, d, None)]
    dental = await get_json(
        app_client, "/v1/igr/ranking", token(), quarter="2025Q3", coverage="dental"
    )
    assert rows(dental) == [(1, e, "0.00")]
    current = await get_json(app_client, "/v1/igr/ranking", tenant)
    assert (current["quarter"], current["total"]) == ("2025Q4", 3)
    nobody = await get_json(app_client, "/v1/igr/ranking", token(operators=[], scopes=[READ]))
    assert (nobody["total"], nobody["items"]) == (0, [])
    for params, field in (
        ({"quarter": "2026Q1"}, "query.quarter"),
        ({"coverage": "vision"}, "query.coverage"),
        ({"limit": 0}, "query.limit"),
        ({"cursor": "not-a-cursor"}, "query.cursor"),
    ):
        response = await app_client.get("/v1/igr/ranking", params=params, headers=token())
        assert_field_problem(response, field)


async def test_the_export_follows_the_regulators_layout(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    ans, other = "800001", "800002"
    await add_operator(runtime, ans, name="OPERADORA EXEMPLO; SAÚDE S.A.")
    await add_operator(runtime, other)
    await put_count(app_client, token(), ans, "2025-09", medical=45_826)
    await complain(runtime, ans, 63, at(2025, 9, 12))
    await put_count(app_client, token(), other, "2025-09", medical=1_000)

    tenant = token(operators=[ans], scopes=[READ])
    response = await app_client.get("/v1/igr/export", params={"quarter": "2025Q3"}, headers=tenant)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == "attachment; filename=igr-2025Q3.csv"
    assert (
        response.content
        == (
            "REGISTRO_ANS;RAZAO_SOCIAL;COBERTURA;IGR;QTD_RECLAMACOES;QTD_BENEFICIARIOS;"
            "COMPETENCIA;COMPETENCIA_BENEFICIARIO\r\n"
            '800001;"OPERADORA EXEMPLO; SAÚDE S.A.";Assistência médica;137,48;63;45826;'
            "202509;202509\r\n"
        ).encode()
    )

    rows = await get_json(app_client, "/v1/igr/export", token(), quarter="2025Q3", format="json")
    assert rows == [
        {
            "registro_ans": ans,
            "razao_social": "OPERADORA EXEMPLO; SAÚDE S.A.",
            "cobertura": "Assistência médica",
            "igr": "137.48",
            "qtd_reclamacoes": 63,
            "qtd_beneficiarios": 45_826,
            "competencia": "202509",
            "competencia_beneficiario": "202509",
        },
        {
            "registro_ans": other,
            "razao_social": f"OPERADORA {other} S.A.",
            "cobertura": "Assistência médica",
            "igr": "0.00",
            "qtd_reclamacoes": 0,
            "qtd_beneficiarios": 1_000,
            "competencia": "202509",
            "competencia_beneficiario": "202509",
        },
    ]
    # the quarter in progress: only the months begun so far
    current = await get_json(app_client, "/v1/igr/export", tenant, format="json")
    assert [(r["competencia"], r["competencia_beneficiario"]) for r in current] == [
        ("202510", "202509"),
        ("202511", "202509"),
    ]
    assert_field_problem(
        await app_client.get("/v1/igr/export", params={"format": "xlsx"}, headers=tenant),
        "query.format",
    )
    assert_field_problem(
        await app_client.get("/v1/igr/export", params={"quarter": "2026Q1"}, headers=tenant),
        "query.quarter",
    )


# ---- indicators ----------------------------------------------------------------------------


def deadline_fields(ans: str, kind: str = "demand") -> dict[str, Any]:
    """The fields every deadline event of a fresh deadline carries."""
    return {
        "deadline_id": uuid.uuid4(),
        "protocol_number": protocol(ans, at(2025, 11, 3)),
        "ans_registry": ans,
        "demand_id": uuid.uuid4(),
        "kind": kind,
        "due_at": at(2025, 11, 10, 23),
    }


def scheduled(ans: str, kind: str = "demand") -> DeadlineScheduled:
    """A deadline scheduled in November 2025."""
    return DeadlineScheduled(
        **deadline_fields(ans, kind),
        demand_type="assistance" if kind == "demand" else "reanalysis",
        started_at=at(2025, 11, 3),
        immediate=False,
        rule_id="rn623.deadline.assistance",
        legal_basis="RN 623/2024",
        ruleset_id="default",
    )


def met(ans: str, hours: float, business_days: int, *, late: bool = False) -> DeadlineMet:
    """A demand deadline met in November 2025."""
    return DeadlineMet(
        **deadline_fields(ans),
        answered_at=at(2025, 11, 12),
        late=late,
        elapsed_business_days=business_days,
        elapsed_seconds=hours * 3600,
    )


def answered(ans: str, outcome: str, demand_id: uuid.UUID | None = None) -> DemandAnswered:
    """A conclusive answer given in November 2025."""
    return DemandAnswered(
        protocol_number=protocol(ans, at(2025, 11, 3)),
        ans_registry=ans,
        demand_id=demand_id or uuid.uuid4(),
        outcome=outcome,
        text="Procedimento autorizado conforme contrato.",
        legal_basis="Cláusula 12 do contrato" if outcome == "denied" else None,
        answered_at=at(2025, 11, 12),
        reanalysis_allowed=outcome in ("denied", "partially_authorized"),
    )


async def test_indicators_count_deadlines_answers_reanalyses_and_complaints(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    ans = "900001"
    await add_operator(runtime, ans)
    now = at(2025, 11, 12)
    breached = DeadlineBreached(**deadline_fields(ans), breached_at=at(2025, 11, 11, 3))
    await feed(
        runtime,
        "deadlines",
        [
            scheduled(ans),
            scheduled(ans),
            scheduled(ans),
            scheduled(ans, "reanalysis"),
            met(ans, 10, 1),
            met(ans, 20, 3),
            met(ans, 30, 6, late=True),
            breached,
        ],
        now,
    )
    reanalysis_id = uuid.uuid4()
    await feed(
        runtime,
        "demands_registered",
        [
            DemandRegistered(
                protocol_number=protocol(ans, now),
                ans_registry=ans,
                demand_id=reanalysis_id,
                demand_type="reanalysis",
                requested_at=at(2025, 11, 5),
                registered_at=at(2025, 11, 5),
                due_at=at(2025, 11, 14),
                immediate=False,
                deadline_rule_id="rn623.deadline.reanalysis",
                deadline_legal_basis="RN 623/2024",
                deadline_unit="business_days",
                deadline_amount=7,
                ruleset_id="default",
                reanalysis_of=uuid.uuid4(),
            )
        ],
        now,
    )
    await feed(
        runtime,
        "demands_answered",
        [
            answered(ans, "denied"),
            answered(ans, "denied"),
            answered(ans, "partially_authorized"),
            answered(ans, "authorized"),
            answered(ans, "authorized", reanalysis_id),
        ],
        now,
    )
    await complain(runtime, ans, 2, at(2025, 11, 4), source="ouvidoria", classification="reembolso")
    await complain(runtime, ans, 1, at(2025, 11, 4))

    reader = token(operators=[ans], scopes=[READ])
    body = await get_json(app_client, f"/v1/indicators/{ans}", reader)
    assert (body["operator"], body["quarter"]) == (ans, "2025Q4")
    demand, reanalysis, records = body["deadlines"]
    assert demand == {
        "kind": "demand",
        "scheduled": 3,
        "met_on_time": 2,
        "met_late": 1,
        "breached": 1,
        "on_time_share": 0.5,
        "average_hours": 20.0,
        "average_business_days": 3.33,
    }
    assert (reanalysis["kind"], reanalysis["scheduled"], reanalysis["on_time_share"]) == (
        "reanalysis",
        1,
        None,
    )
    assert records == {
        "kind": "records_access",
        "scheduled": 0,
        "met_on_time": 0,
        "met_late": 0,
        "breached": 0,
        "on_time_share": None,
        "average_hours": None,
        "average_business_days": None,
    }
    assert body["answers"] == {
        "authorized": 1,
        "partially_authorized": 1,
        "denied": 2,
        "informed": 0,
        "resolved": 0,
    }
    assert body["reanalysis"] == {
        "requested": 1,
        "rate": 0.3333,  # 1 request / (2 denied + 1 partially authorized)
        "outcomes": {
            "authorized": 1,
            "partially_authorized": 0,
            "denied": 0,
            "informed": 0,
            "resolved": 0,
        },
    }
    assert body["complaints"] == {
        "by_source": {"nip": 1, "ouvidoria": 2, "sac": 0, "consumidor_gov": 0, "procon": 0},
        "by_classification": {"reembolso": 2},
    }
    empty = await get_json(app_client, f"/v1/indicators/{ans}", reader, quarter="2025Q3")
    assert empty["answers"]["denied"] == 0
    assert empty["reanalysis"]["rate"] is None

    assert_problem(
        await app_client.get(f"/v1/indicators/{ans}", headers=token(operators=["900002"])),
        403,
        "operator-forbidden",
    )
    assert_problem(await app_client.get("/v1/indicators/900003", headers=token()), 404)
    assert_field_problem(
        await app_client.get(f"/v1/indicators/{ans}", params={"quarter": "2026Q2"}, headers=reader),
        "query.quarter",
    )


# ---- tenants and scopes --------------------------------------------------------------------


async def test_unknown_and_hidden_operators_look_the_same(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    ans = "950001"
    await add_operator(runtime, ans)
    other = token(operators=["950002"], scopes=[READ])
    for path in (f"/v1/igr/{ans}", f"/v1/igr/{ans}/history", "/v1/igr/950003"):
        response = await app_client.get(path, headers=other if ans in path else token())
        assert_problem(response, 404)
    hidden = await app_client.get(f"/v1/igr/{ans}", headers=other)
    unknown = await app_client.get("/v1/igr/950003", headers=token())
    assert hidden.json()["detail"] == unknown.json()["detail"]
    assert_field_problem(
        await app_client.get("/v1/igr/95000", headers=token()), "path.ans_registry"
    )
    refused = await app_client.put(
        f"/v1/igr/{ans}/individual/2025Q4",
        json={"medical": "1.00"},
        headers=token(operators=["950002"], scopes=[WRITE]),
    )
    assert_problem(refused, 403, "operator-forbidden")


async def test_closing_a_quarter_needs_a_token_for_every_operator(
    app_client: httpx.AsyncClient, token: Headers, runtime: Runtime
) -> None:
    """Closing freezes every operator's figures: an admin of some operators only may not."""
    ans = "950011"
    await add_operator(runtime, ans)
    refused = await app_client.post(
        "/v1/igr/quarters/2024Q1/close", headers=token(operators=[ans], scopes=["admin"])
    )
    assert_problem(refused, 403, "operator-forbidden")
    still = await get_json(app_client, f"/v1/igr/{ans}?quarter=2024Q1", token())
    assert still["status"] == "open"


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("PUT", "/v1/operators/123456/beneficiaries/2025-10", WRITE),
        ("GET", "/v1/operators/123456/beneficiaries", READ),
        ("POST", "/v1/beneficiaries/import", WRITE),
        ("PUT", "/v1/igr/123456/individual/2025Q4", WRITE),
        ("GET", "/v1/igr/123456", READ),
        ("GET", "/v1/igr/123456/history", READ),
        ("GET", "/v1/igr/ranking", READ),
        ("GET", "/v1/igr/export", READ),
        ("GET", "/v1/indicators/123456", READ),
        ("POST", "/v1/igr/quarters/2025Q3/close", "admin"),
    ],
)
async def test_every_endpoint_needs_a_token_with_its_scope(
    app_client: httpx.AsyncClient, token: Headers, method: str, path: str, scope: str
) -> None:
    missing = await app_client.request(method, path)
    assert_problem(missing, 401, "unauthorized")
    others = [s for s in (READ, WRITE, "protocols:read") if s != scope]
    wrong = await app_client.request(method, path, headers=token(scopes=others))
    assert_problem(wrong, 403, "insufficient-scope")
    allowed = await app_client.request(method, path, headers=token(scopes=[scope]))
    assert allowed.status_code not in (401, 403), allowed.text
