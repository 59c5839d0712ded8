"""A small HTTP server that records the callbacks it receives (a webhook stand-in for tests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from rn623_devinfra.ports import LOCALHOST
from rn623_devinfra.provider_emulators.config import require_loopback
from rn623_devinfra.provider_emulators.serving import serve_asgi

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the receiver got: the full URL, headers (lower-case names) and raw body."""

    method: str
    url: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body parsed as a form."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass
class CallbackReceiver:
    """Records every request; can answer errors to the next ones to exercise retries."""

    url: str = ""
    requests: list[ReceivedRequest] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer ``status`` to the next ``count`` requests (and record them all the same)."""
        self._failures.extend([status] * count)

    def received(self, path: str | None = None) -> list[ReceivedRequest]:
        """The requests received so far (to ``path`` only, when given)."""
        return [r for r in self.requests if path is None or r.path == path]

    async def wait_for(
        self, count: int, *, path: str | None = None, max_seconds: float = 5.0
    ) -> list[ReceivedRequest]:
        """Wait until ``count`` requests (to ``path``) arrived; return them."""
        deadline = time.monotonic() + max_seconds
        while len(found := self.received(path)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} callbacks within {max_seconds} s")
            await asyncio.sleep(0.01)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app."""
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            event = await receive()
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode()
        url = f"{scope['scheme']}://{headers.get('host', '')}{scope['path']}"
        self.requests.append(
            ReceivedRequest(
                method=scope["method"],
                url=f"{url}?{query}" if query else url,
                path=scope["path"],
                headers=headers,
                body=b"".join(chunks),
            )
        )
        status = self._failures.pop(0) if self._failures else 200
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok" if status == 200 else b"no"})


@contextlib.asynccontextmanager
async def running_callback_receiver(
    host: str = LOCALHOST, port: int = 0
) -> AsyncIterator[CallbackReceiver]:
    """Run a :class:`CallbackReceiver` on loopback; ``receiver.url`` is its base URL."""
    require_loopback(host)
    receiver = CallbackReceiver()
    async with serve_asgi(receiver, host, port, lifespan="off") as bound:
        receiver.url = f"http://{host}:{bound}"
        yield receiver
