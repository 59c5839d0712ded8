"""deadline-svc worker: the consumer, the scheduler and the outbox relay
(python -m deadline_svc.worker)."""

from __future__ import annotations

import argparse
import asyncio

from deadline_svc.consumers import event_consumers
from deadline_svc.runtime import Runtime
from deadline_svc.scheduler import Scheduler
from deadline_svc.settings import DeadlineSettings
from rn623_events.clock import Clock
from rn623_events.db import create_worker_engine, session_factory
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.logs import configure_logging
from rn623_events.outbox import OutboxRelay
from rn623_events.telemetry import configure_telemetry
from rn623_events.topics import dlq_topic
from rn623_events.worker import (
    run_worker,
    worker_command,
)
from rn623_events.worker_http import worker_http


async def main(
    settings: DeadlineSettings | None = None,
    clock: Clock | None = None,
    command: argparse.Namespace | None = None,
) -> None:
    """Run the consumer, the scheduler and the outbox relay until SIGTERM."""
    settings = settings or DeadlineSettings()
    configure_logging(
        settings.service_name, settings.telemetry.log_level, json=settings.telemetry.log_json
    )
    configure_telemetry(settings.telemetry, settings.service_name)
    engine = create_worker_engine(settings.database_url, pool_size=6)
    rt = Runtime(
        sessions=session_factory(engine),
        clock=clock or settings.make_clock(),
        source=settings.service_name,
        checkpoints=settings.warning_checkpoints,
    )
    dead_letters = DeadLetterPublisher(settings.kafka, dlq_topic(settings.service_name))
    relay = OutboxRelay(engine, settings.kafka, service=settings.service_name)
    scheduler = Scheduler(
        rt,
        batch_size=settings.scheduler_batch_size,
        interval=settings.scheduler_interval_seconds,
        gauges_interval=settings.gauges_interval_seconds,
    )
    consumers = event_consumers(rt, settings.kafka, dead_letters)
    try:
        await run_worker(
            command,
            settings,
            consumers,
            [
                relay.run,
                *scheduler.components(),
                *(c.run for c in consumers),
                *worker_http(settings, engine),
            ],
        )
    finally:
        await dead_letters.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(command=worker_command("deadline-svc")))
