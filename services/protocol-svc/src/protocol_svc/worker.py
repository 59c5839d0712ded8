"""protocol-svc worker: publishes the outbox and consumes the contact centers' events
(python -m protocol_svc.worker)."""

from __future__ import annotations

import argparse
import asyncio

from protocol_svc.consumers import event_consumer
from protocol_svc.numbering import SequenceAllocator
from protocol_svc.operations import Runtime
from protocol_svc.settings import ProtocolSettings
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
    settings: ProtocolSettings | None = None,
    clock: Clock | None = None,
    command: argparse.Namespace | None = None,
) -> None:
    """Run the outbox relay and the ``contact-center.inbound`` consumer until SIGTERM."""
    settings = settings or ProtocolSettings()
    configure_logging(
        settings.service_name, settings.telemetry.log_level, json=settings.telemetry.log_json
    )
    configure_telemetry(settings.telemetry, settings.service_name)
    engine = create_worker_engine(settings.database_url, pool_size=4)
    sequences_engine = create_worker_engine(settings.database_url, pool_size=2)
    rt = Runtime(
        engine=engine,
        sessions=session_factory(engine),
        allocator=SequenceAllocator(sequences_engine, settings.sequence_block_size),
        clock=clock or settings.make_clock(),
        source=settings.service_name,
    )
    dead_letters = DeadLetterPublisher(settings.kafka, dlq_topic(settings.service_name))
    relay = OutboxRelay(engine, settings.kafka, service=settings.service_name)
    consumer = event_consumer(rt, settings.kafka, dead_letters, sources=settings.inbound_sources)
    try:
        await run_worker(
            command, settings, [consumer], [relay.run, consumer.run, *worker_http(settings, engine)]
        )
    finally:
        await dead_letters.close()
        await engine.dispose()
        await sequences_engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(command=worker_command("protocol-svc")))
