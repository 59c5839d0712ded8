"""Dead letters: publishing failed records with the reason in headers, and replaying them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from rn623_events.kafka import start_producer, stop_producer
from rn623_events.logs import redact_text
from rn623_events.settings import KafkaSettings

log = logging.getLogger(__name__)

DLQ_PREFIX = "dlq_"
MAX_ERROR_CHARS = 500


def describe_error(error: BaseException, *, at: str = "") -> str:
    """The error's text without the data it may quote (names, CPFs, free text); a
    validation error names each field, prefixed with ``at`` (e.g. ``beneficiary.``)."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{at}{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False)
        )
    return redact_text(str(error))


def dlq_headers(
    record: ConsumerRecord[Any, Any],
    *,
    consumer: str,
    reason: str,
    error: BaseException,
    attempts: int,
    failed_at: datetime,
) -> list[tuple[str, bytes]]:
    """Return the original headers plus the ``dlq_*`` headers describing the failure."""
    original = [(k, v) for k, v in (record.headers or ()) if not k.startswith(DLQ_PREFIX)]
    extra = {
        "dlq_reason": reason,
        "dlq_error_type": type(error).__name__,
        "dlq_error": describe_error(error)[:MAX_ERROR_CHARS],
        "dlq_consumer": consumer,
        "dlq_original_topic": record.topic,
        "dlq_original_partition": str(record.partition),
        "dlq_original_offset": str(record.offset),
        "dlq_attempts": str(attempts),
        "dlq_failed_at": failed_at.isoformat(),
    }
    return original + [(k, v.encode()) for k, v in extra.items()]


class DeadLetterPublisher:
    """Sends failed records to one dead-letter topic (one per service)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def publish(
        self,
        record: ConsumerRecord[Any, Any],
        *,
        consumer: str,
        reason: str,
        error: BaseException,
        attempts: int,
        failed_at: datetime,
    ) -> None:
        """Publish ``record`` unchanged (key, value) with the failure in its headers."""
        headers = dlq_headers(
            record,
            consumer=consumer,
            reason=reason,
            error=error,
            attempts=attempts,
            failed_at=failed_at,
        )
        producer = await self._ensure()
        try:
            await producer.send_and_wait(
                self.topic, value=record.value, key=record.key, headers=headers
            )
        except Exception:
            await self.close()
            raise

    async def _ensure(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                self._producer = await start_producer(self.kafka)
            return self._producer

    async def close(self) -> None:
        """Stop the producer."""
        producer, self._producer = self._producer, None
        await stop_producer(producer)


def original_record(record: ConsumerRecord[Any, Any]) -> ConsumerRecord[Any, Any]:
    """Rebuild the record as it was before it was dead-lettered."""
    headers = {k: v for k, v in record.headers or ()}
    return ConsumerRecord(
        topic=headers.get("dlq_original_topic", b"").decode() or record.topic,
        partition=int(headers.get("dlq_original_partition", b"0").decode()),
        offset=int(headers.get("dlq_original_offset", b"-1").decode()),
        timestamp=record.timestamp,
        timestamp_type=record.timestamp_type,
        key=record.key,
        value=record.value,
        checksum=None,
        serialized_key_size=record.serialized_key_size,
        serialized_value_size=record.serialized_value_size,
        headers=tuple((k, v) for k, v in (record.headers or ()) if not k.startswith(DLQ_PREFIX)),
    )


async def replay_dead_letters(
    kafka: KafkaSettings,
    dlq_topic: str,
    *,
    consumer: str,
    process: Callable[[Sequence[ConsumerRecord[Any, Any]]], Awaitable[None]],
    max_seconds: float = 10.0,
) -> int:
    """Feed the dead letters of ``consumer`` back to ``process`` once; return how many.

    ``process`` is normally ``ConsumerRunner.replay``, which handles the records through
    the runner's usual path without touching its own committed offsets.

    Reads the topic up to the end offsets seen at the start (records dead-lettered
    again during the replay wait for the next replay) under the group
    ``<consumer>.dlq-replay``, committing as it goes.
    """
    reader = AIOKafkaConsumer(
        group_id=f"{consumer}.dlq-replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka.client_kwargs(),
    )
    await reader.start()
    replayed = 0
    try:
        if dlq_topic not in await reader.topics():
            return 0
        partitions = reader.partitions_for_topic(dlq_topic) or set()
        tps = [TopicPartition(dlq_topic, p) for p in sorted(partitions)]
        if not tps:
            return 0
        reader.assign(tps)
        end = await reader.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > await reader.position(tp)}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        while remaining and loop.time() < deadline:
            batches = await reader.getmany(*remaining, timeout_ms=500)
            for tp, records in batches.items():
                mine = [
                    original_record(r)
                    for r in records
                    if r.offset < end[tp]
                    and dict(r.headers or ()).get("dlq_consumer", b"").decode() == consumer
                ]
                if mine:
                    await process(mine)
                    replayed += len(mine)
                last = records[-1].offset + 1
                await reader.commit({tp: min(last, end[tp])})
                if last >= end[tp]:
                    remaining.discard(tp)
        if remaining:
            log.warning(
                "dead-letter replay stopped at its time limit; run it again for the rest",
                extra={"consumer": consumer, "replayed": replayed},
            )
    finally:
        await reader.stop()
    return replayed


class _Replayable(Protocol):
    """A consumer runner, as the replay sees it."""

    name: str

    async def replay(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Handle dead-lettered records again."""


async def replay_service_dead_letters(
    kafka: KafkaSettings, dlq_topic: str, runners: Sequence[_Replayable], *, max_seconds: float
) -> dict[str, int]:
    """Feed each consumer's dead letters back through it once; how many, per consumer.

    What fails again is dead-lettered again, with its new reason; what succeeds takes
    effect once (the inbox drops a record that was applied before it was dead-lettered).
    """
    return {
        runner.name: await replay_dead_letters(
            kafka, dlq_topic, consumer=runner.name, process=runner.replay, max_seconds=max_seconds
        )
        for runner in runners
    }
