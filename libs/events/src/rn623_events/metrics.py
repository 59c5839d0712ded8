"""Prometheus metrics: the ``/metrics`` ASGI app and per-route HTTP request metrics."""

from __future__ import annotations

import functools
import time
from collections.abc import MutableMapping
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_asgi_app
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled, by route template and status code.",
    ["service", "method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request handling time in seconds, by route template.",
    ["service", "method", "route"],
)


class MetricsApp:
    """ASGI app exposing a Prometheus registry; usable with ``mount`` or as a route endpoint."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._app: ASGIApp = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the exposition (content negotiation and gzip by prometheus_client)."""
        await self._app(scope, receive, send)


def metrics_app(registry: CollectorRegistry = REGISTRY) -> MetricsApp:
    """Return an ASGI app serving ``registry`` in the Prometheus exposition format."""
    return MetricsApp(registry)


def route_template(scope: MutableMapping[str, Any]) -> str:
    """Template of the route matching ``scope`` (``/v1/protocols/{number}``) or ``unmatched``."""
    path = scope["path"]
    # keep the cache small whatever paths clients send
    template_of = _template_of if len(path) <= 256 else _template_of.__wrapped__
    return template_of(
        scope.get("app"), scope["type"], scope["method"], path, scope.get("root_path", "")
    )


@functools.lru_cache(maxsize=4096)
def _template_of(app: Any, kind: str, method: str, path: str, root_path: str) -> str:
    """The route template of a request line (matching every route costs ~3 % of a busy
    API's CPU, and the hot ones repeat the same paths)."""
    scope = {"type": kind, "method": method, "path": path, "root_path": root_path}
    partial = None
    for route in iter_route_contexts(getattr(app, "routes", [])):
        match, _ = route.matches(scope)
        if match is Match.NONE:
            continue
        template = route.path if isinstance(route.original_route, Mount) else route.path_format
        if match is Match.FULL:
            return str(template)
        partial = partial or template
    return str(partial) if partial else UNMATCHED


class MetricsMiddleware:
    """ASGI middleware counting and timing HTTP requests per route template and status."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and record it once the response status is known."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Match before routing: mounts rewrite the scope's paths on the way in.
        route = route_template(dict(scope))
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(self.service, method, route).observe(
                time.perf_counter() - started
            )
