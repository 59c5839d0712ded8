"""retention-svc benchmark: purge throughput over expired records, the latency of concurrent
writes while it runs, the rate of certifying disposals and of consuming protocol events.

Starts an embedded PostgreSQL (fsync on) on a free loopback port, migrates retention-svc,
then measures in one run, with the service's own code in-process:

- the ``schedules`` table filled with server-side SQL: ``--records`` entries past their
  retention (5 record classes per protocol, spread over ``--operators`` operators) and as
  many not yet due, with active legal holds (one operator-wide, ``--protocol-holds`` on
  protocols, ``--beneficiary-holds`` on beneficiaries) and a few released ones;
- the purge: ``PurgeRunner(batch_size=--batch).tick()`` until it finds nothing, as
  records requested per second, purge requests per second and outbox rows written; then
  a check that exactly the un-held due entries are ``purge_requested`` (exit 1 if not);
- concurrent writes: while the purge runs, two writers do what the consumer does
  (``protocol.opened`` then ``complaint.registered`` through ``RetentionHandlers``, one
  unit of work each) at ``--write-rate`` per second each: one in the runner's event loop
  (as in the worker, where both share a process), one in its own process (it meets the
  purge only in the database); each write's duration and its delay behind a fixed
  schedule, against a run of ``--baseline-seconds`` without the purge;
- confirmations: every owner's ``records.purged`` for a sample of ``--confirm`` purge
  requests, ``--confirm-batch`` requests per unit of work: certificates appended to the
  operators' hash chains per second (stopped after ``--confirm-seconds``), then one
  operator's chain verified;
- consumption, last and alone (after the purge and the confirmations): a Tansu broker on
  a free loopback port, ``--consume`` protocols spread over the operators published to
  it beforehand, each a ``protocol.opened`` then a ``demand.registered`` keyed by its
  number (as protocol-svc emits them), then consumed by retention-svc's consumer
  (``event_consumer``, a group of its own) until every protocol has its schedule and its
  demand: events per second counting the group's join and from the first schedule entry
  seen, and protocols per second; then a check of the rows written (exit 1 if wrong).

Prints a table and merges the figures into ``bench/results.json`` under ``retention_svc``.
The default ``--records`` is 300,000 so that the purge part stays near 3 minutes on 2 cores;
the issue's figure is ``--records 1000000`` (about 7 minutes). The consumption of the default
``--consume`` 5,000 protocols (10,000 events) adds well under a minute; ``--consume 0``
skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from benchlib import ROOT, percentile, save_results
from retention_svc import domain
from retention_svc import repository as repo
from retention_svc.consumers import RetentionHandlers, event_consumer
from retention_svc.purger import PurgeRunner
from retention_svc.runtime import Runtime
from retention_svc.settings import DEFAULT_OWNERS
from rn623_devinfra.broker import TansuBroker
from rn623_devinfra.databases import create_database, with_database
from rn623_devinfra.migrations import migrate
from rn623_devinfra.ports import free_port
from rn623_devinfra.postgres import EmbeddedPostgres
from rn623_events.clock import ManualClock
from rn623_events.consumer import ConsumerConfig, inbox_count
from rn623_events.contracts.protocols import (
    Beneficiary,
    ComplaintRegistered,
    DemandRegistered,
    ProtocolOpened,
    RecordsPurged,
)
from rn623_events.db import create_engine, session_factory
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import make_envelope
from rn623_events.settings import KafkaSettings
from rn623_events.topics import dlq_topic, ensure_topics, topic

SERVICE = ROOT / "services" / "retention-svc"
NOW = datetime(2025, 11, 21, 13, 0, tzinfo=UTC)  # Friday 10:00 in São Paulo
TIMEZONE = "America/Sao_Paulo"
FIRST_REGISTRY = 300_000  # operators are 300000, 300001, …; 300000 is under an operator hold
OWNERS: dict[str, tuple[str, ...]] = {str(k): tuple(v) for k, v in DEFAULT_OWNERS.items()}
CLASSES = sorted(OWNERS)
DUE_START = datetime(2019, 6, 1, 12, 0, tzinfo=UTC)  # + complaint + 5 years: past by NOW
FUTURE_START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)  # + complaint + 5 years: ≥ 2030
SPREAD = timedelta(days=300)  # contacts of each set spread over this
PROCESS_FIRST = 50_000_000  # the writer process numbers its protocols from here
# The consumed protocols are opened the day before NOW (no other protocol has that date in
# its number), one millisecond apart: their recordings' ends fall in a window of their own.
CONSUME_OPENED = NOW - timedelta(days=1)
CONSUME_STEP = timedelta(milliseconds=1)
CONSUME_POLL_SECONDS = 0.05
CONSUME_STALL_SECONDS = 60.0  # no new row for this long: the consumption is given up
console = Console(width=110)

# One protocol per i: operator i % operators, daily sequence i / operators + 1 (unique per
# operator), a beneficiary for every 3 protocols of an operator, a complaint 10 days after
# the contact. Every contact instant is distinct, so a batch never splits a protocol.
FILL_PROTOCOLS = sa.text(
    """
    INSERT INTO protocols (protocol_number, ans_registry, timezone, beneficiary_key,
        contact_at, complaint_at, updated_at)
    SELECT reg || to_char(contact AT TIME ZONE :tz, 'YYYYMMDD')
               || lpad((i / :operators + 1)::text, 6, '0'),
        reg, :tz,
        encode(sha256(convert_to(reg || ':' || (i / :operators / 3)::text, 'UTF8')), 'hex'),
        contact, contact + interval '10 days', :now
    FROM generate_series(0, :count - 1) AS i,
        LATERAL (SELECT lpad((:first_registry + i % :operators)::text, 6, '0') AS reg,
                 CAST(:start AS timestamptz)
                     + i * CAST(:step_ms AS bigint) * interval '1 millisecond' AS contact) AS p
    """
)

# Every class of a protocol with a complaint is kept 5 years from it (the rulebook's
# protocol_retention); the complaint closes when the protocol is resolved, here at once.
FILL_SCHEDULES = sa.text(
    """
    INSERT INTO schedules (protocol_number, record_class, ans_registry, retain_until,
        status, purge_request_id, updated_at)
    SELECT p.protocol_number, c.record_class, p.ans_registry,
        p.complaint_at + interval '5 years', 'retained', NULL, :now
    FROM protocols AS p CROSS JOIN unnest(CAST(:classes AS text[])) AS c (record_class)
    """
)

FILL_HOLDS = sa.text(
    """
    INSERT INTO legal_holds (id, ans_registry, scope, protocol_number, beneficiary_key,
        reason, placed_by, placed_at, released_by, released_at, release_reason)
    SELECT gen_random_uuid(), CAST(:held_operator AS varchar), 'operator', NULL::varchar,
        NULL::varchar, 'bench: litigation', 'bench', CAST(:placed AS timestamptz), NULL::text,
        NULL::timestamptz, NULL::text
    UNION ALL (
        SELECT gen_random_uuid(), ans_registry, 'protocol', protocol_number, NULL,
            'bench: judicial order', 'bench', :placed, NULL, NULL, NULL
        FROM protocols WHERE ans_registry <> :held_operator AND contact_at < :future_start
        ORDER BY md5(protocol_number) LIMIT :protocol_holds)
    UNION ALL (
        SELECT gen_random_uuid(), ans_registry, 'beneficiary', NULL, beneficiary_key,
            'bench: beneficiary lawsuit', 'bench', :placed, NULL, NULL, NULL
        FROM (SELECT DISTINCT ans_registry, beneficiary_key FROM protocols
              WHERE ans_registry <> :held_operator AND contact_at < :future_start) AS b
        ORDER BY md5(beneficiary_key) LIMIT :beneficiary_holds)
    UNION ALL (  -- released: they cover nothing any more, their protocols must be purged
        SELECT gen_random_uuid(), ans_registry, 'protocol', protocol_number, NULL,
            'bench: judicial order', 'bench', :placed, 'bench', :placed, 'bench: lifted'
        FROM protocols WHERE ans_registry <> :held_operator AND contact_at < :future_start
        ORDER BY md5(protocol_number || 'released') LIMIT :released_holds)
    """
)

# Written independently of the service's NOT EXISTS: the due entries an active hold covers,
# per scope and in all (scope NULL), and how many of them are still retained.
HELD = sa.text(
    """
    SELECT h.scope, count(DISTINCT (s.protocol_number, s.record_class)) AS held,
        count(DISTINCT (s.protocol_number, s.record_class))
            FILTER (WHERE s.status = 'retained') AS retained
    FROM schedules AS s JOIN protocols AS p USING (protocol_number)
    JOIN legal_holds AS h ON h.ans_registry = s.ans_registry AND h.released_at IS NULL
        AND (h.scope = 'operator'
             OR (h.scope = 'protocol' AND h.protocol_number = s.protocol_number)
             OR (h.scope = 'beneficiary' AND h.beneficiary_key = p.beneficiary_key))
    WHERE s.retain_until < :now
    GROUP BY GROUPING SETS ((h.scope), ())
    """
)
STATUS_COUNTS = sa.text(
    """
    SELECT count(*) FILTER (WHERE retain_until < :now) AS due,
        count(*) FILTER (WHERE retain_until < :now AND status = 'purge_requested') AS requested,
        count(*) FILTER (WHERE retain_until < :now AND status = 'retained') AS retained,
        count(*) FILTER (WHERE retain_until >= :now AND status <> 'retained') AS future_touched
    FROM schedules
    """
)


# Polled while consuming, both cheap: the consumed protocols' entries known from the contact
# (the recordings: a window of ``retain_until`` no other entry has, on the purge runner's
# partial index) and the demands (only the consumption writes demands).
CONSUMED = sa.text(
    """
    SELECT (SELECT count(*) FROM schedules
            WHERE status = 'retained' AND retain_until IS NOT NULL
                AND retain_until BETWEEN :first_end AND :last_end) AS opened,
        (SELECT count(*) FROM demands) AS demands
    """
)
# Once consumed: every entry of the protocols with a demand, and those its demand left open.
CONSUMED_CHECK = sa.text(
    """
    SELECT count(*) AS entries, count(*) FILTER (WHERE s.retain_until IS NULL) AS open,
        count(DISTINCT s.protocol_number) AS protocols,
        (SELECT count(*) FROM demands) AS demands
    FROM demands AS d JOIN schedules AS s USING (protocol_number)
    """
)


class TimedPurgeRunner(PurgeRunner):
    """The service's purge runner, timing each batch (one transaction)."""

    def __init__(self, rt: Runtime, *, batch_size: int) -> None:
        super().__init__(rt, batch_size=batch_size)
        self.batch_seconds: list[float] = []

    async def _batch(self) -> int:
        """Run one batch of the service's runner and record how long it took."""
        started = time.perf_counter()
        count = await super()._batch()
        self.batch_seconds.append(time.perf_counter() - started)
        return count


class Writer:
    """What the consumer writes meanwhile: a protocol opened, then a complaint on it."""

    def __init__(self, rt: Runtime, operators: int, first: int = 0) -> None:
        self.rt = rt
        self.handlers = RetentionHandlers(rt)
        self.operators = operators
        self.opened = first
        self.local_now = NOW.astimezone(ZoneInfo(TIMEZONE))

    async def run(self, stop: asyncio.Event, rate: float) -> dict[str, Any]:
        """Write at ``rate`` per second until ``stop``; latency counts from each write's
        scheduled start, so a stalled write also delays the ones queued behind it (its
        own duration, from its actual start, is kept apart)."""
        latencies: list[float] = []
        durations: list[float] = []
        started = time.perf_counter()
        slot = 0
        number = ""
        while not stop.is_set():
            scheduled = started + slot / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            began = time.perf_counter()
            if slot % 2 == 0:
                number = await self.open_protocol()
            else:
                await self.complain(number)
            finished = time.perf_counter()
            latencies.append(finished - scheduled)
            durations.append(finished - began)
            slot += 1
        seconds = time.perf_counter() - started
        return latency_summary(latencies, durations, seconds)

    async def warm_up(self, writes: int = 20) -> None:
        """Unmeasured writes: connections opened, statements compiled and prepared."""
        for _ in range(writes // 2):
            await self.complain(await self.open_protocol())

    async def open_protocol(self) -> str:
        """Handle one ``protocol.opened`` in its own unit of work; return the number."""
        index, self.opened = self.opened, self.opened + 1
        registry = f"{FIRST_REGISTRY + index % self.operators:06d}"
        number = f"{registry}{self.local_now:%Y%m%d}{index // self.operators + 1:06d}"
        event = ProtocolOpened(
            protocol_number=number,
            ans_registry=registry,
            layout_id="default",
            channel="phone",
            direction="inbound",
            opened_at=self.local_now,
            timezone=TIMEZONE,
            beneficiary=Beneficiary(card_number=f"bench-{index}"),
        )
        async with self.rt.uow() as uow:
            await self.handlers.protocol_opened(event, uow)
            await uow.commit()
        return number

    async def complain(self, number: str) -> None:
        """Handle one ``complaint.registered`` on a protocol just opened."""
        event = ComplaintRegistered(
            protocol_number=number,
            ans_registry=number[:6],
            complaint_id=uuid.uuid4(),
            source="nip",
            received_at=NOW,
            registered_at=NOW,
        )
        async with self.rt.uow() as uow:
            await self.handlers.complaint_registered(event, uow)
            await uow.commit()


def latency_summary(
    latencies: list[float], durations: list[float], seconds: float
) -> dict[str, Any]:
    """Count, rate and latency percentiles (ms) of the writes, and of their own durations."""
    return {
        "writes": len(latencies),
        "writes_per_s": len(latencies) / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "duration_p50_ms": percentile(durations, 50) * 1000,
        "duration_p95_ms": percentile(durations, 95) * 1000,
        "duration_p99_ms": percentile(durations, 99) * 1000,
        "duration_max_ms": max(durations, default=float("nan")) * 1000,
    }


def make_runtime(engine: AsyncEngine) -> Runtime:
    """The service's runtime on ``engine``, at the benchmark's fixed instant."""
    return Runtime(
        sessions=session_factory(engine),
        clock=ManualClock(NOW),
        source="retention-svc",
        owners=OWNERS,
        beneficiary_secret=b"retention-svc-bench-beneficiary-key",
    )


def process_writer(database_url: str, operators: int, conn: Connection) -> None:
    """Entry point of the writer process: the first message warms it up and it answers when
    ready; then each rate received starts a run, the next message stops it and the run's
    figures are sent back; None ends the process."""
    asyncio.run(serve_writes(database_url, operators, conn))


async def serve_writes(database_url: str, operators: int, conn: Connection) -> None:
    """Run the process's writer on command (see ``process_writer``)."""
    engine = create_engine(database_url, pool_size=2)
    writer = Writer(make_runtime(engine), operators, first=PROCESS_FIRST)
    try:
        await asyncio.to_thread(conn.recv)
        await writer.warm_up()
        conn.send("ready")
        while (rate := await asyncio.to_thread(conn.recv)) is not None:
            stop = asyncio.Event()
            task = asyncio.create_task(writer.run(stop, rate))
            await asyncio.to_thread(conn.recv)
            stop.set()
            conn.send(await task)
    finally:
        await engine.dispose()


class Writers:
    """Two writers at the same rate: one in this event loop, beside the purge runner as in
    the worker, and one in its own process, which only meets the purge in the database."""

    def __init__(self, rt: Runtime, database_url: str, args: argparse.Namespace) -> None:
        self.local = Writer(rt, args.operators)
        self.rate = float(args.write_rate)
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=process_writer, args=(database_url, args.operators, child), daemon=True
        )
        self.process.start()
        child.close()
        self.stop_local = asyncio.Event()
        self.task: asyncio.Task[dict[str, Any]] | None = None

    async def warm_up(self) -> None:
        """Warm both writers up (after the fill: they add protocols of their own)."""
        self.conn.send("warm")
        await self.local.warm_up()
        await asyncio.to_thread(self.conn.recv)

    def start(self) -> None:
        """Start both writers."""
        self.stop_local = asyncio.Event()
        self.task = asyncio.create_task(self.local.run(self.stop_local, self.rate))
        self.conn.send(self.rate)

    async def stop(self) -> dict[str, Any]:
        """Stop both writers; their figures."""
        assert self.task is not None
        self.stop_local.set()
        self.conn.send("stop")
        local = await self.task
        remote = await asyncio.to_thread(self.conn.recv)
        return {"same_loop": local, "separate_process": remote}

    def close(self) -> None:
        """End the writer process."""
        if self.process.is_alive():
            self.conn.send(None)
            self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start PostgreSQL, measure, stop it."""
    console.print("starting embedded PostgreSQL (fsync on)…")
    postgres = EmbeddedPostgres(tmp / "pg", free_port(), fsync=True)
    postgres.start()
    try:
        admin_url = postgres.admin_url()
        await create_database(admin_url, "retention_svc")
        database_url = with_database(admin_url, "retention_svc")
        await asyncio.to_thread(migrate, SERVICE, database_url)
        engine = create_engine(database_url, pool_size=8)
        rt = make_runtime(engine)
        writers = Writers(rt, database_url, args)  # the process starts while the table fills
        try:
            figures: dict[str, Any] = {"parameters": parameters(args)}
            figures["fill"] = await fill(rt, args)
            figures["writes_baseline"] = await baseline(writers, args)
            figures["purge"], figures["writes_during_purge"] = await purge(rt, writers, args)
            figures["purge_check"] = await check_purge(rt, args, figures)
            figures["confirm"] = await confirm(rt, args)
            if args.consume:
                figures["consume"] = await consume(rt, args, tmp)
        finally:
            writers.close()
            await engine.dispose()
        return figures
    finally:
        postgres.stop()


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The run's parameters, saved with its figures."""
    return {
        "records": args.records,
        "not_due": args.records,
        "operators": args.operators,
        "batch": args.batch,
        "protocol_holds": args.protocol_holds,
        "beneficiary_holds": args.beneficiary_holds,
        "released_holds": args.released_holds,
        "write_rate": args.write_rate,
        "baseline_seconds": args.baseline_seconds,
        "confirm": args.confirm,
        "confirm_batch": args.confirm_batch,
        "confirm_seconds": args.confirm_seconds,
        "consume": args.consume,
    }


async def fill(rt: Runtime, args: argparse.Namespace) -> dict[str, Any]:
    """Fill protocols, schedules (due and not due) and holds with server-side SQL."""
    protocols = args.records // len(CLASSES)
    step_ms = SPREAD // timedelta(milliseconds=1) // protocols
    held_operator = f"{FIRST_REGISTRY:06d}"
    console.print(
        f"filling {args.records:,} due and {args.records:,} not-due schedule entries "
        f"({2 * protocols:,} protocols, {args.operators} operators)…"
    )
    started = time.perf_counter()
    async with rt.sessions() as session:
        for start in (DUE_START, FUTURE_START):
            await session.execute(
                FILL_PROTOCOLS,
                {
                    "tz": TIMEZONE,
                    "operators": args.operators,
                    "first_registry": FIRST_REGISTRY,
                    "count": protocols,
                    "start": start,
                    "step_ms": step_ms,
                    "now": NOW,
                },
            )
        await session.execute(FILL_SCHEDULES, {"classes": CLASSES, "now": NOW})
        await session.execute(
            FILL_HOLDS,
            {
                "held_operator": held_operator,
                "placed": NOW - timedelta(days=30),
                "future_start": FUTURE_START,
                "protocol_holds": args.protocol_holds,
                "beneficiary_holds": args.beneficiary_holds,
                "released_holds": args.released_holds,
            },
        )
        await session.commit()
    async with rt.sessions() as session:
        await session.execute(sa.text("ANALYZE"))
        await session.commit()
    fill_seconds = time.perf_counter() - started
    async with rt.sessions() as session:
        counts = (await session.execute(STATUS_COUNTS, {"now": NOW})).one()
        held_rows = (await session.execute(HELD, {"now": NOW})).all()
    by_scope = {str(row.scope): int(row.held) for row in held_rows if row.scope is not None}
    held = sum(int(row.held) for row in held_rows if row.scope is None)
    if counts.due != args.records:
        raise SystemExit(f"fill: {counts.due:,} due entries instead of {args.records:,}")
    console.print(f"  {fill_seconds:,.1f} s; {held:,} due entries held ({by_scope})")
    return {
        "seconds": fill_seconds,
        "due_entries": int(counts.due),
        "not_due_entries": args.records,
        "protocols": 2 * protocols,
        "held_entries": held,
        "held_entries_by_scope": by_scope,
    }


async def baseline(writers: Writers, args: argparse.Namespace) -> dict[str, Any]:
    """The writers alone, without the purge."""
    console.print(f"writes without the purge ({args.baseline_seconds:g} s)…")
    await writers.warm_up()
    writers.start()
    await asyncio.sleep(args.baseline_seconds)
    return await writers.stop()


async def purge(
    rt: Runtime, writers: Writers, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tick the purge runner until it finds nothing, with the writers running meanwhile."""
    console.print(f"purging (batches of {args.batch:,}) with writes meanwhile…")
    runner = TimedPurgeRunner(rt, batch_size=args.batch)
    writers.start()
    started = time.perf_counter()
    requested, ticks = 0, 0
    try:
        while True:
            tick_started = time.perf_counter()
            count = await runner.tick()
            ticks += 1
            if count == 0:  # what every later tick costs: only held entries are left
                idle_seconds = time.perf_counter() - tick_started
                break
            requested += count
        seconds = time.perf_counter() - started
    finally:
        during = await writers.stop()
    async with rt.sessions() as session:
        requests = int(await session.scalar(sa.text("SELECT count(*) FROM purge_requests")) or 0)
        outbox = int(
            await session.scalar(
                sa.text(
                    "SELECT count(*) FROM outbox WHERE event_type = 'retention.purge_requested'"
                )
            )
            or 0
        )
    batches = runner.batch_seconds
    tenth = max(1, len(batches) // 10)
    figures = {
        "records_requested": requested,
        "purge_requests": requests,
        "outbox_rows": outbox,
        "seconds": seconds,
        "records_per_s": requested / seconds,
        "purge_requests_per_s": requests / seconds,
        "ticks": ticks,
        "idle_tick_ms": idle_seconds * 1000,
        "batches": len(batches),
        "batch_ms_mean": sum(batches) / len(batches) * 1000,
        "batch_ms_first_tenth": sum(batches[:tenth]) / tenth * 1000,
        "batch_ms_last_tenth": sum(batches[-tenth:]) / tenth * 1000,
        "batch_ms_max": max(batches) * 1000,
    }
    console.print(
        f"  {requested:,} records in {seconds:,.1f} s ({figures['records_per_s']:,.0f}/s), "
        f"{len(batches)} batches"
    )
    return figures, during


async def check_purge(
    rt: Runtime, args: argparse.Namespace, figures: Mapping[str, Any]
) -> dict[str, Any]:
    """Exactly the un-held due entries were requested; held and future ones are retained."""
    filled, purged = figures["fill"], figures["purge"]
    async with rt.sessions() as session:
        counts = (await session.execute(STATUS_COUNTS, {"now": NOW})).one()
        held_rows = (await session.execute(HELD, {"now": NOW})).all()
    held = sum(int(row.held) for row in held_rows if row.scope is None)
    held_retained = sum(int(row.retained) for row in held_rows if row.scope is None)
    expected = args.records - filled["held_entries"]
    unheld_protocols = expected // len(CLASSES)
    groups = len(domain.owner_groups(CLASSES, OWNERS))
    check = {
        "requested": int(counts.requested),
        "requested_expected": expected,
        "held_retained": int(held_retained),
        "held_expected": filled["held_entries"],
        "not_due_touched": int(counts.future_touched),
        "purge_requests_expected": unheld_protocols * groups,
    }
    check["ok"] = (
        check["requested"] == expected == purged["records_requested"]
        and counts.retained == held == held_retained == filled["held_entries"]
        and check["not_due_touched"] == 0
        and purged["purge_requests"] == purged["outbox_rows"] == unheld_protocols * groups
    )
    console.print(
        f"  check: {check['requested']:,} requested (expected {expected:,}), "
        f"{check['held_retained']:,} held still retained (expected {check['held_expected']:,}), "
        f"{check['not_due_touched']} not-due entries touched → "
        + ("[green]ok[/green]" if check["ok"] else "[red]WRONG[/red]")
    )
    return check


async def confirm(rt: Runtime, args: argparse.Namespace) -> dict[str, Any]:
    """Every owner confirms a sample of purge requests; certificates per second."""
    async with rt.sessions() as session:
        sample = (
            (
                await session.execute(
                    sa.text(
                        "SELECT id, protocol_number, ans_registry, record_classes, owners "
                        "FROM purge_requests ORDER BY md5(id::text) LIMIT :n"
                    ),
                    {"n": args.confirm},
                )
            )
            .mappings()
            .all()
        )
    console.print(
        f"confirming {len(sample):,} purge requests, {args.confirm_batch} per unit of work "
        f"(at most {args.confirm_seconds:g} s)…"
    )
    handlers = RetentionHandlers(rt)
    purged_at = NOW - timedelta(minutes=5)
    done, confirmations = 0, 0
    started = time.perf_counter()
    while done < len(sample) and time.perf_counter() - started < args.confirm_seconds:
        batch = sample[done : done + args.confirm_batch]
        async with rt.uow() as uow:
            for request in batch:
                for owner in request["owners"]:
                    event = RecordsPurged(
                        protocol_number=request["protocol_number"],
                        ans_registry=request["ans_registry"],
                        purge_request_id=request["id"],
                        record_classes=tuple(
                            c for c in request["record_classes"] if owner in OWNERS[c]
                        ),
                        purged_at=purged_at,
                        owner=owner,
                        anonymized=False,
                    )
                    await handlers.records_purged(event, uow)
                    confirmations += 1
            await uow.commit()
        done += len(batch)
    seconds = time.perf_counter() - started
    async with rt.sessions() as session:
        certificates = int(await session.scalar(sa.text("SELECT count(*) FROM certificates")) or 0)
        longest = (
            await session.execute(
                sa.text(
                    "SELECT ans_registry, count(*) FROM certificates GROUP BY ans_registry "
                    "ORDER BY count(*) DESC, ans_registry LIMIT 1"
                )
            )
        ).first()
        registry, chain_length = (str(longest[0]), int(longest[1])) if longest else ("-", 0)
        chain: list[Mapping[str, Any]] = []
        while longest and (page := await repo.chain_of(session, registry, len(chain), 1000)):
            chain.extend(page)
    verdict = domain.verify_chain(chain)
    ok = certificates == done and verdict.valid and verdict.certificates == chain_length
    console.print(
        f"  {certificates:,} certificates in {seconds:,.1f} s; chain of {registry}: "
        f"{verdict.certificates} certificates, "
        + ("[green]valid[/green]" if ok else f"[red]INVALID ({verdict.problem})[/red]")
    )
    return {
        "sampled": len(sample),
        "requests_confirmed": done,
        "confirmations": confirmations,
        "certificates": certificates,
        "seconds": seconds,
        "certificates_per_s": certificates / seconds if seconds > 0 else 0.0,
        "confirmations_per_s": confirmations / seconds if seconds > 0 else 0.0,
        "time_limited": done < len(sample),
        "chain": {
            "ans_registry": registry,
            "certificates": verdict.certificates,
            "valid": verdict.valid,
        },
        "ok": ok,
    }


def consumed_opened_at(i: int) -> datetime:
    """When the i-th consumed protocol was opened, in São Paulo's offset."""
    return (CONSUME_OPENED + i * CONSUME_STEP).astimezone(ZoneInfo(TIMEZONE))


def consumed_events(
    i: int, operators: int
) -> list[tuple[ProtocolOpened | DemandRegistered, datetime]]:
    """The i-th consumed protocol's events as protocol-svc emits them, with their times: its
    opening (in the operator's offset) and, two minutes later, an assistance demand."""
    registry = f"{FIRST_REGISTRY + i % operators:06d}"
    opened_at = consumed_opened_at(i)
    number = f"{registry}{opened_at:%Y%m%d}{i // operators + 1:06d}"
    opened = ProtocolOpened(
        protocol_number=number,
        ans_registry=registry,
        layout_id="default",
        channel="phone",
        direction="inbound",
        opened_at=opened_at,
        timezone=TIMEZONE,
        beneficiary=Beneficiary(card_number=f"consume-{i}"),
    )
    requested = opened_at + timedelta(minutes=2)
    demand = DemandRegistered(
        protocol_number=number,
        ans_registry=registry,
        demand_id=uuid.uuid4(),
        demand_type="assistance",
        requested_at=requested,
        registered_at=requested,
        due_at=requested + timedelta(days=7),
        immediate=False,
        deadline_rule_id="rn623.deadline.assistance",
        deadline_legal_basis="RN 623/2024",
        deadline_unit="business_days",
        deadline_amount=5,
        ruleset_id="rn623-2025",
    )
    return [(opened, opened_at), (demand, requested)]


async def consume(rt: Runtime, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start Tansu, publish the protocols' events, time their consumption, stop it."""
    console.print("starting Tansu…")
    broker = TansuBroker(free_port(), tmp / "tansu.log")
    broker.start()
    try:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        await ensure_topics(kafka, [topic("protocol.events"), topic(dlq_topic("retention-svc"))])
        publish_seconds = await publish_protocols(broker.bootstrap_servers, args)
        figures = await time_consumer(rt, kafka, args)
    finally:
        broker.stop()
    figures["publish_seconds"] = publish_seconds
    return figures


async def publish_protocols(bootstrap: str, args: argparse.Namespace) -> float:
    """Publish ``protocol.opened`` then ``demand.registered`` of each consumed protocol,
    keyed by its number; the seconds it took."""
    console.print(
        f"publishing {args.consume:,} protocol.opened + demand.registered "
        f"({2 * args.consume:,} events)…"
    )
    started = time.perf_counter()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sends = []
        for i in range(args.consume):
            for event, at in consumed_events(i, args.operators):
                envelope = make_envelope(event, source="protocol-svc", time=at)
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
    return time.perf_counter() - started


async def time_consumer(
    rt: Runtime, kafka: KafkaSettings, args: argparse.Namespace
) -> dict[str, Any]:
    """Run retention-svc's consumer until every protocol has its schedule and its demand."""
    count, events = args.consume, 2 * args.consume
    # what each protocol's rows end as, from the service's own rules: every class, the
    # ones counted from the contact (known at once) and the ones the open demand leaves open
    first_ends = domain.schedule(consumed_opened_at(0), [None], None)
    last_ends = domain.schedule(consumed_opened_at(count - 1), [None], None)
    known = [c for c, end in first_ends.items() if end is not None]
    first_end = min(e for e in (first_ends[c] for c in known) if e is not None)
    last_end = max(e for e in (last_ends[c] for c in known) if e is not None)
    classes, still_open = len(first_ends), len(first_ends) - len(known)
    group = f"retention-svc-bench-{uuid.uuid4().hex[:8]}"
    dead_letters = DeadLetterPublisher(kafka, dlq_topic("retention-svc"))
    consumer = event_consumer(
        rt,
        kafka,
        dead_letters,
        name=group,
        config=ConsumerConfig(session_timeout_ms=6000, heartbeat_interval_ms=1000),
    )
    stop = asyncio.Event()
    console.print(f"consuming (group {group})…")
    started = time.perf_counter()
    task = asyncio.create_task(consumer.run(stop))
    first: float | None = None
    opened = demands = 0
    progressed = started
    stalled = False
    try:
        while True:
            if task.done():
                task.result()  # the consumer failed: its error
                raise RuntimeError("the consumer stopped on its own")
            async with rt.sessions() as session:
                row = (
                    await session.execute(CONSUMED, {"first_end": first_end, "last_end": last_end})
                ).one()
            now = time.perf_counter()
            if (int(row.opened), int(row.demands)) != (opened, demands):
                opened, demands, progressed = int(row.opened), int(row.demands), now
            if opened and first is None:
                first = now
            if opened >= count * len(known) and demands >= count:
                break
            if now - progressed > CONSUME_STALL_SECONDS:
                stalled = True
                console.print(
                    f"[red]  no progress for {CONSUME_STALL_SECONDS:g} s: "
                    f"{opened:,} protocols opened, {demands:,} demands[/red]"
                )
                break
            await asyncio.sleep(CONSUME_POLL_SECONDS)
        finished = now
    finally:
        stop.set()
        stopping = time.perf_counter()
        try:
            await task
        finally:
            await dead_letters.close()
    stop_seconds = time.perf_counter() - stopping
    async with rt.sessions() as session:
        check = (await session.execute(CONSUMED_CHECK)).one()
    handled = await inbox_count(rt.sessions, group)
    ok = (
        not stalled
        and check.protocols == check.demands == count
        and check.entries == count * classes
        and check.open == count * still_open
        and handled == events
    )
    seconds = finished - started
    steady = finished - (first or started)
    figures = {
        "protocols": count,
        "events": events,
        "group": group,
        "seconds_to_first": (first or finished) - started,
        "seconds_total": seconds,
        "seconds_after_first": steady,
        "events_per_s_total": events / seconds,
        "events_per_s_after_first": events / steady if steady > 0 else None,
        "protocols_per_s": count / steady if steady > 0 else None,
        "protocols_per_s_total": count / seconds,
        "stop_seconds": stop_seconds,
        "schedule_entries": int(check.entries),
        "inbox": handled,
        "ok": ok,
    }
    console.print(
        f"  {events:,} events in {seconds:,.1f} s ({figures['events_per_s_total']:,.0f}/s), "
        f"first schedule entry after {figures['seconds_to_first']:,.1f} s; "
        f"{check.entries:,} entries, {check.demands:,} demands, {handled:,} in the inbox → "
        + ("[green]ok[/green]" if ok else "[red]WRONG[/red]")
    )
    return figures


def writes_rows(table: Table, label: str, writers: Mapping[str, Any], rate: float) -> None:
    """The write latencies of both writers."""
    for where, writes in (
        ("same event loop", writers["same_loop"]),
        ("own process", writers["separate_process"]),
    ):
        table.add_row(
            f"{label}, {where}: one write p50 / p95 / p99 / max",
            f"{writes['duration_p50_ms']:,.0f} / {writes['duration_p95_ms']:,.0f} / "
            f"{writes['duration_p99_ms']:,.0f} / {writes['duration_max_ms']:,.0f} ms",
            f"{writes['writes']:,} writes, {writes['writes_per_s']:,.1f}/s of {rate:g}/s; "
            f"behind schedule p50 {writes['p50_ms'] / 1000:,.2f} s, max "
            f"{writes['max_ms'] / 1000:,.2f} s",
        )


def report(figures: dict[str, Any]) -> None:
    """Print the figures."""
    table = Table(title="retention-svc (fsync on, in-process service code)")
    table.add_column("measure")
    table.add_column("figure", justify="right")
    table.add_column("note")
    filled, purged, check = figures["fill"], figures["purge"], figures["purge_check"]
    confirmed = figures["confirm"]
    table.add_row(
        f"fill {filled['due_entries']:,} due + {filled['not_due_entries']:,} not-due entries",
        f"{filled['seconds']:,.1f} s",
        f"{filled['protocols']:,} protocols, INSERT … SELECT + ANALYZE",
    )
    table.add_row(
        "due entries under active legal holds",
        f"{filled['held_entries']:,}",
        ", ".join(f"{k} {v:,}" for k, v in sorted(filled["held_entries_by_scope"].items())),
    )
    table.add_row(
        f"purge: {purged['records_requested']:,} records requested",
        f"{purged['records_per_s']:,.0f} records/s",
        f"{purged['seconds']:,.1f} s, {purged['ticks']} ticks, {purged['batches']} batches",
    )
    table.add_row(
        f"purge: {purged['purge_requests']:,} purge requests",
        f"{purged['purge_requests_per_s']:,.0f}/s",
        f"{purged['outbox_rows']:,} outbox rows",
    )
    table.add_row(
        "purge batch transaction: mean / first 10 % / last 10 % / max",
        f"{purged['batch_ms_mean']:,.0f} / {purged['batch_ms_first_tenth']:,.0f} / "
        f"{purged['batch_ms_last_tenth']:,.0f} / {purged['batch_ms_max']:,.0f} ms",
        "one transaction each",
    )
    table.add_row(
        "purge tick finding nothing (held entries left)",
        f"{purged['idle_tick_ms']:,.1f} ms",
        f"{filled['held_entries']:,} held entries rescanned",
    )
    table.add_row(
        "check: un-held due entries requested, held ones retained",
        "ok" if check["ok"] else "WRONG",
        f"{check['requested']:,} requested, {check['held_retained']:,} held retained",
    )
    rate = figures["parameters"]["write_rate"]
    writes_rows(table, "writes, no purge", figures["writes_baseline"], rate)
    writes_rows(table, "writes during the purge", figures["writes_during_purge"], rate)
    table.add_row(
        f"certificates appended ({confirmed['certificates']:,} of "
        f"{confirmed['sampled']:,} sampled)",
        f"{confirmed['certificates_per_s']:,.1f}/s",
        f"{confirmed['confirmations_per_s']:,.1f} confirmations/s"
        + (", stopped by --confirm-seconds" if confirmed["time_limited"] else ""),
    )
    chain = confirmed["chain"]
    table.add_row(
        f"chain of {chain['ans_registry']} verified",
        "valid" if chain["valid"] else "INVALID",
        f"{chain['certificates']} certificates",
    )
    if (consumed := figures.get("consume")) is not None:
        table.add_row(
            f"consume {consumed['protocols']:,} protocols via Tansu "
            "(protocol.opened + demand.registered)",
            f"{consumed['events_per_s_after_first'] or 0:,.0f} events/s",
            f"{consumed['events_per_s_total']:,.0f}/s with the group join, "
            f"{consumed['protocols_per_s'] or 0:,.0f} protocols/s"
            + ("" if consumed["ok"] else ", rows WRONG"),
        )
    console.print(table)


def main() -> None:
    """Parse arguments, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=300_000, help="due schedule entries")
    parser.add_argument("--operators", type=int, default=300)
    parser.add_argument("--batch", type=int, default=2000, help="purge runner batch size")
    parser.add_argument("--protocol-holds", type=int, default=100)
    parser.add_argument("--beneficiary-holds", type=int, default=50)
    parser.add_argument("--released-holds", type=int, default=20)
    parser.add_argument("--write-rate", type=int, default=20, help="writes/s per writer")
    parser.add_argument("--baseline-seconds", type=int, default=10)
    parser.add_argument("--confirm", type=int, default=20_000, help="purge requests confirmed")
    parser.add_argument("--confirm-batch", type=int, default=100)
    parser.add_argument("--confirm-seconds", type=float, default=30)
    parser.add_argument(
        "--consume", type=int, default=5_000, help="protocols consumed through Tansu (0: none)"
    )
    args = parser.parse_args()
    if args.records % len(CLASSES) or args.records // len(CLASSES) // args.operators >= 999_999:
        parser.error("--records must be a multiple of 5, at most 999,999 protocols per operator")
    if args.consume < 0 or args.consume // args.operators >= 999_999:
        parser.error("--consume must be 0 or more, at most 999,999 protocols per operator")
    with tempfile.TemporaryDirectory(prefix="rn623-bench-retention-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - PostgreSQL runs as another user and must traverse it
        figures = asyncio.run(run(args, Path(tmp)))
    report(figures)
    consumed = figures.get("consume", {"ok": True})
    if not (figures["purge_check"]["ok"] and figures["confirm"]["ok"] and consumed["ok"]):
        console.print("[red]checks failed: figures not saved[/red]")
        sys.exit(1)
    console.print(f"written to {save_results({'retention_svc': figures})}")


if __name__ == "__main__":
    main()
