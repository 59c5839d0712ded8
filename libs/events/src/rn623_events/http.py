"""The FastAPI application factory every service uses."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.types import Lifespan

from rn623_events.auth import TokenVerifier
from rn623_events.clock import Clock, SystemClock
from rn623_events.health import Check, health_router
from rn623_events.logs import configure_logging
from rn623_events.metrics import MetricsMiddleware, metrics_app
from rn623_events.openapi import problem_openapi
from rn623_events.problems import install_problem_handlers
from rn623_events.settings import ServiceSettings
from rn623_events.telemetry import configure_telemetry, exporting_traces, instrument_app


def _closing_checks(
    lifespan: Lifespan[FastAPI] | None, checks: Mapping[str, Check]
) -> Lifespan[FastAPI]:
    """Wrap ``lifespan`` so that checks holding connections (``aclose``) close at shutdown."""

    @asynccontextmanager
    async def wrapped(app: FastAPI) -> AsyncIterator[Any]:
        context: AbstractAsyncContextManager[Any] = lifespan(app) if lifespan else nullcontext()
        try:
            async with context as state:
                # What start-up built lives as long as the process: keep it out of the
                # collector's full passes, which otherwise stall busy requests.
                gc.freeze()
                yield state
        finally:
            for check in checks.values():
                close = getattr(check, "aclose", None)
                if close is not None:
                    await close()

    return wrapped


def create_service_app(
    *,
    settings: ServiceSettings,
    title: str,
    version: str,
    routers: Sequence[APIRouter],
    readiness_checks: Mapping[str, Check],
    lifespan: Lifespan[FastAPI] | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build a service app: logs, traces, problem+json errors, metrics, probes and auth."""
    telemetry = settings.telemetry
    configure_logging(settings.service_name, telemetry.log_level, json=telemetry.log_json)
    configure_telemetry(telemetry, settings.service_name)
    app = FastAPI(
        title=title,
        version=version,
        lifespan=_closing_checks(lifespan, readiness_checks),
        # FastAPI's own OpenTelemetry layer would duplicate the instrumentation below and
        # the Prometheus metrics, and costs CPU on every request even with nothing exported.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    # The document shows errors as they are sent: problem+json, 401/403 when secured.
    app.openapi = problem_openapi(app.openapi)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.clock = clock or settings.make_clock()
    # Token lifetimes are security, not business time: they are checked against the real
    # wall clock even when the service's clock is shifted (end-to-end runs) or manual.
    app.state.token_verifier = TokenVerifier(settings.auth, SystemClock())
    install_problem_handlers(app)
    app.add_middleware(MetricsMiddleware, service=settings.service_name)
    # Starlette serves a non-function endpoint as a plain ASGI app (exact path, no redirect).
    app.add_route("/metrics", metrics_app(), include_in_schema=False)  # type: ignore[arg-type]
    app.include_router(health_router(readiness_checks))
    for router in routers:
        app.include_router(router)
    # Always: even with nothing exported, the request's trace id ties a problem+json
    # answer to the service's log lines.
    instrument_app(app, exporting=exporting_traces(telemetry))
    return app


async def app_runtime(request: Request) -> Any:
    """FastAPI dependency: the runtime the app's lifespan stored in ``app.state.runtime``
    (async, so it needs no worker thread)."""
    return request.app.state.runtime
