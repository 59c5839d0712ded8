"""igr-svc worker: the consumer, the quarter closer and the outbox relay
(python -m igr_svc.worker)."""

from __future__ import annotations

import argparse
import asyncio

from igr_svc.closer import QuarterCloser
from igr_svc.consumers import event_consumer
from igr_svc.gauges import refresh_gauges
from igr_svc.runtime import Runtime
from igr_svc.settings import IgrSettings
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
    settings: IgrSettings | None = None,
    clock: Clock | None = None,
    command: argparse.Namespace | None = None,
) -> None:
    """Run the consumer, the closer and the relay until SIGTERM."""
    settings = settings or IgrSettings()
    configure_logging(
        settings.service_name, settings.telemetry.log_level, json=settings.telemetry.log_json
    )
    configure_telemetry(settings.telemetry, settings.service_name)
    engine = create_worker_engine(settings.database_url, pool_size=6)
    rt = Runtime.build(settings, session_factory(engine), clock or settings.make_clock())
    dead_letters = DeadLetterPublisher(settings.kafka, dlq_topic(settings.service_name))
    relay = OutboxRelay(engine, settings.kafka, service=settings.service_name)
    closer = QuarterCloser(
        rt, close_after_days=settings.close_after_days, first_quarter=settings.first_quarter
    )
    consumer = event_consumer(rt, settings.kafka, dead_letters)
    try:
        await run_worker(
            command,
            settings,
            [consumer],
            [
                relay.run,
                periodic(closer.tick, settings.closer_interval_seconds, what="quarter closing"),
                periodic(
                    lambda: refresh_gauges(rt), settings.gauges_interval_seconds, what="igr gauges"
                ),
                consumer.run,
                *worker_http(settings, engine),
            ],
        )
    finally:
        await dead_letters.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(command=worker_command("igr-svc")))
