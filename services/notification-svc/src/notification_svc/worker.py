"""notification-svc worker: the consumers, the dispatcher, the fallback timer and the
outbox relay (python -m notification_svc.worker)."""

from __future__ import annotations

import argparse
import asyncio

from notification_svc.consumers import event_consumers
from notification_svc.dispatcher import Dispatcher, FallbackTimer
from notification_svc.gauges import refresh_gauges
from notification_svc.provider_setup import build_providers
from notification_svc.runtime import Runtime
from notification_svc.settings import NotificationSettings
from rn623_events.clock import Clock
from rn623_events.db import create_worker_engine, session_factory
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.logs import configure_logging
from rn623_events.outbox import OutboxRelay
from rn623_events.telemetry import configure_telemetry
from rn623_events.topics import dlq_topic
from rn623_events.worker import (
    periodic,
    run_worker,
    worker_command,
)
from rn623_events.worker_http import worker_http


async def main(
    settings: NotificationSettings | None = None,
    clock: Clock | None = None,
    command: argparse.Namespace | None = None,
) -> None:
    """Run the consumers, the dispatcher, the fallback timer and the relay until SIGTERM."""
    settings = settings or NotificationSettings()
    configure_logging(
        settings.service_name, settings.telemetry.log_level, json=settings.telemetry.log_json
    )
    configure_telemetry(settings.telemetry, settings.service_name)
    # the consumers' lanes, the relay's two, the dispatcher, the timers and the health
    # check: below this, overflow connections would be opened and closed all the time
    engine = create_worker_engine(settings.database_url, pool_size=12)
    providers = build_providers(settings)
    rt = Runtime(
        sessions=session_factory(engine),
        clock=clock or settings.make_clock(),
        settings=settings,
        providers=providers,
    )
    dead_letters = DeadLetterPublisher(settings.kafka, dlq_topic(settings.service_name))
    relay = OutboxRelay(engine, settings.kafka, service=settings.service_name)
    consumers = event_consumers(rt, settings.kafka, dead_letters)
    try:
        await run_worker(
            command,
            settings,
            consumers,
            [
                relay.run,
                Dispatcher(rt).run,
                periodic(
                    FallbackTimer(rt).tick,
                    settings.fallback_interval_seconds,
                    what="fallback timer",
                ),
                periodic(
                    lambda: refresh_gauges(rt), settings.gauges_interval_seconds, what="gauges"
                ),
                *(c.run for c in consumers),
                *worker_http(settings, engine),
            ],
        )
    finally:
        await providers.aclose()
        await dead_letters.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(command=worker_command("notification-svc")))
