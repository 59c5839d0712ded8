"""Outbox relay: publishes committed outbox rows to Kafka in order, at least once.

Only one relay of a service publishes at a time: each batch runs inside a transaction
holding a transaction-scoped advisory lock, so replicas take turns and the rows of one
key are published in commit order. While the broker is down the relay backs off and
retries; nothing is marked published until the broker has acknowledged it (acks=all).
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rn623_events.db import outbox_table
from rn623_events.kafka import start_producer
from rn623_events.settings import KafkaSettings
from rn623_events.worker import sleep_unless_stopped

log = logging.getLogger(__name__)

PUBLISHED = Counter("outbox_published_total", "Outbox events published", ["service"])
PUBLISH_FAILURES = Counter(
    "outbox_publish_failures_total", "Outbox batches that failed to publish", ["service"]
)
DEPTH = Gauge("outbox_depth", "Outbox events not yet published", ["service"])
OLDEST_AGE = Gauge(
    "outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished event", ["service"]
)
BATCH_SECONDS = Histogram(
    "outbox_publish_batch_seconds", "Time to publish one outbox batch", ["service"]
)


@dataclass(frozen=True)
class RelayConfig:
    """Tuning of the relay."""

    batch_size: int = 500
    poll_interval: float = 0.05
    publish_timeout: float = 15.0
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    stats_interval: float = 5.0
    keep_published_days: int = 7


class OutboxRelay:
    """Moves outbox rows to the broker; run one per worker process."""

    def __init__(
        self,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        *,
        service: str,
        config: RelayConfig | None = None,
        producer_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.kafka = kafka
        self.service = service
        self.config = config or RelayConfig()
        self._producer: AIOKafkaProducer | None = None
        self._producer_factory = producer_factory or (lambda: start_producer(self.kafka))
        self._lock_key = zlib.crc32(f"outbox:{service}".encode())

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set, backing off while the broker or database is down."""
        backoff = self.config.backoff_initial
        last_stats = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                try:
                    published = await self.publish_batch()
                    backoff = self.config.backoff_initial
                    if loop.time() - last_stats >= self.config.stats_interval:
                        await self.refresh_stats()
                        await self.purge_published()
                        last_stats = loop.time()
                except Exception as exc:  # any failure: keep the rows, retry later
                    PUBLISH_FAILURES.labels(self.service).inc()
                    log.warning(
                        "outbox publish failed; retrying",
                        extra={"error_type": type(exc).__name__, "retry_in_s": round(backoff, 2)},
                    )
                    await self._drop_producer()
                    await sleep_unless_stopped(stop, backoff)
                    backoff = min(backoff * 2, self.config.backoff_max)
                    continue
                if published < self.config.batch_size:
                    await sleep_unless_stopped(stop, self.config.poll_interval)
        finally:
            await self._drop_producer()

    async def publish_batch(self) -> int:
        """Publish one batch of unpublished rows; return how many were published."""
        async with self.engine.connect() as conn, conn.begin():
            got = await conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(self._lock_key)))
            if not got:
                return 0  # another replica is publishing
            rows = (
                await conn.execute(
                    sa.select(
                        outbox_table.c.id,
                        outbox_table.c.topic,
                        outbox_table.c.key,
                        outbox_table.c.headers,
                        outbox_table.c.payload,
                    )
                    .where(outbox_table.c.published_at.is_(None))
                    .order_by(outbox_table.c.id)
                    .limit(self.config.batch_size)
                )
            ).all()
            if not rows:
                return 0
            with BATCH_SECONDS.labels(self.service).time():
                sent_ids = await self._send(rows)
            await self._mark(conn, sent_ids, [r.id for r in rows if r.id not in sent_ids])
        PUBLISHED.labels(self.service).inc(len(sent_ids))
        if len(sent_ids) < len(rows):
            raise RuntimeError(f"{len(rows) - len(sent_ids)} events not acknowledged")
        return len(sent_ids)

    async def _send(self, rows: Sequence[Any]) -> set[int]:
        producer = await self._ensure_producer()
        futures = []
        for row in rows:
            headers = [(k, str(v).encode()) for k, v in row.headers.items()]
            value = json.dumps(row.payload, separators=(",", ":"), ensure_ascii=False).encode()
            futures.append(
                await producer.send(row.topic, value=value, key=row.key.encode(), headers=headers)
            )
        done, _ = await asyncio.wait(futures, timeout=self.config.publish_timeout)
        sent: set[int] = set()
        for row, fut in zip(rows, futures, strict=True):
            if fut in done and fut.exception() is None:
                sent.add(row.id)
        return sent

    async def _mark(self, conn: AsyncConnection, sent: set[int], failed: list[int]) -> None:
        if sent:
            await conn.execute(
                sa.update(outbox_table)
                .where(outbox_table.c.id.in_(sent))
                .values(published_at=sa.func.now(), attempts=outbox_table.c.attempts + 1)
            )
        if failed:
            await conn.execute(
                sa.update(outbox_table)
                .where(outbox_table.c.id.in_(failed))
                .values(attempts=outbox_table.c.attempts + 1)
            )

    async def refresh_stats(self) -> None:
        """Update the depth and oldest-age gauges."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.extract(
                            "epoch", sa.func.now() - sa.func.min(outbox_table.c.created_at)
                        ),
                    ).where(outbox_table.c.published_at.is_(None))
                )
            ).one()
        DEPTH.labels(self.service).set(row[0])
        OLDEST_AGE.labels(self.service).set(float(row[1] or 0))

    async def purge_published(self, limit: int = 5000) -> int:
        """Delete published rows older than the keep window, a bounded batch at a time."""
        cutoff = sa.func.now() - sa.text(f"interval '{int(self.config.keep_published_days)} days'")
        old = (
            sa.select(outbox_table.c.id)
            .where(outbox_table.c.published_at < cutoff)
            .limit(limit)
            .scalar_subquery()
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.delete(outbox_table).where(outbox_table.c.id.in_(old)))
        return int(result.rowcount or 0)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = await self._producer_factory()
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except Exception:
                log.debug("producer did not stop cleanly")
