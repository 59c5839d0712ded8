"""OpenTelemetry tracing: the process tracer provider and the official instrumentations."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from rn623_events.settings import TelemetrySettings

# Probes and scrapes would drown the traces.
EXCLUDED_URLS = "/livez,/readyz,/metrics"
_EXCLUDED_PATHS = frozenset(EXCLUDED_URLS.split(","))
_TRACE_HEADERS = (b"traceparent", b"tracestate")


def configure_telemetry(settings: TelemetrySettings, service_name: str) -> TracerProvider:
    """Install (once per process) an SDK tracer provider; export via OTLP when configured.

    Without an endpoint nothing would read the spans, so none is sampled: spans are
    non-recording and cost almost nothing, yet they still carry trace ids, so logs,
    problem responses and events (``traceparent``) stay correlated. With an endpoint,
    callers' sampling decisions are followed and new traces are recorded.
    With ``otel_sdk_disabled`` nothing is installed and a never-sampling provider is returned.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    resource = Resource.create({SERVICE_NAME: service_name})
    if settings.otel_sdk_disabled:
        return TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    exporting = bool(settings.otel_exporter_otlp_endpoint)
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(ALWAYS_ON) if exporting else ALWAYS_OFF
    )
    if settings.otel_exporter_otlp_endpoint:
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider


def instrument_app(app: FastAPI, *, exporting: bool) -> None:
    """Run every request of ``app`` in a span (probes and ``/metrics`` excluded).

    Exporting: the official FastAPI instrumentation, one span per request with its route
    and attributes. The ASGI layer's extra span per body chunk received and sent says
    nothing a reader needs and cost ~6 % of a busy API's CPU, so it is left out.
    Not exporting: no span is recorded, yet a request's trace id still ties its log lines,
    its problem+json answer and its events together; ``TraceContextMiddleware`` keeps
    just that.
    """
    if exporting:
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"]
        )
        return
    build = app.build_middleware_stack

    def outermost() -> ASGIApp:
        # outside Starlette's ServerErrorMiddleware, whose 500 answer must carry the id
        return TraceContextMiddleware(build())

    app.build_middleware_stack = outermost  # type: ignore[method-assign]


class TraceContextMiddleware:
    """Runs each HTTP request in a span of the caller's trace (``traceparent``) or of a
    new one, and nothing more.

    This is what the FastAPI instrumentation gives when no span is recorded, without the
    attributes, route lookup and semantic-convention bookkeeping it does for every request
    whether the span records or not: ~150 µs of CPU per request, more than all the rest of
    the service's middleware and routing together (docs/performance.md). The span comes
    from the installed tracer provider, so its sampler still decides.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = trace.get_tracer(__name__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the request's span, make it current, run the app, end it."""
        if scope["type"] != "http" or scope["path"] in _EXCLUDED_PATHS:
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _TRACE_HEADERS
        }
        parent = propagate.extract(carrier) if carrier else None
        span = self.tracer.start_span(scope["method"], context=parent, kind=SpanKind.SERVER)
        with trace.use_span(span, end_on_exit=True):
            await self.app(scope, receive, send)


def exporting_traces(settings: TelemetrySettings) -> bool:
    """Whether spans are exported (an OTLP endpoint is set and the SDK is enabled)."""
    return bool(settings.otel_exporter_otlp_endpoint) and not settings.otel_sdk_disabled


def instrument_engine(engine: AsyncEngine) -> None:
    """Trace the statements run on ``engine`` (statement text only, never parameters).

    The instrumentor is process-wide: the first call instruments ``engine`` and wraps the
    engine factories, so engines created afterwards through them are traced too; later calls
    are no-ops.
    """
    instrumentor = SQLAlchemyInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        # The instrumentation declares "sqlalchemy < 2.1" but its engine event hooks work on
        # the locked 2.1; without skipping the check it silently instruments nothing.
        instrumentor.instrument(engine=engine.sync_engine, skip_dep_check=True)


def instrument_httpx() -> None:
    """Trace, and propagate trace context on, every httpx client request."""
    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
