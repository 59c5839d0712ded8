"""Backbone benchmark: outbox relay and consumer runner rates next to raw aiokafka.

Starts an embedded PostgreSQL and a Tansu broker on free loopback ports (or uses
``BENCH_DATABASE_URL`` / ``BENCH_KAFKA_BOOTSTRAP_SERVERS``), then measures, on the
same machine and broker, in one run:

- raw aiokafka produce (acks=all) and consume rates of a record the size of an event;
- the outbox write rate (units of work committing events);
- the outbox relay's publish rate (outbox rows → broker, acknowledged and marked);
- the consumer runner's processing rate (inbox claim + one effect row per event),
  one transaction per event and in batch mode.

Prints a table and merges the figures into ``bench/results.json`` under ``backbone``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY
from rich.console import Console
from rich.table import Table

from benchlib import machine_info, percentile, save_results
from rn623_devinfra.broker import TansuBroker
from rn623_devinfra.databases import create_database, with_database
from rn623_devinfra.ports import free_port
from rn623_devinfra.postgres import EmbeddedPostgres
from rn623_events.clock import SystemClock
from rn623_events.consumer import ConsumerConfig, ConsumerRunner
from rn623_events.db import EVENTS_METADATA, UnitOfWork, create_engine, session_factory
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope
from rn623_events.outbox import OutboxRelay, RelayConfig
from rn623_events.registry import Event, Registry, contract
from rn623_events.settings import KafkaSettings

console = Console(width=110)

BENCH_METADATA = sa.MetaData()
effects = sa.Table(
    "bench_effects",
    BENCH_METADATA,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
)


def bench_contract(topic: str) -> tuple[Registry, type[Event]]:
    """A contract shaped like ``protocol.opened`` (≈400 bytes of JSON)."""
    registry = Registry()

    class ProtocolOpenedLike(Event):
        """Benchmark event."""

        protocol_number: str
        operator: str
        channel: str
        direction: str
        opened_at: str
        seq: int
        notes: str

        def subject(self) -> str:
            return self.protocol_number

    model = contract("bench.opened", version=1, topic=topic, registry=registry)(ProtocolOpenedLike)
    return registry, model


def make_event(model: type[Event], i: int) -> Event:
    """The i-th benchmark event; 1 000 distinct aggregates."""
    return model(
        protocol_number=f"123456202611230{i % 1000:05d}",
        operator="123456",
        channel="phone",
        direction="inbound",
        opened_at="2026-11-23T10:15:00-03:00",
        seq=i,
        notes="x" * 200,
    )


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create one topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def raw_produce(bootstrap: str, topic: str, records: Sequence[Envelope]) -> float:
    """Seconds to produce ``records`` with a plain acks=all producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(topic, value=r.value(), key=r.key, headers=r.headers())
            for r in records
        ]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str, count: int) -> float:
    """Seconds for a plain consumer group to read ``count`` records (committing per batch)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = 0
        started: float | None = None
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if started is None and batches:
                started = time.perf_counter()  # like the runner: from the first record on
            seen += sum(len(v) for v in batches.values())
            await consumer.commit()
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()


async def raw_consume_and_write(bootstrap: str, database_url: str, topic: str, count: int) -> float:
    """Seconds for plain aiokafka + asyncpg to do the runner's work: per poll batch, one
    transaction claiming the events in the inbox and writing one effect row each."""
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-db-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = 0
        started: float | None = None
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            started = started or time.perf_counter()
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO inbox (consumer, event_id, event_type) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING",
                    [("raw", dict(r.headers)["ce_id"].decode(), "bench.opened") for r in records],
                )
                await conn.executemany(
                    "INSERT INTO bench_effects (subject, seq) VALUES ($1, $2)",
                    [(r.key.decode(), json.loads(r.value)["seq"]) for r in records],
                )
            await consumer.commit()
            seen += len(records)
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
        await conn.close()


async def handle(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
    """One effect row per event, like a real consumer's smallest write."""
    await uow.session.execute(
        sa.insert(effects).values(subject=envelope.subject, seq=getattr(event, "seq", 0))
    )


async def handle_batch(items: Sequence[tuple[Event, Envelope]], uow: UnitOfWork) -> None:
    """The batch-mode handler: one multi-row insert."""
    await uow.session.execute(
        sa.insert(effects),
        [{"subject": env.subject, "seq": getattr(ev, "seq", 0)} for ev, env in items],
    )


def processed(consumer: str) -> float:
    """Events the runner has handled, read from its Prometheus counter (no database load)."""
    value = REGISTRY.get_sample_value(
        "consumer_processed_total", {"consumer": consumer, "event_type": "bench.opened"}
    )
    return value or 0.0


async def run_consumer(runner: ConsumerRunner, count: int) -> tuple[float, float]:
    """Seconds until ``runner`` handled its first event, and from then until all ``count``."""
    stop = asyncio.Event()
    started = time.perf_counter()
    first: float | None = None
    task = asyncio.create_task(runner.run(stop))
    while (done := processed(runner.name)) < count:
        if first is None and done > 0:
            first = time.perf_counter()
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    finished = time.perf_counter()
    stop.set()
    await task
    first = first or finished
    return first - started, finished - first


async def measure(database_url: str, bootstrap: str, n: int) -> dict[str, Any]:
    """Run every measurement once and return the figures."""
    engine = create_engine(database_url, pool_size=10)
    async with engine.begin() as conn:
        await conn.run_sync(EVENTS_METADATA.create_all)
        await conn.run_sync(BENCH_METADATA.create_all)
    sessions = session_factory(engine)
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    stamp = f"{int(time.time())}"
    raw_topic, topic, dlq = f"bench.raw.{stamp}", f"bench.events.{stamp}", f"bench.dlq.{stamp}"
    for name, partitions in ((raw_topic, 6), (topic, 6), (dlq, 1)):
        await create_topic(bootstrap, name, partitions)
    registry, model = bench_contract(topic)
    clock = SystemClock()
    figures: dict[str, Any] = {"events": n}

    from rn623_events.envelope import make_envelope

    sample = [
        make_envelope(make_event(model, i), source="bench", time=clock.now()) for i in range(n)
    ]
    figures["event_bytes"] = len(sample[0].value())

    seconds = await raw_produce(bootstrap, raw_topic, sample)
    figures["raw_produce_per_s"] = n / seconds
    seconds = await raw_consume(bootstrap, raw_topic, n)
    figures["raw_consume_per_s"] = n / seconds

    started = time.perf_counter()
    per_tx = 10
    for i in range(0, n, per_tx):
        async with UnitOfWork(sessions, source="bench", clock=clock) as uow:
            for j in range(i, min(i + per_tx, n)):
                uow.publish(make_event(model, j))
            await uow.commit()
    figures["outbox_write_per_s"] = n / (time.perf_counter() - started)
    figures["outbox_events_per_transaction"] = per_tx

    relay = OutboxRelay(engine, kafka, service="bench")
    started = time.perf_counter()
    published = 0
    while published < n:
        published += await relay.publish_batch()
    figures["relay_publish_per_s"] = n / (time.perf_counter() - started)
    figures["relay_batch_size"] = relay.config.batch_size
    await relay._drop_producer()

    seconds = await raw_consume_and_write(bootstrap, database_url, topic, n)
    figures["raw_consume_and_write_per_s"] = n / seconds

    for mode in ("single", "batch"):
        dead_letters = DeadLetterPublisher(kafka, dlq)
        runner = ConsumerRunner(
            name=f"bench-{mode}",
            topics=[topic],
            sessions=sessions,
            kafka=kafka,
            clock=clock,
            source="bench",
            dead_letters=dead_letters,
            handlers={"bench.opened": handle} if mode == "single" else {},
            batch_handlers={"bench.opened": handle_batch} if mode == "batch" else {},
            registry=registry,
            config=ConsumerConfig(max_records=500),
        )
        startup, seconds = await run_consumer(runner, n)
        figures[f"consumer_{mode}_startup_s"] = startup
        figures[f"consumer_{mode}_per_s"] = n / seconds
        await dead_letters.close()

    figures["ratio_relay_to_raw_produce"] = (
        figures["relay_publish_per_s"] / figures["raw_produce_per_s"]
    )
    for mode in ("single", "batch"):
        rate = figures[f"consumer_{mode}_per_s"]
        figures[f"ratio_consumer_{mode}_to_raw_consume"] = rate / figures["raw_consume_per_s"]
        figures[f"ratio_consumer_{mode}_to_raw_consume_and_write"] = (
            rate / figures["raw_consume_and_write_per_s"]
        )
    # Each latency mode gets a fresh topic (no backlog for its new consumer group) and a
    # settled database: without this, whichever mode ran first inherited the throughput
    # phases' after-effects (a ~2 s p95 tail that moved with the order, not the mode).
    for listen in (True, False):
        latency_topic = f"bench.latency.{'listen' if listen else 'poll'}.{stamp}"
        await create_topic(bootstrap, latency_topic, 6)
        latency_registry, latency_model = bench_contract(latency_topic)
        async with engine.connect() as conn:
            await conn.execute(sa.text("CHECKPOINT"))
        await asyncio.sleep(2)
        figures[f"latency_{'listen' if listen else 'poll'}"] = await end_to_end_latency(
            engine,
            sessions,
            kafka,
            latency_registry,
            latency_model,
            latency_topic,
            dlq,
            listen=listen,
        )
    await engine.dispose()
    return figures


async def end_to_end_latency(
    engine: Any,
    sessions: Any,
    kafka: KafkaSettings,
    registry: Registry,
    model: type[Event],
    topic: str,
    dlq: str,
    *,
    listen: bool,
    events: int = 200,
    rate: float = 50.0,
) -> dict[str, float]:
    """Commit → relay → broker → consumer effect, at a steady trickle; percentiles in ms."""
    clock = SystemClock()
    seen: dict[int, float] = {}

    async def stamp(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        seen[getattr(event, "seq", -1)] = time.perf_counter()

    stop = asyncio.Event()
    relay = OutboxRelay(engine, kafka, service="bench", config=RelayConfig(listen=listen))
    dead_letters = DeadLetterPublisher(kafka, dlq)
    runner = ConsumerRunner(
        name=f"bench-latency-{'listen' if listen else 'poll'}",
        topics=[topic],
        sessions=sessions,
        kafka=kafka,
        clock=clock,
        source="bench",
        dead_letters=dead_letters,
        handlers={"bench.opened": stamp},
        registry=registry,
        config=ConsumerConfig(
            poll_timeout_ms=100, session_timeout_ms=2000, heartbeat_interval_ms=500
        ),
    )
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(runner.run(stop))]
    base = 10_000_000 * (2 if listen else 1)
    while base not in seen:  # warm up until the consumer has joined and receives
        async with UnitOfWork(sessions, source="bench", clock=clock) as uow:
            uow.publish(make_event(model, base))
            await uow.commit()
        await asyncio.sleep(0.5)
    committed: dict[int, float] = {}
    for i in range(1, events + 1):
        async with UnitOfWork(sessions, source="bench", clock=clock) as uow:
            uow.publish(make_event(model, base + i))
            await uow.commit()
        committed[base + i] = time.perf_counter()
        await asyncio.sleep(1 / rate)
    for _ in range(600):  # up to 30 s for the last ones to arrive
        if all(k in seen for k in committed):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)
    await dead_letters.close()
    latencies = sorted((seen[k] - t) * 1000 for k, t in committed.items() if k in seen)
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "delivered": len(latencies),
    }


def report(figures: dict[str, Any]) -> None:
    """Print the figures as a table."""
    table = Table(title=f"Event backbone, {figures['events']} events of {figures['event_bytes']} B")
    table.add_column("path")
    table.add_column("events/s", justify="right")
    table.add_column("vs raw Kafka", justify="right")
    table.add_column("vs raw Kafka+asyncpg", justify="right")
    rows: list[tuple[str, str, str | None, str | None]] = [
        ("raw aiokafka produce (acks=all)", "raw_produce_per_s", None, None),
        ("raw aiokafka consume (group, commit per batch)", "raw_consume_per_s", None, None),
        (
            "raw aiokafka consume + asyncpg inbox and effect",
            "raw_consume_and_write_per_s",
            None,
            None,
        ),
        ("outbox write (10 events per transaction)", "outbox_write_per_s", None, None),
        ("outbox relay publish", "relay_publish_per_s", "ratio_relay_to_raw_produce", None),
    ]
    for mode, label in (("single", "per-event handler (shared tx)"), ("batch", "batch mode")):
        rows.append(
            (
                f"consumer runner, {label}",
                f"consumer_{mode}_per_s",
                f"ratio_consumer_{mode}_to_raw_consume",
                f"ratio_consumer_{mode}_to_raw_consume_and_write",
            )
        )
    for label, key, ratio, ratio_db in rows:
        table.add_row(
            label,
            f"{figures[key]:,.0f}",
            f"{figures[ratio]:.2f}" if ratio else "",
            f"{figures[ratio_db]:.2f}" if ratio_db else "",
        )
    console.print(table)
    latency = Table(title="End to end: commit → relay → broker → consumer effect (50 events/s)")
    for column in ("relay wake-up", "p50 ms", "p95 ms", "p99 ms", "delivered"):
        latency.add_column(column, justify="right")
    for key, label in (("latency_listen", "LISTEN/NOTIFY"), ("latency_poll", "50 ms poll")):
        f = figures[key]
        latency.add_row(
            label,
            f"{f['p50_ms']:.1f}",
            f"{f['p95_ms']:.1f}",
            f"{f['p99_ms']:.1f}",
            str(f["delivered"]),
        )
    console.print(latency)


async def main(argv: Sequence[str] | None = None) -> None:
    """Start (or reuse) the servers, measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args(argv)
    database_url = os.environ.get("BENCH_DATABASE_URL")
    bootstrap = os.environ.get("BENCH_KAFKA_BOOTSTRAP_SERVERS")
    with tempfile.TemporaryDirectory(prefix="rn623-bench-") as tmp:
        postgres = broker = None
        if database_url is None:
            console.print("starting embedded PostgreSQL…")
            postgres = EmbeddedPostgres(Path(tmp) / "pg", free_port(), fsync=True)
            postgres.start()
            database_url = postgres.admin_url()
        if bootstrap is None:
            console.print("starting Tansu broker…")
            broker = TansuBroker(free_port(), Path(tmp) / "tansu.log")
            broker.start()
            bootstrap = broker.bootstrap_servers
        try:
            await create_database(database_url, "bench_backbone")
            figures = await measure(
                with_database(database_url, "bench_backbone"), bootstrap, args.events
            )
        finally:
            if broker is not None:
                broker.stop()
            if postgres is not None:
                postgres.stop()
    report(figures)
    written = save_results({"machine": machine_info(), "backbone": figures})
    console.print(f"written to {written}")


if __name__ == "__main__":
    asyncio.run(main())
