"""retention-svc worker: the consumer, the purge runner, the access collector and the outbox
relay (python -m retention_svc.worker)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

import httpx

from retention_svc.collector import AccessCollector, TokenSource
from retention_svc.consumers import event_consumer
from retention_svc.purger import PurgeRunner
from retention_svc.runtime import Runtime
from retention_svc.settings import RetentionSettings
from rn623_events.auth import mint_token
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

RECORDS_SCOPES = ("protocols:read",)


def records_token_source(settings: RetentionSettings, clock: Clock) -> TokenSource:
    """Tokens to read an operator's records: the configured one, or minted per operator."""
    if settings.records_api_token is not None:
        fixed = settings.records_api_token.get_secret_value()
        return lambda _operator: fixed
    if settings.auth.secret is None:
        raise ValueError("set RECORDS_API_TOKEN or JWT_SECRET so the collector can read records")
    secret = settings.auth.secret.get_secret_value()

    def mint(operator: str) -> str:
        return mint_token(
            secret,
            subject=settings.service_name,
            operators=[operator],
            scopes=RECORDS_SCOPES,
            ttl=timedelta(minutes=5),
            issuer=settings.auth.issuer,
            audience=settings.auth.audience,
            now=clock.now(),
        )

    return mint


async def main(
    settings: RetentionSettings | None = None,
    clock: Clock | None = None,
    command: argparse.Namespace | None = None,
) -> None:
    """Run the consumer, the purge runner, the collector and the relay until SIGTERM."""
    settings = settings or RetentionSettings()
    configure_logging(
        settings.service_name, settings.telemetry.log_level, json=settings.telemetry.log_json
    )
    configure_telemetry(settings.telemetry, settings.service_name)
    clock = clock or settings.make_clock()
    # the consumer's lanes, the relay's two, the purge runner, the collector and the health
    # check: below this, overflow connections would be opened and closed all the time
    engine = create_worker_engine(settings.database_url, pool_size=10)
    rt = Runtime.build(settings, session_factory(engine), clock)
    dead_letters = DeadLetterPublisher(settings.kafka, dlq_topic(settings.service_name))
    relay = OutboxRelay(engine, settings.kafka, service=settings.service_name)
    purger = PurgeRunner(
        rt,
        batch_size=settings.purge_batch_size,
        interval=settings.purge_interval_seconds,
        dry_run=settings.purge_dry_run,
        gauges_interval=settings.gauges_interval_seconds,
    )
    consumer = event_consumer(rt, settings.kafka, dead_letters)
    async with httpx.AsyncClient(timeout=settings.collector_timeout_seconds) as http:
        collector = AccessCollector(
            rt,
            protocol_svc_url=settings.protocol_svc_url,
            token_for=records_token_source(settings, rt.clock),
            http=http,
            interval=settings.collector_interval_seconds,
            max_backoff=settings.collector_max_backoff_seconds,
        )
        try:
            await run_worker(
                command,
                settings,
                [consumer],
                [
                    relay.run,
                    *purger.components(),
                    collector.component(),
                    consumer.run,
                    *worker_http(settings, engine),
                ],
            )
        finally:
            await dead_letters.close()
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(command=worker_command("retention-svc")))
