"""aiokafka client factories honouring ``KafkaSettings`` (acks=all, idempotence detection)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    UnknownError,
    UnsupportedVersionError,
)

from rn623_events.settings import KafkaSettings

log = logging.getLogger(__name__)

# Bootstrap addresses whose brokers refused a producer id, so later producers of this
# process don't ask again.
_NO_IDEMPOTENCE: set[str] = set()


async def start_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """Start a producer with ``acks=all``; idempotent when the broker supports it.

    With ``idempotence="auto"`` a broker that refuses producer ids (Tansu) gets a plain
    acks=all producer and a warning; ``"on"`` makes that a hard failure.
    """
    options: dict[str, Any] = {"acks": "all", "linger_ms": 5, **settings.client_kwargs()}
    options.update(overrides)
    if settings.idempotence == "on" or (
        settings.idempotence == "auto" and settings.bootstrap_servers not in _NO_IDEMPOTENCE
    ):
        producer = AIOKafkaProducer(enable_idempotence=True, **options)
        try:
            await producer.start()
            return producer
        except (UnknownError, UnsupportedVersionError, ClusterAuthorizationFailedError) as exc:
            # the broker answered and refused producer ids; connection errors propagate
            await producer.stop()
            if settings.idempotence == "on":
                raise
            _NO_IDEMPOTENCE.add(settings.bootstrap_servers)
            log.warning(
                "broker refused an idempotent producer; using acks=all without idempotence",
                extra={"error_type": type(exc).__name__},
            )
    producer = AIOKafkaProducer(**options)
    await producer.start()
    return producer


async def stop_producer(producer: AIOKafkaProducer | None, grace_seconds: float = 5.0) -> None:
    """Stop a producer, abandoning it if it is broken or the broker does not answer."""
    if producer is None:
        return
    try:
        await asyncio.wait_for(producer.stop(), timeout=grace_seconds)
    except Exception:
        log.debug("producer did not stop cleanly")
