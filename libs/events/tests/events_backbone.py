"""Shared pieces of the backbone integration tests: a test contract, tables and helpers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rn623_events.clock import SystemClock
from rn623_events.consumer import ConsumerConfig, ConsumerRunner, Handler
from rn623_events.db import EVENTS_METADATA, UnitOfWork, create_engine, session_factory
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope
from rn623_events.outbox import OutboxRelay, RelayConfig
from rn623_events.registry import Event, Registry, contract
from rn623_events.settings import KafkaSettings

EFFECTS_METADATA = sa.MetaData()
effects = sa.Table(
    "effects",
    EFFECTS_METADATA,
    # deliberately no unique constraint: a duplicate effect must be visible
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("trace_id", sa.Text),
)


class Happened(Event):
    """Base of the per-test contract class."""

    key: str
    n: int

    def subject(self) -> str:
        """Aggregate id."""
        return self.key


@dataclass
class Backbone:
    """Everything one backbone test needs, wired to a fresh database and topic."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    kafka: KafkaSettings
    topic: str
    dlq_topic: str
    registry: Registry
    model: type[Happened]
    clock: SystemClock = field(default_factory=SystemClock)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    dead_letter_publishers: list[DeadLetterPublisher] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def uow(self) -> UnitOfWork:
        """A unit of work for the test service."""
        return UnitOfWork(self.sessions, source="test-svc", clock=self.clock)

    async def write(self, events: list[tuple[str, int]], per_tx: int = 10) -> None:
        """Commit events through the outbox, ``per_tx`` per transaction."""
        for i in range(0, len(events), per_tx):
            async with self.uow() as uow:
                for key, n in events[i : i + per_tx]:
                    uow.publish(self.model(key=key, n=n))
                await uow.commit()

    def relay(self, **config: Any) -> OutboxRelay:
        """A relay for the test database."""
        return OutboxRelay(
            self.engine,
            self.kafka,
            service="test-svc",
            config=RelayConfig(**{"poll_interval": 0.02, "backoff_max": 1.0, **config}),
        )

    def consumer(self, name: str, handler: Handler | None = None, **config: Any) -> ConsumerRunner:
        """A consumer runner that records one effect row per handled event."""
        return ConsumerRunner(
            name=name,
            topics=[self.topic],
            sessions=self.sessions,
            kafka=self.kafka,
            clock=self.clock,
            source="test-svc",
            dead_letters=self._dead_letters(),
            handlers={"test.happened": handler or record_effect},
            registry=self.registry,
            config=ConsumerConfig(
                **{
                    "backoff_initial": 0.01,
                    "backoff_max": 0.05,
                    "poll_timeout_ms": 100,
                    "session_timeout_ms": 2000,
                    "heartbeat_interval_ms": 500,
                    **config,
                }
            ),
        )

    def _dead_letters(self) -> DeadLetterPublisher:
        publisher = DeadLetterPublisher(self.kafka, self.dlq_topic)
        self.dead_letter_publishers.append(publisher)
        return publisher

    def start(self, component: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Run a relay or consumer in the background until the test ends."""
        self.tasks.append(asyncio.create_task(component(self.stop)))

    async def close(self) -> None:
        """Stop background components and dispose of the engine."""
        self.stop.set()
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        for publisher in self.dead_letter_publishers:
            await publisher.close()
        await self.engine.dispose()
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def effect_rows(self) -> list[Any]:
        """All effect rows in insertion order."""
        async with self.sessions() as s:
            return list((await s.execute(sa.select(effects).order_by(effects.c.id))).all())

    async def wait_for_effects(self, count: int, max_seconds: float = 60) -> list[Any]:
        """Poll until at least ``count`` effects exist (fails after ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        while True:
            rows = await self.effect_rows()
            if len(rows) >= count or loop.time() > deadline:
                return rows
            await asyncio.sleep(0.1)

    async def unpublished(self) -> int:
        """Outbox rows not yet acknowledged by the broker."""
        async with self.sessions() as s:
            return int(
                await s.scalar(sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
                or 0
            )

    async def wait_published(self, max_seconds: float = 20) -> None:
        """Poll until a running relay has published every outbox row (fails after that)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        while True:
            left = await self.unpublished()
            if left == 0 or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert left == 0, f"{left} outbox rows still unpublished after {max_seconds} s"


async def record_effect(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
    """Handler: insert one effect row in the consumer's transaction."""
    from opentelemetry import trace

    assert isinstance(event, Happened)
    ctx = trace.get_current_span().get_span_context()
    await uow.session.execute(
        sa.insert(effects).values(
            event_id=envelope.id,
            key=event.key,
            n=event.n,
            trace_id=format(ctx.trace_id, "032x") if ctx.is_valid else None,
        )
    )


async def make_backbone(database_url: str, bootstrap: str, suffix: str) -> Backbone:
    """Create tables, topics and a per-test contract for a backbone test."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    engine = create_engine(database_url, pool_size=5)
    async with engine.begin() as conn:
        await conn.run_sync(EVENTS_METADATA.create_all)
        await conn.run_sync(EFFECTS_METADATA.create_all)
    topic, dlq = f"test.events.{suffix}", f"test-svc.dlq.{suffix}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1), NewTopic(dlq, 1, 1)])
    finally:
        await admin.close()
    registry = Registry()
    model = contract("test.happened", version=1, topic=topic, registry=registry)(
        type(f"Happened_{suffix}", (Happened,), {"__doc__": "Something happened (test)."})
    )
    return Backbone(
        engine=engine,
        sessions=session_factory(engine),
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        topic=topic,
        dlq_topic=dlq,
        registry=registry,
        model=model,
    )


def new_id() -> uuid.UUID:
    """A fresh UUID."""
    return uuid.uuid4()
