"""deadline-svc benchmark: a scheduler tick over a million open deadlines, and the rate
of consuming ``demand.registered``.

Starts an embedded PostgreSQL (fsync on) and a Tansu broker on free loopback ports,
migrates deadline-svc, then measures in one run, with the service's own code in-process:

- the table filled with ``--open`` open deadlines whose next checks are spread over the
  next 30 days, plus ``--due`` deadlines whose warning checkpoint has just passed: the
  time of one scheduler tick that finds and handles the due ones (emitting their
  warnings through the outbox), and of a tick that finds nothing;
- ``--events`` ``demand.registered`` events published to the broker beforehand, then
  consumed by deadline-svc's consumer: events per second until every deadline exists.

Prints a table and merges the figures into ``bench/results.json`` under ``deadline_svc``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from benchlib import ROOT, save_results
from deadline_svc import repository as repo
from deadline_svc.consumers import event_consumers
from deadline_svc.runtime import Runtime
from deadline_svc.scheduler import Scheduler
from rn623_devinfra.broker import TansuBroker
from rn623_devinfra.databases import create_database, with_database
from rn623_devinfra.migrations import migrate
from rn623_devinfra.ports import free_port
from rn623_devinfra.postgres import EmbeddedPostgres
from rn623_events.clock import ManualClock
from rn623_events.consumer import ConsumerConfig
from rn623_events.contracts.protocols import DemandRegistered
from rn623_events.db import create_engine, session_factory
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import make_envelope
from rn623_events.settings import KafkaSettings
from rn623_events.topics import dlq_topic, ensure_topics, topic

SERVICE = ROOT / "services" / "deadline-svc"
OPERATOR = "123456"
NOW = datetime(2025, 11, 21, 13, 0, tzinfo=UTC)
console = Console(width=110)

FILL = sa.text(
    """
    INSERT INTO deadlines (id, protocol_number, ans_registry, demand_id, kind, demand_type,
        started_at, registered_at, due_at, immediate, rule_id, legal_basis, ruleset_id,
        status, warned, next_check_at)
    SELECT gen_random_uuid(), lpad(i::text, 20, '0'), :operator, gen_random_uuid(), 'demand',
        'assistance', start_, start_, start_ + window_, false,
        'rn623.deadline.assistance', 'RN 623/2024', 'rn623-2025', 'open', '[]',
        CASE WHEN i <= :due THEN now_ - interval '1 minute'
             ELSE now_ + interval '1 hour' + (i % 2592000) * interval '1 second' END
    FROM generate_series(1, :count) AS i,
        LATERAL (SELECT CAST(:now AS timestamptz) AS now_) AS t,
        -- the due ones are 30 days into a 32-day window: both checkpoints have passed
        LATERAL (SELECT CASE WHEN i <= :due THEN now_ - interval '30 days' ELSE now_ END
                 AS start_, interval '32 days' AS window_) AS w
    """
)


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start the servers, measure, stop them."""
    console.print("starting embedded PostgreSQL (fsync on) and Tansu…")
    postgres = EmbeddedPostgres(tmp / "pg", free_port(), fsync=True)
    postgres.start()
    broker = TansuBroker(free_port(), tmp / "tansu.log")
    broker.start()
    try:
        admin_url = postgres.admin_url()
        await create_database(admin_url, "deadline_svc")
        database_url = with_database(admin_url, "deadline_svc")
        await asyncio.to_thread(migrate, SERVICE, database_url)
        engine = create_engine(database_url, pool_size=8)
        clock = ManualClock(NOW)
        rt = Runtime(
            sessions=session_factory(engine),
            clock=clock,
            source="deadline-svc",
            checkpoints=("one_business_day_left", "elapsed_80_percent"),
        )
        try:
            await register_operator(rt)
            figures = await scheduler_figures(rt, args)
            figures.update(await consumer_figures(rt, broker.bootstrap_servers, args))
        finally:
            await engine.dispose()
        return figures
    finally:
        broker.stop()
        postgres.stop()


async def register_operator(rt: Runtime) -> None:
    """The operator whose calendar every deadline uses."""
    async with rt.uow() as uow:
        await repo.save_operator(
            uow.session,
            {
                "ans_registry": OPERATOR,
                "timezone": "America/Sao_Paulo",
                "uf": "SP",
                "municipality_ibge": "3550308",
                "extra_holidays": [],
                "revision": 1,
                "updated_at": NOW,
            },
        )
        await uow.commit()


async def scheduler_figures(rt: Runtime, args: argparse.Namespace) -> dict[str, Any]:
    """Fill the table, then time a tick with due deadlines and one with none."""
    console.print(f"filling {args.open:,} open deadlines ({args.due:,} due now)…")
    started = time.perf_counter()
    async with rt.sessions() as session:
        await session.execute(
            FILL, {"operator": OPERATOR, "now": NOW, "due": args.due, "count": args.open}
        )
        await session.commit()
    async with rt.sessions() as session:
        await session.execute(sa.text("ANALYZE deadlines"))
        await session.commit()
    fill_seconds = time.perf_counter() - started
    scheduler = Scheduler(rt, batch_size=500)
    console.print("one scheduler tick…")
    started = time.perf_counter()
    handled = await scheduler.tick()
    tick_seconds = time.perf_counter() - started
    started = time.perf_counter()
    idle = await scheduler.tick()
    idle_seconds = time.perf_counter() - started
    async with rt.sessions() as session:
        warnings = await session.scalar(
            sa.text("SELECT count(*) FROM outbox WHERE event_type = 'deadline.warning'")
        )
    return {
        "open_deadlines": args.open,
        "fill_seconds": fill_seconds,
        "tick": {"due": handled, "seconds": tick_seconds, "warnings_emitted": warnings},
        "idle_tick": {"due": idle, "seconds": idle_seconds},
    }


async def consumer_figures(rt: Runtime, bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    """Publish ``demand.registered`` events, then time their consumption."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    await ensure_topics(
        kafka,
        [
            topic("operator.events"),
            topic("protocol.events"),
            topic("retention.events"),
            topic(dlq_topic("deadline-svc")),
        ],
    )
    console.print(f"publishing {args.events:,} demand.registered…")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sends = []
        for i in range(args.events):
            envelope = make_envelope(demand(i), source="protocol-svc", time=NOW)
            sends.append(
                await producer.send(
                    envelope.topic,
                    key=envelope.key,
                    value=envelope.value(),
                    headers=envelope.headers(),
                )
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    dead_letters = DeadLetterPublisher(kafka, dlq_topic("deadline-svc"))
    consumers = event_consumers(
        rt,
        kafka,
        dead_letters,
        config=ConsumerConfig(
            max_records=1000, session_timeout_ms=6000, heartbeat_interval_ms=1000
        ),
    )
    stop = asyncio.Event()
    console.print("consuming…")
    started = time.perf_counter()
    tasks = [asyncio.create_task(c.run(stop)) for c in consumers]
    try:
        first = None
        while True:
            async with rt.sessions() as session:
                done = await session.scalar(
                    sa.text("SELECT count(*) FROM deadlines WHERE protocol_number LIKE '9%'")
                )
            done = int(done or 0)
            if done and first is None:
                first = time.perf_counter()
            if done >= args.events:
                break
            await asyncio.sleep(0.05)
        finished = time.perf_counter()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await dead_letters.close()
    steady = finished - (first or started)
    return {
        "consume": {
            "events": args.events,
            "seconds_total": finished - started,
            "events_per_s_total": args.events / (finished - started),
            "events_per_s_after_first": args.events / steady if steady > 0 else None,
        }
    }


def demand(i: int) -> DemandRegistered:
    """The i-th registered demand of the consumption run (protocol numbers start with 9)."""
    requested = NOW - timedelta(minutes=i % 600)
    return DemandRegistered.model_construct(
        protocol_number=f"9{i:019d}",
        ans_registry=OPERATOR,
        demand_id=uuid.uuid4(),
        demand_type="assistance",
        category=None,
        description=None,
        requested_at=requested,
        registered_at=requested,
        due_at=requested + timedelta(days=9),
        immediate=False,
        deadline_rule_id="rn623.deadline.assistance",
        deadline_legal_basis="RN 623/2024",
        deadline_unit="business_days",
        deadline_amount=5,
        ruleset_id="rn623-2025",
        reanalysis_of=None,
    )


def report(figures: dict[str, Any]) -> None:
    """Print the figures."""
    table = Table(title="deadline-svc (fsync on, in-process service code)")
    table.add_column("measure")
    table.add_column("figure", justify="right")
    table.add_column("target", justify="right")
    tick, idle, consume = figures["tick"], figures["idle_tick"], figures["consume"]
    table.add_row("open deadlines in the table", f"{figures['open_deadlines']:,}", "1,000,000")
    table.add_row(
        f"scheduler tick: {tick['due']:,} due, {tick['warnings_emitted']:,} warnings",
        f"{tick['seconds'] * 1000:,.0f} ms",
        "≤ 1 s",
    )
    table.add_row("scheduler tick, nothing due", f"{idle['seconds'] * 1000:,.1f} ms", "")
    table.add_row(
        f"consume {consume['events']:,} demand.registered, sustained",
        f"{consume['events_per_s_after_first']:,.0f}/s",
        "≥ 2,000/s",
    )
    table.add_row(
        "  the same, counting the consumer group's join",
        f"{consume['events_per_s_total']:,.0f}/s",
        "",
    )
    console.print(table)


def main() -> None:
    """Parse arguments, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--open", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rn623-bench-deadlines-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - PostgreSQL runs as another user and must traverse it
        figures = asyncio.run(run(args, Path(tmp)))
    report(figures)
    console.print(f"written to {save_results({'deadline_svc': figures})}")


if __name__ == "__main__":
    main()
