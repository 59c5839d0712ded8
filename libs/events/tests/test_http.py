"""The service app factory: probes, metrics, auth wiring, telemetry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, ClassVar

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util._once import Once
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from rn623_events import telemetry
from rn623_events.auth import Principal, mint_token, require_scopes
from rn623_events.clock import ManualClock
from rn623_events.health import Check, database_check, health_router, kafka_check
from rn623_events.http import create_service_app
from rn623_events.settings import AuthSettings, KafkaSettings, ServiceSettings, TelemetrySettings
from rn623_events.telemetry import configure_telemetry, instrument_engine, instrument_httpx

pytestmark = pytest.mark.unit

SECRET = "k" * 40
START = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
PROTOCOL = "12345620250115000001"


def _settings(**auth: object) -> ServiceSettings:
    return ServiceSettings(
        service_name="test-svc",
        auth=AuthSettings(**({"secret": SecretStr(SECRET), "issuer": "rn623-test"} | auth)),
        telemetry=TelemetrySettings(otel_sdk_disabled=True, otel_exporter_otlp_endpoint=None),
    )


def _token(scopes: tuple[str, ...] = ("protocols:read",), now: datetime | None = None) -> str:
    """A token minted now (real time: token lifetimes are checked on the wall clock)."""
    return mint_token(
        SECRET,
        subject="tester",
        operators=["123456"],
        scopes=scopes,
        ttl=timedelta(minutes=5),
        issuer="rn623-test",
        audience="rn623",
        now=now or datetime.now(UTC),
    )


def _routers() -> list[APIRouter]:
    protocols = APIRouter(prefix="/protocols")

    @protocols.get("/{number}")
    async def get_protocol(
        number: str, principal: Annotated[Principal, Depends(require_scopes("protocols:read"))]
    ) -> dict[str, str]:
        return {"number": number}

    v1 = APIRouter(prefix="/v1")
    v1.include_router(protocols)
    return [v1]


async def _ok() -> None:
    return None


async def _refused() -> None:
    raise ConnectionRefusedError("db.internal:5432 password=hunter2")


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    filters = [h.filters[:] for h in handlers]
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler, kept in zip(handlers, filters, strict=True):
        handler.filters[:] = kept
    root.setLevel(level)


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def _app(checks: dict[str, Check] | None = None, clock: ManualClock | None = None) -> FastAPI:
    return create_service_app(
        settings=_settings(),
        title="Test service",
        version="1.2.3",
        routers=_routers(),
        readiness_checks=checks if checks is not None else {"database": _ok},
        clock=clock or ManualClock(START),
    )


# --- probes ----------------------------------------------------------------------------------


async def test_livez_and_readyz_without_auth() -> None:
    async with _client(_app({"database": _ok, "kafka": _ok})) as http:
        live = await http.get("/livez")
        ready = await http.get("/readyz")
    assert live.status_code == 200
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "kafka": "ok"}}


async def test_readyz_503_names_the_failing_check_only_by_type() -> None:
    async with _client(_app({"database": _refused, "kafka": _ok})) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "failed: ConnectionRefusedError", "kafka": "ok"},
    }
    assert "hunter2" not in response.text


async def test_readyz_times_out_and_runs_checks_concurrently() -> None:
    first, second = asyncio.Event(), asyncio.Event()

    async def waits_for_second() -> None:
        first.set()
        await second.wait()

    async def waits_for_first() -> None:
        second.set()
        await first.wait()

    async def hangs() -> None:
        await asyncio.Event().wait()

    app = FastAPI()
    checks = {"a": waits_for_second, "b": waits_for_first, "slow": hangs}
    app.include_router(health_router(checks, timeout=0.2))
    async with _client(app) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"a": "ok", "b": "ok", "slow": "failed: TimeoutError"}


async def test_database_check_against_a_closed_port() -> None:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    app = FastAPI()
    app.include_router(health_router({"database": database_check(engine)}))
    try:
        async with _client(app) as http:
            response = await http.get("/readyz")
    finally:
        await engine.dispose()
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("failed: ")


async def test_kafka_check_against_a_closed_port() -> None:
    check = kafka_check(KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_ms=1000))
    app = FastAPI()
    app.include_router(health_router({"kafka": check}))
    async with _client(app) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["kafka"].startswith("failed: ")
    assert check._client is None  # dropped, so the next probe reconnects
    await check.aclose()


# --- metrics ---------------------------------------------------------------------------------


def _requests(route: str, status: str) -> float:
    labels = {"service": "test-svc", "method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


async def test_metrics_use_the_route_template() -> None:
    template = "/v1/protocols/{number}"
    before_ok, before_401 = _requests(template, "200"), _requests(template, "401")
    before_unmatched = _requests("unmatched", "404")
    async with _client(_app()) as http:
        auth = {"Authorization": f"Bearer {_token()}"}
        assert (await http.get(f"/v1/protocols/{PROTOCOL}", headers=auth)).status_code == 200
        assert (await http.get(f"/v1/protocols/{PROTOCOL}")).status_code == 401
        assert (await http.get(f"/nope/{PROTOCOL}")).status_code == 404
        exposition = await http.get("/metrics")
    assert exposition.status_code == 200
    assert _requests(template, "200") == before_ok + 1
    assert _requests(template, "401") == before_401 + 1
    assert _requests("unmatched", "404") == before_unmatched + 1
    text = exposition.text
    assert 'route="/v1/protocols/{number}"' in text
    assert "http_request_duration_seconds_bucket" in text
    assert PROTOCOL not in text


# --- auth wiring, state, OpenAPI -------------------------------------------------------------


async def test_business_clock_is_the_apps_but_token_lifetimes_use_the_real_clock() -> None:
    clock = ManualClock(START)  # business time months away from the real one
    app = _app(clock=clock)
    assert app.state.clock is clock
    async with _client(app) as http:
        fresh = {"Authorization": f"Bearer {_token()}"}
        assert (await http.get(f"/v1/protocols/{PROTOCOL}", headers=fresh)).status_code == 200
        clock.advance(timedelta(days=30))  # moving business time does not expire tokens
        assert (await http.get(f"/v1/protocols/{PROTOCOL}", headers=fresh)).status_code == 200
        stale = _token(now=datetime.now(UTC) - timedelta(hours=1))
        expired = await http.get(
            f"/v1/protocols/{PROTOCOL}", headers={"Authorization": f"Bearer {stale}"}
        )
    assert expired.status_code == 401
    assert expired.headers["content-type"] == "application/problem+json"
    assert expired.json()["reason"] == "expired"


async def test_wrong_scope_is_403() -> None:
    auth = {"Authorization": f"Bearer {_token(scopes=('deadlines:read',))}"}
    async with _client(_app()) as http:
        response = await http.get(f"/v1/protocols/{PROTOCOL}", headers=auth)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


def test_openapi_has_bearer_scheme_and_hides_probes() -> None:
    schema = _app().openapi()
    assert schema["info"] == {"title": "Test service", "version": "1.2.3"}
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "/v1/protocols/{number}" in schema["paths"]
    assert not {"/livez", "/readyz", "/metrics"} & set(schema["paths"])


def test_app_refuses_to_start_without_a_jwt_key() -> None:
    with pytest.raises(ValueError, match="JWT_SECRET"):
        create_service_app(
            settings=_settings(secret=None),
            title="t",
            version="0",
            routers=[],
            readiness_checks={},
        )


async def test_lifespan_runs_and_closes_checks() -> None:
    events: list[str] = []

    class Closable:
        async def __call__(self) -> None:
            return None

        async def aclose(self) -> None:
            events.append("closed")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("started")
        yield
        events.append("stopped")

    app = create_service_app(
        settings=_settings(),
        title="t",
        version="0",
        routers=[],
        readiness_checks={"kafka": Closable()},
        lifespan=lifespan,
    )
    async with app.router.lifespan_context(app):
        assert events == ["started"]
    assert events == ["started", "stopped", "closed"]


# --- telemetry -------------------------------------------------------------------------------


@pytest.fixture
def fresh_tracer_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test install a global tracer provider without leaking it to other tests."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())


@pytest.mark.usefixtures("fresh_tracer_provider")
def test_configure_telemetry_is_idempotent() -> None:
    settings = TelemetrySettings(otel_sdk_disabled=False, otel_exporter_otlp_endpoint=None)
    first = configure_telemetry(settings, "protocol-svc")
    second = configure_telemetry(settings, "other-svc")
    assert first is second
    assert trace.get_tracer_provider() is first
    assert first.resource.attributes[SERVICE_NAME] == "protocol-svc"


@pytest.mark.usefixtures("fresh_tracer_provider")
def test_configure_telemetry_disabled_installs_nothing() -> None:
    settings = TelemetrySettings(otel_sdk_disabled=True)
    provider = configure_telemetry(settings, "protocol-svc")
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert not provider.get_tracer("t").start_span("s").is_recording()


class _FakeExporter(SpanExporter):
    """Collects spans instead of sending them."""

    endpoints: ClassVar[list[str]] = []
    spans: ClassVar[list[str]] = []

    def __init__(self, endpoint: str) -> None:
        self.endpoints.append(endpoint)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(span.name for span in spans)
        return SpanExportResult.SUCCESS


@pytest.mark.usefixtures("fresh_tracer_provider")
def test_configure_telemetry_with_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "OTLPSpanExporter", _FakeExporter)
    settings = TelemetrySettings(otel_exporter_otlp_endpoint="http://collector:4318/")
    provider = configure_telemetry(settings, "protocol-svc")
    with provider.get_tracer("t").start_as_current_span("exported"):
        pass
    provider.force_flush()
    provider.shutdown()
    assert _FakeExporter.endpoints == ["http://collector:4318/v1/traces"]
    assert _FakeExporter.spans == ["exported"]


@pytest.mark.usefixtures("fresh_tracer_provider")
async def test_requests_are_traced_and_problems_carry_the_trace_id() -> None:
    settings = _settings()
    settings.telemetry = TelemetrySettings(otel_sdk_disabled=False)
    app = create_service_app(
        settings=settings, title="t", version="0", routers=_routers(), readiness_checks={}
    )
    async with _client(app) as http:
        response = await http.get(f"/v1/protocols/{PROTOCOL}")
    assert response.status_code == 401
    assert len(response.json()["trace_id"]) == 32


def test_instrument_engine_and_httpx() -> None:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    engines, clients = SQLAlchemyInstrumentor(), HTTPXClientInstrumentor()
    already = engines.is_instrumented_by_opentelemetry, clients.is_instrumented_by_opentelemetry
    try:
        instrument_engine(engine)
        instrument_engine(engine)
        instrument_httpx()
        instrument_httpx()
        assert engines.is_instrumented_by_opentelemetry
        assert clients.is_instrumented_by_opentelemetry
    finally:
        if not already[0]:
            engines.uninstrument()
        if not already[1]:
            clients.uninstrument()


def _failing_routers() -> list[APIRouter]:
    """The test routes, and one whose bug is an unhandled error (a 500)."""
    broken = APIRouter()

    @broken.get("/v1/broken")
    async def broken_route() -> None:
        raise RuntimeError("bug")

    return [*_routers(), broken]


@pytest.mark.usefixtures("fresh_tracer_provider")
async def test_unexported_requests_keep_the_callers_trace_without_the_instrumentation() -> None:
    """Nothing is exported: no span records, yet every answer, a 500 included, names the
    trace it ran in, the caller's when it sent a ``traceparent``."""
    settings = _settings()
    settings.telemetry = TelemetrySettings(otel_sdk_disabled=False)
    app = create_service_app(
        settings=settings, title="t", version="0", routers=_failing_routers(), readiness_checks={}
    )
    caller = "4bf92f3577b34da6a3ce929d0e0e4736"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # the 500 is answered
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        continued = await http.get(
            f"/v1/protocols/{PROTOCOL}",
            headers={"traceparent": f"00-{caller}-00f067aa0ba902b7-01"},
        )
        new = await http.get(f"/v1/protocols/{PROTOCOL}")
        failed = await http.get(
            "/v1/broken", headers={"traceparent": f"00-{caller}-1111111111111111-00"}
        )
    assert continued.status_code == 401
    assert continued.json()["trace_id"] == caller
    assert len(new.json()["trace_id"]) == 32
    assert new.json()["trace_id"] != caller
    assert failed.status_code == 500
    assert failed.json()["trace_id"] == caller
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)


@pytest.mark.usefixtures("fresh_tracer_provider")
async def test_exported_requests_are_recorded_by_the_fastapi_instrumentation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(telemetry, "OTLPSpanExporter", _FakeExporter)
    monkeypatch.setattr(_FakeExporter, "spans", [])
    settings = _settings()
    settings.telemetry = TelemetrySettings(otel_exporter_otlp_endpoint="http://collector:4318")
    app = create_service_app(
        settings=settings, title="t", version="0", routers=_routers(), readiness_checks={}
    )
    async with _client(app) as http:
        response = await http.get(f"/v1/protocols/{PROTOCOL}")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.force_flush()
    provider.shutdown()
    assert response.json()["trace_id"]
    assert _FakeExporter.spans == ["GET /v1/protocols/{number}"]
