"""igr-svc benchmark: the rate of counting complaint events, the time to answer an IGR query
and the time to close a quarter for every operator.

Starts an embedded PostgreSQL (fsync on) and a Tansu broker on free loopback ports,
migrates igr-svc, then measures in one run, with the service's own code in-process and
service time fixed at 2025-09-15 12:00 in Brasília (2025Q3 in progress):

- setup: ``--operators`` operators (70 % medical, 20 % dental, 10 % both) through
  ``IgrHandlers.operator_upserted``, and their beneficiary counts per coverage for every
  month of 2024Q2, 2024Q3 (the reduction baselines), 2025Q2 and 2025Q3;
- ingestion through the broker: ``--broker-events`` NIP ``complaint.registered`` published
  to ``protocol.events`` beforehand, then consumed by igr-svc's consumer with the worker's
  configuration (``--max-records``): events per second until every one is counted, with
  and without the consumer group's join;
- ingestion at scale: ``--events`` NIP complaints fed to ``IgrHandlers.complaints`` in
  batches of ``--batch``, each in its own unit of work like the consumer's batch
  transaction (without its inbox claim), drawn at random from a pool of validated events,
  one per operator, coverage and month of those four quarters (the handler only reads
  their fields): events per second of the handler and the database;
- queries: ``GET /v1/igr/{ans}?quarter=2025Q3`` (open, with its projection) and
  ``?quarter=2025Q2`` (closed, with a revision) on random operators, ``--requests`` each,
  through the real app under uvicorn on a loopback port; p50/p95/p99. The path the API
  takes (``repository.load_inputs`` + ``domain.quarter_figures`` + ``domain.projection``,
  and ``repository.latest_results``) is timed in-process too, and stands in for the
  HTTP figures while the route does not exist;
- closing: ``closer.close_quarter(rt, "2025Q2")`` for every operator (frozen figures and
  one ``igr.computed`` outbox row each, one transaction), then ``--late`` complaints into
  the closed quarter and ``closer.publish_revisions(rt)``.

Prints a table and merges the figures into ``bench/results.json`` under ``igr_svc``.
The default ``--events`` is the issue's 10,000,000: about 3.5 minutes of counting on
2 cores when nothing else runs (twice that on a busy machine; the load average is
recorded), about 5.5 minutes for the whole run; ``--events 200000`` makes a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from rich.console import Console
from rich.table import Table

from benchlib import ROOT, percentile, save_results
from igr_svc import closer, domain
from igr_svc import repository as repo
from igr_svc.app import create_app
from igr_svc.consumers import IgrHandlers, event_consumer
from igr_svc.runtime import Runtime
from igr_svc.settings import IgrSettings
from rn623_devinfra.broker import TansuBroker
from rn623_devinfra.databases import create_database, with_database
from rn623_devinfra.migrations import migrate
from rn623_devinfra.ports import free_port
from rn623_devinfra.postgres import EmbeddedPostgres
from rn623_events.auth import bearer_headers
from rn623_events.clock import ManualClock
from rn623_events.consumer import ConsumerConfig
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import ComplaintRegistered
from rn623_events.db import UnitOfWork, create_engine, session_factory
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope, make_envelope
from rn623_events.settings import AuthSettings, KafkaSettings, TelemetrySettings
from rn623_events.topics import dlq_topic, ensure_topics, topic

SERVICE = ROOT / "services" / "igr-svc"
NOW = datetime(2025, 9, 15, 15, 0, tzinfo=UTC)  # 12:00 in Brasília: 2025Q3 in progress
OPEN_QUARTER, CLOSED_QUARTER = "2025Q3", "2025Q2"
QUARTERS = ("2024Q2", "2024Q3", CLOSED_QUARTER, OPEN_QUARTER)
MONTHS = tuple(m for q in QUARTERS for m in domain.quarter_months(q))
FIRST_REGISTRY = 400_000  # operators are 400000, 400001, …
SECRET = "igr-svc-bench-secret-0123456789abcdef"  # noqa: S105 - local benchmark key
IGR_ROUTE = re.compile(r"^/v1/igr/\{[^/}]+\}$")
TARGET_QUERY_MS = 50.0
TARGET_CLOSE_S = 2.0
_SEGMENTS = ("medical",) * 7 + ("dental",) * 2 + ("both",)
console = Console(width=120)

Items = list[tuple[ComplaintRegistered, Envelope]]


def segment_of(index: int) -> str:
    """The i-th operator's segment: 7 in 10 medical, 2 dental, 1 both."""
    return _SEGMENTS[index % 10]


def registry(index: int) -> str:
    """The i-th operator's ANS registration."""
    return f"{FIRST_REGISTRY + index:06d}"


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start the servers, measure, stop them."""
    console.print("starting embedded PostgreSQL (fsync on) and Tansu…")
    postgres = EmbeddedPostgres(tmp / "pg", free_port(), fsync=True)
    postgres.start()
    broker = TansuBroker(free_port(), tmp / "tansu.log")
    broker.start()
    try:
        admin_url = postgres.admin_url()
        await create_database(admin_url, "igr_svc")
        database_url = with_database(admin_url, "igr_svc")
        await asyncio.to_thread(migrate, SERVICE, database_url)
        engine = create_engine(database_url, pool_size=4)
        clock = ManualClock(NOW)
        rt = Runtime(sessions=session_factory(engine), clock=clock, source="igr-svc")
        rng = random.Random(623)  # noqa: S311 - reproducible test data, not security
        try:
            figures: dict[str, Any] = {
                "parameters": vars(args),
                "load_average_at_start": os.getloadavg(),
            }
            figures["setup"] = await setup(rt, args, rng)
            figures["broker_ingest"] = await broker_ingest(rt, broker.bootstrap_servers, args, rng)
            figures["ingest"] = await ingest(rt, args, rng)
            figures["counted"] = await check_counted(rt, args.broker_events + args.events, figures)
            figures["close"] = await close(rt, args)
            figures["revisions"] = await revisions(rt, args)
            figures["query"] = await queries(rt, database_url, broker.bootstrap_servers, args, rng)
            figures["load_average_at_end"] = os.getloadavg()
        finally:
            await engine.dispose()
        return figures
    finally:
        broker.stop()
        postgres.stop()


async def setup(rt: Runtime, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """The operators through the handler, their beneficiary counts through the repository."""
    console.print(f"registering {args.operators:,} operators and their beneficiary counts…")
    started = time.perf_counter()
    handlers = IgrHandlers(rt)
    rows: list[dict[str, Any]] = []
    async with rt.uow() as uow:
        for i in range(args.operators):
            segment = segment_of(i)
            await handlers.operator_upserted(operator_event(registry(i), segment), uow)
            for coverage in domain.COVERAGES[segment]:
                size = rng.randint(200_000, 5_000_000)
                for n, month in enumerate(MONTHS):
                    rows.append(
                        {
                            "ans_registry": registry(i),
                            "coverage": coverage,
                            "month": month,
                            "count": size + n * size // 200,  # growing 0.5 % a month
                            "source": "api",
                            "updated_at": NOW,
                        }
                    )
        await repo.put_beneficiaries(uow.session, rows)
        await uow.commit()
    segments = {s: sum(segment_of(i) == s for i in range(args.operators)) for s in domain.COVERAGES}
    return {
        "operators": args.operators,
        "segments": segments,
        "beneficiary_rows": len(rows),
        "months": [domain.month_text(m) for m in MONTHS],
        "seconds": time.perf_counter() - started,
    }


def operator_event(ans: str, segment: str) -> OperatorUpserted:
    """An operator of ``segment``."""
    return OperatorUpserted(
        ans_registry=ans,
        name=f"Operadora {ans}",
        segment=segment,
        modality="odontologia_de_grupo" if segment == "dental" else "medicina_de_grupo",
        beneficiaries=1_000_000,
        uf="SP",
        municipality_ibge="3550308",
        timezone="America/Sao_Paulo",
        protocol_layout="ans-default-20",
        revision=1,
        updated_at=NOW,
    )


def complaint(ans: str, coverage: str, month: date, sequence: int) -> ComplaintRegistered:
    """A validated NIP complaint received in ``month`` (Brasília), coverage given as
    protocol-svc gives it."""
    received = datetime(month.year, month.month, 1 + sequence % 28, 9, tzinfo=domain.BRASILIA)
    return ComplaintRegistered(
        protocol_number=f"{ans}{received:%Y%m%d}{sequence % 1_000_000:06d}",
        ans_registry=ans,
        complaint_id=uuid.uuid4(),
        source="nip",
        classification="cobertura",
        received_at=received,
        registered_at=received + timedelta(minutes=5),
        coverage=coverage,
    )


def first_coverage(index: int) -> str:
    """The i-th operator's first coverage."""
    return domain.COVERAGES[segment_of(index)][0]


def targets(operators: int, months: Sequence[date]) -> list[tuple[str, str, date]]:
    """Every (operator, coverage, month) a complaint can count toward."""
    return [
        (registry(i), coverage, month)
        for i in range(operators)
        for coverage in domain.COVERAGES[segment_of(i)]
        for month in months
    ]


async def broker_ingest(
    rt: Runtime, bootstrap: str, args: argparse.Namespace, rng: random.Random
) -> dict[str, Any]:
    """Publish NIP complaints to the broker, then time igr-svc's consumer counting them."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    await ensure_topics(
        kafka,
        [
            topic("operator.events"),
            topic("protocol.events"),
            topic("deadline.events"),
            topic(dlq_topic("igr-svc")),
        ],
    )
    keys = targets(args.operators, domain.quarter_months(OPEN_QUARTER))
    console.print(f"publishing {args.broker_events:,} complaint.registered to the broker…")
    started = time.perf_counter()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        sends = []
        for i in range(args.broker_events):
            ans, coverage, month = rng.choice(keys)
            event = complaint(ans, coverage, month, i)
            envelope = make_envelope(event, source="protocol-svc", time=NOW)
            sends.append(
                await producer.send(
                    envelope.topic,
                    key=envelope.key,
                    value=envelope.value(),
                    headers=envelope.headers(),
                )
            )
        await producer.flush()
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    publish_seconds = time.perf_counter() - started
    before = await counted(rt)
    dead_letters = DeadLetterPublisher(kafka, dlq_topic("igr-svc"))
    config = ConsumerConfig(max_records=args.max_records)
    consumer = event_consumer(
        rt, kafka, dead_letters, name=f"igr-svc.bench.{uuid.uuid4().hex[:8]}", config=config
    )
    # how many events each of the consumer's transactions counts (the handler is unchanged)
    sizes: list[int] = []
    handle = consumer.batch_handlers["complaint.registered"]

    async def sized(items: Sequence[tuple[Any, Envelope]], uow: UnitOfWork) -> None:
        sizes.append(len(items))
        await handle(items, uow)

    consumer.batch_handlers["complaint.registered"] = sized
    stop = asyncio.Event()
    default = " (the worker's)" if args.max_records == ConsumerConfig().max_records else ""
    console.print(f"consuming, max_records={args.max_records}{default}…")
    started = time.perf_counter()
    task = asyncio.create_task(consumer.run(stop))
    try:
        first = None
        deadline = started + args.consume_timeout
        while True:
            done = await counted(rt) - before
            now = time.perf_counter()
            if done and first is None:
                first = now
            if done >= args.broker_events:
                break
            if now > deadline or task.done():
                raise SystemExit(f"consumer: {done:,} of {args.broker_events:,} counted; gave up")
            await asyncio.sleep(0.2)  # each poll sums the counters: not too often
        finished = time.perf_counter()
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await dead_letters.close()
    steady = finished - (first or started)
    return {
        "events": args.broker_events,
        "publish_seconds": publish_seconds,
        "seconds_total": finished - started,
        "join_seconds": (first or started) - started,
        "events_per_s_total": args.broker_events / (finished - started),
        "events_per_s_after_first": args.broker_events / steady if steady > 0 else None,
        "max_records": args.max_records,
        "transactions": len(sizes),
        "events_per_transaction": sum(sizes) / len(sizes) if sizes else None,
    }


async def counted(rt: Runtime) -> int:
    """NIP complaints in the counters."""
    async with rt.sessions() as session:
        total = await session.scalar(sa.text("SELECT sum(complaints) FROM complaint_counts"))
    return int(total or 0)


async def ingest(rt: Runtime, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """Feed ``--events`` complaints to the handler in batches, one unit of work each: in
    arrival order (the months one after the other, operators and coverages at random
    within a month), or with ``--shuffled`` every batch drawn from all months (a backfill)."""
    keys = targets(args.operators, MONTHS)
    pool = [complaint(ans, coverage, month, n) for n, (ans, coverage, month) in enumerate(keys)]
    # the handler reads the events only; an envelope per item as the consumer passes it
    envelope = make_envelope(pool[0], source="protocol-svc", time=NOW)
    by_month: dict[date, Items] = {month: [] for month in MONTHS}
    for event, (_, _, month) in zip(pool, keys, strict=True):
        by_month[month].append((event, envelope))
    everything: Items = [item for month in MONTHS for item in by_month[month]]
    handlers = IgrHandlers(rt)
    order = "shuffled over all months" if args.shuffled else "in arrival order, month by month"
    console.print(
        f"counting {args.events:,} complaints in-process, {order}, batches of {args.batch:,} "
        f"(pool of {len(pool):,} events)…"
    )
    batch_seconds: list[float] = []
    done = 0
    report_every = max(args.events // 10, args.batch)
    started = time.perf_counter()
    while done < args.events:
        size = min(args.batch, args.events - done)
        month = MONTHS[done * len(MONTHS) // args.events]
        batch = rng.choices(everything if args.shuffled else by_month[month], k=size)
        began = time.perf_counter()
        async with rt.uow() as uow:
            await handlers.complaints(batch, uow)
            await uow.commit()
        batch_seconds.append(time.perf_counter() - began)
        previous, done = done, done + size
        if done // report_every != previous // report_every or done == args.events:
            elapsed = time.perf_counter() - started
            console.print(f"  {done:,} in {elapsed:,.1f} s ({done / elapsed:,.0f}/s)")
    seconds = time.perf_counter() - started
    handling = sum(batch_seconds)
    tenth = max(1, len(batch_seconds) // 10)
    return {
        "events": args.events,
        "order": "shuffled" if args.shuffled else "arrival",
        "batch": args.batch,
        "batches": len(batch_seconds),
        "pool": len(pool),
        "seconds": seconds,
        "handler_seconds": handling,
        "events_per_s": args.events / handling,
        "events_per_s_wall": args.events / seconds,
        "batch_ms_p50": percentile(batch_seconds, 50) * 1000,
        "batch_ms_p95": percentile(batch_seconds, 95) * 1000,
        "batch_ms_max": max(batch_seconds) * 1000,
        "batch_ms_first_tenth": sum(batch_seconds[:tenth]) / tenth * 1000,
        "batch_ms_last_tenth": sum(batch_seconds[-tenth:]) / tenth * 1000,
    }


async def check_counted(rt: Runtime, expected: int, figures: dict[str, Any]) -> dict[str, Any]:
    """Every complaint fed is in the counters."""
    total = await counted(rt)
    ok = total == expected
    console.print(
        f"  counters hold {total:,} complaints (expected {expected:,}) → "
        + ("[green]ok[/green]" if ok else "[red]WRONG[/red]")
    )
    return {"complaints": total, "expected": expected, "ok": ok}


async def close(rt: Runtime, args: argparse.Namespace) -> dict[str, Any]:
    """Close the past quarter for every operator."""
    console.print(f"closing {CLOSED_QUARTER} for every operator…")
    started = time.perf_counter()
    operators = await closer.close_quarter(rt, CLOSED_QUARTER)
    seconds = time.perf_counter() - started
    async with rt.sessions() as session:
        results = await session.scalar(
            sa.text("SELECT count(*) FROM quarter_results WHERE quarter = :q"),
            {"q": CLOSED_QUARTER},
        )
        outbox = await session.scalar(
            sa.text("SELECT count(*) FROM outbox WHERE event_type = 'igr.computed'")
        )
    ok = operators == results == outbox == args.operators
    console.print(
        f"  {operators} operators in {seconds * 1000:,.0f} ms; {results} frozen results, "
        f"{outbox} igr.computed → " + ("[green]ok[/green]" if ok else "[red]WRONG[/red]")
    )
    return {
        "quarter": CLOSED_QUARTER,
        "operators": operators,
        "seconds": seconds,
        "frozen_results": results,
        "outbox_rows": outbox,
        "ok": ok,
    }


async def revisions(rt: Runtime, args: argparse.Namespace) -> dict[str, Any]:
    """Late complaints into the closed quarter, then the revisions they cause."""
    months = domain.quarter_months(CLOSED_QUARTER)
    late = [  # one per operator while there are operators
        complaint(
            registry(n % args.operators), first_coverage(n % args.operators), months[n % 3], n
        )
        for n in range(args.late)
    ]
    envelope = make_envelope(late[0], source="protocol-svc", time=NOW)
    async with rt.uow() as uow:
        await IgrHandlers(rt).complaints([(e, envelope) for e in late], uow)
        await uow.commit()
    console.print(f"{len(late):,} late complaints; publishing revisions…")
    started = time.perf_counter()
    published = await closer.publish_revisions(rt)
    seconds = time.perf_counter() - started
    async with rt.sessions() as session:
        rows = await session.scalar(
            sa.text("SELECT count(*) FROM quarter_results WHERE quarter = :q AND revision = 1"),
            {"q": CLOSED_QUARTER},
        )
    operators_hit = len({e.ans_registry for e in late})
    ok = published == rows == operators_hit
    console.print(
        f"  {published} revisions in {seconds * 1000:,.0f} ms → "
        + ("[green]ok[/green]" if ok else "[red]WRONG[/red]")
    )
    return {
        "late_complaints": len(late),
        "revisions": published,
        "seconds": seconds,
        "ok": ok,
    }


def has_igr_route(app: FastAPI) -> bool:
    """Whether the app serves ``GET /v1/igr/{ans}`` (per its OpenAPI document)."""
    paths: dict[str, dict[str, Any]] = app.openapi().get("paths", {})
    return any(IGR_ROUTE.match(path) and "get" in ops for path, ops in paths.items())


async def queries(
    rt: Runtime,
    database_url: str,
    bootstrap: str,
    args: argparse.Namespace,
    rng: random.Random,
) -> dict[str, Any]:
    """Time the IGR query of the open and the closed quarter, over HTTP when the route
    exists, and the repository path it takes in-process."""
    picks = [registry(rng.randrange(args.operators)) for _ in range(args.requests)]
    result: dict[str, Any] = {"requests": args.requests}
    console.print(f"timing the repository path ({args.requests} random operators per quarter)…")
    result["repository_open"] = await timed(picks, lambda ans: repository_open(rt, ans))
    result["repository_closed"] = await timed(picks, lambda ans: repository_closed(rt, ans))
    settings = IgrSettings(
        database_url=database_url,
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        auth=AuthSettings(secret=SECRET),
        telemetry=TelemetrySettings(log_level="WARNING"),
    )
    app = create_app(settings, clock=rt.clock)
    if not has_igr_route(app):
        console.print("[yellow]GET /v1/igr/{ans} does not exist yet: HTTP not timed[/yellow]")
        result["http"] = None
        return result
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                await serving
                raise SystemExit("uvicorn stopped before it started")
            await asyncio.sleep(0.05)
        headers = bearer_headers(SECRET, subject="bench")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            console.print(f"timing GET /v1/igr/{{ans}} over HTTP ({args.requests} per quarter)…")

            async def get(ans: str, quarter: str) -> dict[str, Any]:
                response = await client.get(
                    f"/v1/igr/{ans}", params={"quarter": quarter}, headers=headers
                )
                if response.status_code != 200:
                    raise SystemExit(
                        f"GET /v1/igr/{ans}?quarter={quarter}: {response.status_code} "
                        f"{response.text[:500]}"
                    )
                body: dict[str, Any] = response.json()
                return body

            sample_open = await get(picks[0], OPEN_QUARTER)
            sample_closed = await get(picks[0], CLOSED_QUARTER)
            shape = {
                "open_status": sample_open.get("status"),
                "open_has_projection": sample_open.get("projection") is not None,
                "closed_status": sample_closed.get("status"),
                "closed_revision": sample_closed.get("revision"),
            }
            console.print(f"  sample answers: {shape}")
            result["http"] = {
                "open": await timed(picks, lambda ans: get(ans, OPEN_QUARTER)),
                "closed": await timed(picks, lambda ans: get(ans, CLOSED_QUARTER)),
                "sample": shape,
            }
    finally:
        server.should_exit = True
        await serving
    return result


async def repository_open(rt: Runtime, ans: str) -> None:
    """What the API computes for the open quarter: live figures and the projection."""
    async with rt.sessions() as session:
        inputs = await repo.load_inputs(session, OPEN_QUARTER, [ans])
    domain.quarter_figures(inputs[ans], rt.method)
    domain.projection(inputs[ans], rt.clock.now())


async def repository_closed(rt: Runtime, ans: str) -> None:
    """What the API reads for a closed quarter: the latest frozen figures."""
    async with rt.sessions() as session:
        frozen = await repo.latest_results(session, CLOSED_QUARTER, [ans])
    assert ans in frozen


async def timed(
    picks: Sequence[str], call: Callable[[str], Awaitable[Any]], warm_up: int = 20
) -> dict[str, Any]:
    """Latency percentiles (ms) of ``call`` over ``picks``, one at a time, after a warm-up."""
    for ans in picks[:warm_up]:
        await call(ans)
    latencies = []
    for ans in picks:
        started = time.perf_counter()
        await call(ans)
        latencies.append(time.perf_counter() - started)
    return {
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


def met(ok: bool) -> str:
    """A verdict cell."""
    return "[green]yes[/green]" if ok else "[red]no[/red]"


def report(figures: dict[str, Any]) -> None:
    """Print the figures."""
    table = Table(title="igr-svc (fsync on, in-process service code)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met?")
    setup_, broker, ingest_ = figures["setup"], figures["broker_ingest"], figures["ingest"]
    query, close_, rev = figures["query"], figures["close"], figures["revisions"]
    segments = ", ".join(f"{n:,} {s}" for s, n in setup_["segments"].items())
    table.add_row(f"operators ({segments})", f"{setup_['operators']:,}", "1,000", "")
    table.add_row(
        f"ingest {ingest_['events']:,} complaints in-process, {ingest_['order']} order "
        f"(handler + DB, batches of {ingest_['batch']:,})",
        f"{ingest_['events_per_s']:,.0f}/s",
        "",
        "",
    )
    table.add_row(
        "  handler time; batch p50 / p95 / max; first / last 10 % of batches",
        f"{ingest_['handler_seconds']:,.1f} s; {ingest_['batch_ms_p50']:,.0f} / "
        f"{ingest_['batch_ms_p95']:,.0f} / {ingest_['batch_ms_max']:,.0f}; "
        f"{ingest_['batch_ms_first_tenth']:,.0f} / {ingest_['batch_ms_last_tenth']:,.0f} ms",
        "",
        "",
    )
    table.add_row(
        f"ingest {broker['events']:,} through the broker and the consumer, sustained",
        f"{broker['events_per_s_after_first']:,.0f}/s",
        "",
        "",
    )
    table.add_row(
        f"  the same, counting the group's join ({broker['join_seconds']:,.1f} s); "
        f"{broker['events_per_transaction']:,.1f} events per transaction "
        f"(max_records {broker['max_records']})",
        f"{broker['events_per_s_total']:,.0f}/s",
        "",
        "",
    )
    counted_ = figures["counted"]
    table.add_row(
        "every complaint counted",
        f"{counted_['complaints']:,}",
        f"{counted_['expected']:,}",
        met(counted_["ok"]),
    )
    http = query["http"]
    for label, key, repo_key in (
        (
            f"GET /v1/igr/{{ans}}?quarter={OPEN_QUARTER} (open, projection)",
            "open",
            "repository_open",
        ),
        (
            f"GET /v1/igr/{{ans}}?quarter={CLOSED_QUARTER} (closed, revision 1)",
            "closed",
            "repository_closed",
        ),
    ):
        if http is not None:
            q = http[key]
            table.add_row(
                f"{label} p50 / p95 / p99",
                f"{q['p50_ms']:,.1f} / {q['p95_ms']:,.1f} / {q['p99_ms']:,.1f} ms",
                f"≤ {TARGET_QUERY_MS:g} ms",
                met(q["p99_ms"] <= TARGET_QUERY_MS),
            )
        r = query[repo_key]
        table.add_row(
            ("  repository path in-process" if http else f"{label}: NO ROUTE, repository path")
            + " p50 / p95 / p99",
            f"{r['p50_ms']:,.1f} / {r['p95_ms']:,.1f} / {r['p99_ms']:,.1f} ms",
            "" if http else f"≤ {TARGET_QUERY_MS:g} ms",
            "" if http else met(r["p99_ms"] <= TARGET_QUERY_MS),
        )
    table.add_row(
        f"close {close_['quarter']} for {close_['operators']:,} operators "
        f"({close_['outbox_rows']:,} igr.computed)",
        f"{close_['seconds'] * 1000:,.0f} ms",
        f"≤ {TARGET_CLOSE_S:g} s",
        met(close_["ok"] and close_["seconds"] <= TARGET_CLOSE_S),
    )
    table.add_row(
        f"publish {rev['revisions']:,} revisions after {rev['late_complaints']:,} late complaints",
        f"{rev['seconds'] * 1000:,.0f} ms",
        "",
        met(rev["ok"]),
    )
    console.print(table)
    console.print(
        "load average (1, 5, 15 min) at start "
        + " / ".join(f"{x:.1f}" for x in figures["load_average_at_start"])
        + ", at end "
        + " / ".join(f"{x:.1f}" for x in figures["load_average_at_end"])
        + f" on {os.cpu_count()} CPUs"
    )


def main() -> None:
    """Parse arguments, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--operators", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=10_000_000, help="in-process complaints")
    parser.add_argument("--batch", type=int, default=5_000, help="complaints per unit of work")
    parser.add_argument(
        "--shuffled", action="store_true", help="draw every batch from all months (backfill)"
    )
    parser.add_argument("--broker-events", type=int, default=200_000)
    parser.add_argument(
        "--max-records", type=int, default=ConsumerConfig().max_records, help="consumer batch"
    )
    parser.add_argument("--consume-timeout", type=float, default=900.0, help="seconds")
    parser.add_argument("--requests", type=int, default=500, help="queries per quarter")
    parser.add_argument("--late", type=int, default=1_000, help="late complaints")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rn623-bench-igr-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - PostgreSQL runs as another user and must traverse it
        figures = asyncio.run(run(args, Path(tmp)))
    report(figures)
    console.print(f"written to {save_results({'igr_svc': figures})}")


if __name__ == "__main__":
    main()
