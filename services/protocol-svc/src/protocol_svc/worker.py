"""protocol-svc worker: publishes the outbox (python -m protocol_svc.worker)."""

from __future__ import annotations

import asyncio

from protocol_svc.settings import ProtocolSettings
from rn623_events.db import create_engine
from rn623_events.logs import configure_logging
from rn623_events.outbox import OutboxRelay
from rn623_events.telemetry import configure_telemetry
from rn623_events.worker import run_components


async def main(settings: ProtocolSettings | None = None) -> None:
    """Run the outbox relay until SIGTERM."""
    settings = settings or ProtocolSettings()
    configure_logging(
        settings.service_name, settings.telemetry.log_level, json=settings.telemetry.log_json
    )
    configure_telemetry(settings.telemetry, settings.service_name)
    engine = create_engine(settings.database_url, pool_size=4)
    relay = OutboxRelay(engine, settings.kafka, service=settings.service_name)
    try:
        await run_components([relay.run])
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
