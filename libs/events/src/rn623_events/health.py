"""Liveness and readiness probes, and readiness checks for PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping

from aiokafka.admin import AIOKafkaAdminClient
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from rn623_events.settings import KafkaSettings

Check = Callable[[], Awaitable[None]]
CHECK_TIMEOUT_SECONDS = 2.0


async def _run_check(check: Check, seconds: float) -> str:
    try:
        async with asyncio.timeout(seconds):
            await check()
    except Exception as exc:
        # Only the type: exception messages may carry hosts, credentials or data.
        return f"failed: {type(exc).__name__}"
    return "ok"


def health_router(
    checks: Mapping[str, Check], *, timeout: float = CHECK_TIMEOUT_SECONDS
) -> APIRouter:
    """Router with ``GET /livez`` (always 200) and ``GET /readyz`` (runs ``checks``)."""
    router = APIRouter(tags=["health"])

    @router.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        """The process is up; depends on nothing."""
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """200 when every check passes within its timeout, else 503 with per-check results."""
        names = list(checks)
        outcomes = await asyncio.gather(*(_run_check(checks[name], timeout) for name in names))
        results = dict(zip(names, outcomes, strict=True))
        ready = all(outcome == "ok" for outcome in outcomes)
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": results},
            status_code=200 if ready else 503,
        )

    return router


def database_check(engine: AsyncEngine) -> Check:
    """A check running ``SELECT 1`` on ``engine``."""

    async def check() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return check


class KafkaCheck:
    """A check doing a metadata round trip on one long-lived admin client; reconnects on failure."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._client: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> None:
        """Fetch cluster metadata; drop the client on failure so the next call reconnects."""
        async with self._lock:
            try:
                if self._client is None:
                    self._client = AIOKafkaAdminClient(**self._settings.client_kwargs())
                    await self._client.start()
                await self._client.describe_cluster()
            except BaseException:
                await self.aclose()
                raise

    async def aclose(self) -> None:
        """Close the admin client, if any."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


def kafka_check(settings: KafkaSettings) -> KafkaCheck:
    """A check asking the broker for cluster metadata, reusing one client across calls."""
    return KafkaCheck(settings)
