"""The emulators' FastAPI app: three providers, the control API and the inbox page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import HTMLResponse, Response

from rn623_devinfra.provider_emulators.config import EmulatorConfig
from rn623_devinfra.provider_emulators.inbox import render_inbox
from rn623_devinfra.provider_emulators.meta import meta_router
from rn623_devinfra.provider_emulators.state import EmulatorState
from rn623_devinfra.provider_emulators.store import (
    CALLBACK_FAULTS,
    PROVIDERS,
    FaultMode,
    ProviderName,
)
from rn623_devinfra.provider_emulators.twilio import twilio_router
from rn623_devinfra.provider_emulators.zenvia import zenvia_router


class FaultRequest(BaseModel):
    """Body of ``POST /_emulator/faults``."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName
    mode: FaultMode
    channel: str | None = None
    count: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, ge=0)
    retry_after: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _smtp_has_no_callbacks(self) -> FaultRequest:
        if self.provider == "smtp" and self.mode in CALLBACK_FAULTS:
            raise ValueError("SMTP has no delivery callbacks")
        return self


def create_app(config: EmulatorConfig | None = None, state: EmulatorState | None = None) -> FastAPI:
    """The emulators' app; ``app.state.emulator`` is its :class:`EmulatorState`."""
    state = state or EmulatorState.create(config or EmulatorConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Stop pending callbacks and close their HTTP client at shutdown."""
        try:
            yield
        finally:
            await state.callbacks.aclose()

    app = FastAPI(
        title="Provider emulators (Zenvia, Twilio, Meta WhatsApp, SMTP sink)",
        lifespan=lifespan,
        docs_url="/_emulator/docs",
        openapi_url="/_emulator/openapi.json",
        redoc_url=None,
    )
    app.state.emulator = state
    app.include_router(zenvia_router(state))
    app.include_router(twilio_router(state))
    app.include_router(meta_router(state))
    store = state.store

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def inbox() -> HTMLResponse:
        """The inbox page."""
        return HTMLResponse(render_inbox(store))

    @app.get("/_emulator/health")
    async def health() -> dict[str, str]:
        """Liveness for runners."""
        return {"status": "ok"}

    @app.get("/_emulator/messages")
    async def messages(provider: str | None = None, channel: str | None = None) -> dict[str, Any]:
        """Everything received (oldest first) and the request count per provider."""
        return {
            "messages": [message.as_dict() for message in store.find(provider, channel)],
            "request_counts": {name: store.request_counts.get(name, 0) for name in PROVIDERS},
        }

    @app.get("/_emulator/faults")
    async def list_faults() -> list[dict[str, Any]]:
        """The active faults, oldest (applied first) first."""
        return [fault.as_dict() for fault in store.faults]

    @app.post("/_emulator/faults", status_code=201)
    async def add_fault(fault: FaultRequest) -> dict[str, Any]:
        """Inject a fault for the next ``count`` matching requests (all when null)."""
        added = store.add_fault(
            fault.provider,
            fault.mode,
            channel=fault.channel,
            count=fault.count,
            seconds=fault.seconds,
            retry_after=fault.retry_after,
        )
        return added.as_dict()

    @app.delete("/_emulator/faults", status_code=204)
    async def clear_faults(provider: str | None = None) -> Response:
        """Remove every fault (or those of one provider)."""
        if provider is not None and provider not in PROVIDERS:
            raise HTTPException(422, f"unknown provider {provider!r}")
        store.clear_faults(provider)
        return Response(status_code=204)

    @app.post("/_emulator/reset", status_code=204)
    async def reset() -> Response:
        """Forget messages, counts and faults, and drop pending callbacks."""
        await state.callbacks.cancel_all()
        store.reset()
        return Response(status_code=204)

    return app
