"""The HTTP stack of a service with no database: the ceiling of any endpoint's rate.

Same FastAPI app factory, middleware (problem+json, metrics, OpenTelemetry), JWT check
and request/response models as protocol-svc's ``POST /v1/protocols``, but the handler
only validates and answers. Run by bench/protocols.py next to the real service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI

from protocol_svc.schemas import ProtocolCreated, ProtocolIn
from rn623_events.auth import Principal, require_scopes
from rn623_events.http import create_service_app
from rn623_events.settings import ServiceSettings

router = APIRouter(prefix="/v1")


@router.post("/protocols", status_code=201, response_model=ProtocolCreated)
async def open_protocol(
    body: ProtocolIn,
    principal: Annotated[Principal, Depends(require_scopes("protocols:write"))],
) -> ProtocolCreated:
    """Validate the request and answer, touching no database."""
    return ProtocolCreated(protocol_number="0" * 20, opened_at=datetime.now(UTC))


def create_app() -> FastAPI:
    """The app (settings from the environment, as a service's)."""
    return create_service_app(
        settings=ServiceSettings(service_name="framework-ceiling"),
        title="framework ceiling",
        version="0",
        routers=[router],
        readiness_checks={},
    )
