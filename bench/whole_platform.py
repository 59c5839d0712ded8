"""Whole-platform benchmark: issuance, fan-out latency and backlog, next to their limits.

Starts the platform as the end-to-end suite does (``rn623_e2e.platform``): PostgreSQL, Tansu,
the provider emulators and all five services' api and worker on free loopback ports, with
the services' own timer intervals (as ``make run``, not the suite's faster ones). Then,
in one run on the same machine:

- **the limits**: raw asyncpg insert+commit of a protocol-like row, and raw aiokafka
  produce→consume through the same broker;
- **issuance and fan-out** at fixed offered rates (open loop: latencies count from each
  request's scheduled time). For every protocol, the time from the HTTP call to: the
  ``deadline.scheduled`` event (its ``ce_time``), the receipt reaching a provider emulator
  (its ``received_at``) and the ``retention.scheduled`` event;
- **sustained load and capacity**: rates held in turn (60 s each, each on a platform
  started afresh), sampling the backlog every 2 s (the consumer lag of every service's
  group, every outbox's depth and the receipts due and not yet sent), with the fan-out
  latency of every protocol issued meanwhile; up to the first rate not held, then
  bisecting below it. The highest rate held is the sustained capacity.

Prints a table, merges the figures into ``bench/results.json`` under ``platform`` (with the
machine and the commit), and plots latency against offered load to
``bench/platform-latency.png``. ``--quick`` is the smoke run ``make test`` uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from backbone import bench_contract, create_topic, make_event, raw_consume, raw_produce
from protocols import BODY, raw_insert_rate
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchlib import ROOT, CpuMeter, machine_info, percentile, postmaster_pid, save_results
from rn623_e2e.platform import Platform, protocols_named
from rn623_e2e.traffic import Operator
from rn623_events.envelope import make_envelope

console = Console(width=120)
PLOT = ROOT / "bench" / "platform-latency.png"
OPERATOR = Operator("777001", "Operadora Benchmark", "medical", "medical", "SP", "3550308", 150_000)
CONSUMER_GROUPS = ("deadline-svc", "notification-svc", "retention-svc", "igr-svc", "protocol-svc")
PLATFORM_TOPICS = (
    "operator.events",
    "protocol.events",
    "deadline.events",
    "notification.events",
    "retention.events",
    "contact-center.inbound",
)
LOAD_GENERATOR = "load generator and observers (this process)"  # the others' parent
SERVICES = ("protocol-svc", "deadline-svc", "notification-svc", "retention-svc", "igr-svc")
TARGETS = ("deadline", "receipt", "retention")
GRACE_SECONDS = 5.0
RAMP_SHARE = 1 / 6  # of a sustained step, while the backlog climbs to its steady level


def payloads() -> list[bytes]:
    """protocols.py's body with a demand, for an operator of our own, whose receipts go out
    on WhatsApp, SMS and e-mail in turn."""
    return [
        json.dumps(
            {
                **BODY,
                "operator": OPERATOR.ans,
                "beneficiary": {**BODY["beneficiary"], "preferred_channels": [channel]},
                "demand": {"demand_type": "assistance"},
            }
        ).encode()
        for channel in ("whatsapp", "sms", "email")
    ]


def latency(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds."""
    return {f"p{p}_ms": percentile(values, p) * 1000 for p in (50, 95, 99)}


# --- the limits --------------------------------------------------------------------------


async def kafka_limit(bootstrap: str, count: int) -> dict[str, float]:
    """Raw aiokafka produce→consume rate (records/s) of envelope-sized records."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, 1)
    model = bench_contract(topic)[1]
    records = [
        make_envelope(make_event(model, i), source="bench", time=datetime.now(UTC))
        for i in range(count)
    ]
    produce = await raw_produce(bootstrap, topic, records)
    consume = await raw_consume(bootstrap, topic, count)
    return {
        "produce_per_s": count / produce,
        "consume_per_s": count / consume,
        "produce_consume_per_s": count / (produce + consume),
    }


# --- load and observation ----------------------------------------------------------------


class Observer:
    """Collects when each protocol's effects happened: events on the platform's topics."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.seen: dict[str, dict[str, float]] = {"deadline": {}, "retention": {}}
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Start reading deadline.events and retention.events from their current ends."""
        self._consumer = AIOKafkaConsumer(
            "deadline.events",
            "retention.events",
            bootstrap_servers=self.bootstrap,
            group_id=f"bench-observer-{uuid.uuid4().hex}",
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        await self._consumer.start()
        for _ in range(300):  # the group's first assignment
            if self._consumer.assignment():
                break
            await asyncio.sleep(0.1)
        for tp in self._consumer.assignment():
            await self._consumer.seek_to_end(tp)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._consumer is not None
        wanted = {b"deadline.scheduled": "deadline", b"retention.scheduled": "retention"}
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers or ())
                    target = wanted.get(headers.get("ce_type", b""))
                    if target is None:
                        continue
                    subject = headers.get("ce_subject", b"").decode()
                    at = datetime.fromisoformat(headers["ce_time"].decode()).timestamp()
                    self.seen[target].setdefault(subject, at)

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()


async def receipts_at_providers(platform: Platform) -> dict[str, float]:
    """When each protocol's first message reached a provider emulator (epoch seconds)."""
    first: dict[str, float] = {}
    for message in await platform.provider_messages():
        at = datetime.fromisoformat(message["received_at"]).timestamp()
        for number in protocols_named(message):
            first[number] = min(at, first.get(number, at))
    return first


async def offered_load(
    client: aiohttp.ClientSession, headers: dict[str, str], rate: float, seconds: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Open-loop POST /v1/protocols; return the issuance figures and each protocol's
    scheduled send time (epoch seconds) by number."""
    bodies = payloads()
    latencies: list[float] = []
    sent_at: dict[str, float] = {}
    errors = dropped = 0
    total = int(rate * seconds)
    in_flight = asyncio.Semaphore(256)
    start = time.perf_counter()
    epoch_offset = time.time() - start

    async def one(i: int) -> None:
        nonlocal errors, dropped
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        async with in_flight:
            # Past saturation, requests queue here; those still queued well after the
            # phase's end are not sent (and counted), so every phase ends on time.
            if time.perf_counter() > start + seconds + GRACE_SECONDS:
                dropped += 1
                return
            try:
                async with client.post(
                    "/v1/protocols", data=bodies[i % len(bodies)], headers=headers
                ) as response:
                    body = await response.json()
                    if response.status != 201:
                        errors += 1
                        return
            except aiohttp.ClientError:
                errors += 1
                return
        latencies.append(time.perf_counter() - scheduled)
        sent_at[body["protocol_number"]] = scheduled + epoch_offset

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - start
    figures = {
        "offered_per_s": rate,
        "completed_per_s": len(latencies) / elapsed,
        "errors": errors,
        "not_sent": dropped,
        **latency(latencies),
    }
    return figures, sent_at


async def fan_out(
    platform: Platform, observer: Observer, sent_at: dict[str, float], wait: float
) -> dict[str, Any]:
    """Latency from each call to its three effects; effects still missing after ``wait``."""
    deadline = time.monotonic() + wait
    receipts: dict[str, float] = {}
    while time.monotonic() < deadline:
        receipts = await receipts_at_providers(platform)
        done = [
            set(sent_at) <= set(observer.seen["deadline"]),
            set(sent_at) <= set(receipts),
            set(sent_at) <= set(observer.seen["retention"]),
        ]
        if all(done):
            break
        await asyncio.sleep(2.0)
    effects = {
        "deadline": observer.seen["deadline"],
        "receipt": receipts,
        "retention": observer.seen["retention"],
    }
    out: dict[str, Any] = {}
    for target, at in effects.items():
        values = [at[n] - t for n, t in sent_at.items() if n in at]
        out[target] = {**latency(values), "missing": len(sent_at) - len(values)}
    return out


# Deliveries due and not yet handed to a provider: notification-svc's own backlog, which
# consumer lag does not show (the consumer stores receipts faster than they are sent).
DISPATCH_QUEUE = """
    SELECT count(*) FROM deliveries AS d
    WHERE d.status = 'queued' AND d.next_attempt_at <= now()
        AND EXISTS (SELECT 1 FROM messages AS m WHERE m.id = d.message_id AND m.status = 'pending')
"""


async def backlog_and_routed(
    platform: Platform, groups: dict[str, AIOKafkaConsumer]
) -> tuple[dict[str, int], int]:
    """The backlog by source: records not yet consumed, per consumer group; events not yet
    published, per service outbox (``outbox:<service>``); receipts due and not yet sent
    (``dispatch:notification-svc``). And how many records have ever been routed to the
    groups (each topic's end offsets, counted once per group that reads it): its growth
    over time is the flow of records the backlog is measured against."""
    behind: dict[str, int] = {}
    routed = 0
    probe = next(iter(groups.values()))
    partitions = [
        TopicPartition(topic, p)
        for topic in PLATFORM_TOPICS
        for p in sorted(probe.partitions_for_topic(topic) or ())
    ]
    ends = await probe.end_offsets(partitions)
    for group, reader in groups.items():
        for tp in partitions:
            committed = await reader.committed(tp)
            if committed is not None:  # None: this group does not read that topic
                behind[group] = behind.get(group, 0) + max(ends[tp] - committed, 0)
                routed += ends[tp]
    for service in SERVICES:
        conn = await asyncpg.connect(platform.database_url(service))
        try:
            behind[f"outbox:{service}"] = int(
                await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            )
            if service == "notification-svc":
                behind["dispatch:notification-svc"] = int(await conn.fetchval(DISPATCH_QUEUE))
        finally:
            await conn.close()
    return behind, routed


async def backlog(platform: Platform, groups: dict[str, AIOKafkaConsumer]) -> int:
    """The whole backlog (see ``backlog_and_routed``), summed over its sources."""
    behind, _ = await backlog_and_routed(platform, groups)
    return sum(behind.values())


async def group_readers(bootstrap: str) -> dict[str, AIOKafkaConsumer]:
    """A consumer per service group that only reads committed offsets (it never joins, so
    the services' assignments are untouched)."""
    readers = {}
    for group in CONSUMER_GROUPS:
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                  enable_auto_commit=False)  # fmt: skip
        await reader.start()
        readers[group] = reader
    await next(iter(readers.values())).topics()  # loads every topic's partitions
    return readers


async def drained(platform: Platform, within: float) -> int:
    """Wait until the backlog is empty (or ``within`` seconds pass); return what is left,
    so the next phase starts on an idle platform."""
    assert platform.broker is not None
    groups = await group_readers(platform.broker.bootstrap_servers)
    try:
        deadline = time.monotonic() + within
        left = await backlog(platform, groups)
        while left and time.monotonic() < deadline:
            await asyncio.sleep(2.0)
            left = await backlog(platform, groups)
        return left
    finally:
        for reader in groups.values():
            await reader.stop()


def process_roots(platform: Platform) -> dict[str, int]:
    """The platform's processes by name: every api and worker, the emulators, the broker,
    PostgreSQL (its backends count with it) and this load generator."""
    roots = {proc.label: proc.pid for proc in platform.processes() if proc.pid is not None}
    if platform.broker is not None and platform.broker.pid is not None:
        roots["Tansu broker"] = platform.broker.pid
    if platform.postgres is not None and (pid := postmaster_pid(platform.postgres.data_dir)):
        roots["PostgreSQL"] = pid
    roots[LOAD_GENERATOR] = os.getpid()
    return roots


async def sustained(
    platform: Platform,
    client: aiohttp.ClientSession,
    headers: dict[str, str],
    observer: Observer,
    rate: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Hold ``rate`` for ``args.sustain_seconds``, sampling the backlog every 2 s, then
    measure the fan-out latency of every protocol issued meanwhile.

    The platform keeps up when it issued every protocol offered (95 % of the rate, no
    error), every effect was seen, and the backlog's least-squares slope, past the first
    sixth of the run, is at most 1 % of the records flowing to the consumer groups: a
    platform that keeps up holds a bounded backlog (it saws up and down as offsets are
    committed once a second), one that falls behind by 1 % of its work accumulates it
    for as long as the load lasts."""
    assert platform.broker is not None
    groups = await group_readers(platform.broker.bootstrap_servers)
    samples: list[tuple[float, int]] = []
    by_source, routed_before = await backlog_and_routed(platform, groups)
    routed = routed_before
    cpu = CpuMeter(process_roots(platform), alone=[LOAD_GENERATOR])
    cpu.start()
    load = asyncio.create_task(offered_load(client, headers, rate, args.sustain_seconds))
    started = time.monotonic()
    try:
        while not load.done():
            by_source, routed = await backlog_and_routed(platform, groups)
            samples.append((time.monotonic() - started, sum(by_source.values())))
            await asyncio.sleep(2.0)
        issuance, sent = await load
        cores = cpu.cores()
    finally:
        for reader in groups.values():
            await reader.stop()
    # the backlog's climb from empty to its steady level is not falling behind
    slope = _slope([(t, b) for t, b in samples if t >= args.sustain_seconds * RAMP_SHARE])
    sampled_for = samples[-1][0] if samples else 0.0
    flow = (routed - routed_before) / sampled_for if sampled_for else 0.0
    effects = await fan_out(platform, observer, sent, args.drain_seconds)
    accepted = (
        issuance["errors"] == issuance["not_sent"] == 0
        and issuance["completed_per_s"] >= rate * 0.95
        and all(effects[target]["missing"] == 0 for target in TARGETS)
    )
    return {
        "offered_per_s": rate,
        "seconds": args.sustain_seconds,
        "issuance": issuance,
        "backlog_samples": samples,
        "backlog_slope_per_s": slope,
        "backlog_max": max((b for _, b in samples), default=0),
        "records_per_s": flow,
        # where the backlog was at the last sample: which consumer or outbox falls behind
        "backlog_last_by_source": by_source,
        # cores each process used on average: what limits the platform
        "cpu_cores_by_process": dict(sorted(cores.items(), key=lambda kv: -kv[1])),
        # every request issued, every effect seen, and no backlog growth
        "keeps_up": accepted and slope <= flow * 0.01,
        # from the HTTP call to each effect, for every protocol issued while the rate held
        "fan_out": effects,
    }


def capacity(workdir: Path, args: argparse.Namespace) -> tuple[list[dict[str, Any]], str | None]:
    """Hold each of ``args.sustain_rates`` in turn, up to the first the platform cannot
    keep up with; then bisect between the highest rate held and the lowest not held
    (``args.bisections`` times, to the nearest 10/s). The highest rate held is the
    platform's sustained capacity. Returns the steps, and why the search stopped early
    if a step did not complete (a platform that did not start, say): the steps before
    it are kept, so a long run is not lost to its last step.

    Each step runs on a platform of its own, started afresh: Tansu's in-memory storage
    costs more CPU per fetch the more records it holds (0.07 → 0.19 of a core for the
    same 250 records/s once it held 120 000), so steps run one after the other on one
    broker would each find a slower platform than the last."""
    steps: list[dict[str, Any]] = []

    def hold(rate: float) -> bool:
        console.print(f"[bold]sustained {rate:.0f}/s for {args.sustain_seconds:.0f} s[/bold]")
        with Platform(workdir / f"sustained-{len(steps)}", fast_timers=False) as platform:
            steps.append(asyncio.run(sustained_step(platform, rate, args)))
        return bool(steps[-1]["keeps_up"])

    held, failed, rate = 0.0, None, 0.0
    try:
        for rate in sorted(args.sustain_rates):
            if not hold(rate):
                failed = rate
                break
            held = rate
        for _ in range(args.bisections if failed is not None else 0):
            assert failed is not None
            rate = round((held + failed) / 20) * 10
            if not held < rate < failed:
                break
            if hold(rate):
                held = rate
            else:
                failed = rate
    except (Exception, KeyboardInterrupt) as exc:  # a bug too: its traceback is printed
        console.print_exception()
        measured = bool(steps) and steps[-1]["offered_per_s"] == rate
        what = "was measured, then its platform did not stop" if measured else "did not complete"
        reason = f"{rate:.0f}/s {what}: {type(exc).__name__}: {exc}"
        console.print(f"[red]sustained {escape(reason)}; the search stops here[/red]")
        return steps, reason
    return steps, None


async def sustained_step(
    platform: Platform, rate: float, args: argparse.Namespace
) -> dict[str, Any]:
    """One sustained step on a platform just started."""
    assert platform.broker is not None
    async with platform_client(platform) as (client, headers):
        observer = Observer(platform.broker.bootstrap_servers)
        await observer.start()
        try:
            return await sustained(platform, client, headers, observer, rate, args)
        finally:
            await observer.stop()


@contextlib.asynccontextmanager
async def platform_client(
    platform: Platform,
) -> AsyncIterator[tuple[aiohttp.ClientSession, dict[str, str]]]:
    """A client of protocol-svc and its headers, once the benchmark's operator is
    registered and known to every service."""
    headers = {**platform.headers(), "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(platform.url("protocol-svc"), connector=connector) as client:
        operator_url = f"/v1/operators/{OPERATOR.ans}"
        async with client.put(operator_url, json=OPERATOR.body(), headers=headers) as r:
            assert r.status in (200, 201), await r.text()
        await asyncio.sleep(3.0)  # operator.upserted reaches every service
        yield client, headers


def sustained_capacity(steps: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The step of the highest rate the platform kept up with, if any."""
    held = [step for step in steps if step["keeps_up"]]
    return max(held, key=lambda step: step["offered_per_s"]) if held else None


def _slope(samples: Sequence[tuple[float, int]]) -> float:
    """Least-squares slope of backlog over time (records per second)."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_b = sum(b for _, b in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (b - mean_b) for t, b in samples)
    return cov / var if var else 0.0


# --- the run -----------------------------------------------------------------------------


async def measure(platform: Platform, args: argparse.Namespace) -> dict[str, Any]:
    """The limits, and issuance and fan-out at each fixed rate."""
    assert platform.broker is not None
    async with platform_client(platform) as (client, headers):
        console.print("[bold]limits[/bold]")
        raw_insert = await raw_insert_rate(
            platform.database_url("protocol-svc"), args.concurrency, args.limit_seconds
        )
        kafka = await kafka_limit(platform.broker.bootstrap_servers, args.kafka_records)
        observer = Observer(platform.broker.bootstrap_servers)
        await observer.start()
        rates: list[dict[str, Any]] = []
        try:
            for rate in args.rates:
                console.print(f"[bold]offered {rate:.0f}/s for {args.seconds:.0f} s[/bold]")
                issuance, sent = await offered_load(client, headers, rate, args.seconds)
                effects = await fan_out(platform, observer, sent, args.drain_seconds)
                rates.append({"issuance": issuance, "fan_out": effects})
                await drained(platform, args.drain_seconds)
        finally:
            await observer.stop()
    return {
        "machine": machine_info(),
        "limits": {"raw_insert_commit_per_s": raw_insert, "kafka": kafka},
        "rates": rates,
    }


def with_capacity(
    figures: dict[str, Any], steps: list[dict[str, Any]], interrupted: str | None = None
) -> dict[str, Any]:
    """The figures with the sustained steps, the capacity they found and the ratios
    (``interrupted``: why the search stopped before its end, if it did)."""
    best = max(r["issuance"]["completed_per_s"] for r in figures["rates"])
    top = sustained_capacity(steps)
    limits = figures["limits"]
    return {
        **figures,
        "sustained": steps,
        "sustained_interrupted": interrupted,
        "sustained_capacity_per_s": top["offered_per_s"] if top else 0.0,
        # every rate offered was held, or the search stopped early: the capacity is at
        # least the highest held
        "sustained_capacity_is_lower_bound": interrupted is not None
        or all(step["keeps_up"] for step in steps),
        "ratios": {
            "issuance_to_raw_insert": best / limits["raw_insert_commit_per_s"],
            "sustained_to_kafka_produce_consume": (
                top["issuance"]["completed_per_s"] / limits["kafka"]["produce_consume_per_s"]
                if top
                else None
            ),
        },
    }


def report(figures: dict[str, Any]) -> None:
    """Print the figures as tables."""
    limits = figures["limits"]
    table = Table(title="whole platform: issuance and fan-out (ms from the HTTP call)")
    for column in ("offered/s", "issued/s", "÷ raw insert", "errors", "not sent", "HTTP p50/p99"):
        table.add_column(column, justify="right")
    for target in TARGETS:
        table.add_column(f"{target} p50/p95/p99", justify="right")
        table.add_column("missing", justify="right")
    for row in figures["rates"]:
        issuance, fan = row["issuance"], row["fan_out"]
        cells = [
            f"{issuance['offered_per_s']:.0f}",
            f"{issuance['completed_per_s']:.0f}",
            f"{issuance['completed_per_s'] / limits['raw_insert_commit_per_s']:.2f}",
            str(issuance["errors"]),
            str(issuance["not_sent"]),
            f"{issuance['p50_ms']:.0f}/{issuance['p99_ms']:.0f}",
        ]
        for target in TARGETS:
            f = fan[target]
            cells += [f"{f['p50_ms']:.0f}/{f['p95_ms']:.0f}/{f['p99_ms']:.0f}", str(f["missing"])]
        table.add_row(*cells)
    console.print(table)
    report_sustained(figures)
    console.print(
        f"machine speed: {figures['machine']['speed_reference_per_cpu_s']:,.0f} reference JSON "
        "round trips per CPU-second (compare runs of different days by it: this machine has "
        "varied threefold)"
    )
    console.print(
        f"limits: raw insert+commit {limits['raw_insert_commit_per_s']:.0f}/s; Kafka produce "
        f"{limits['kafka']['produce_per_s']:.0f}/s, consume {limits['kafka']['consume_per_s']:.0f}"
        f"/s, produce→consume {limits['kafka']['produce_consume_per_s']:.0f}/s"
    )
    ratios = figures["ratios"]
    held = ratios["sustained_to_kafka_produce_consume"]
    console.print(
        f"ratios: best issuance / raw insert = {ratios['issuance_to_raw_insert']:.2f}; "
        "sustained issuance / Kafka produce→consume = "
        + (f"{held:.2f}" if held is not None else "none (no rate held)")
    )


def report_sustained(figures: dict[str, Any]) -> None:
    """Print the sustained steps, the capacity found, and where CPU went and backlog grew."""
    steps = figures["sustained"]
    table = Table(title="sustained load: backlog and fan-out (ms from the HTTP call)")
    for column in ("offered/s", "issued/s", "records/s", "backlog slope/s", "backlog max"):
        table.add_column(column, justify="right")
    for target in TARGETS:
        table.add_column(f"{target} p50/p99", justify="right")
    table.add_column("missing", justify="right")
    table.add_column("verdict")
    for step in steps:
        fan = step["fan_out"]
        table.add_row(
            f"{step['offered_per_s']:.0f}",
            f"{step['issuance']['completed_per_s']:.0f}",
            f"{step['records_per_s']:.0f}",
            f"{step['backlog_slope_per_s']:+.1f}",
            str(step["backlog_max"]),
            *(f"{fan[t]['p50_ms']:.0f}/{fan[t]['p99_ms']:.0f}" for t in TARGETS),
            str(sum(fan[t]["missing"] for t in TARGETS)),
            "keeps up" if step["keeps_up"] else "[red]falls behind[/red]",
        )
    console.print(table)
    if figures["sustained_interrupted"]:
        console.print(
            f"[red]the search stopped early: {escape(figures['sustained_interrupted'])}[/red]"
        )
    if not steps:
        return
    top = sustained_capacity(steps)
    at_least = "≥ " if figures["sustained_capacity_is_lower_bound"] else ""
    console.print(
        f"sustained capacity: [bold]{at_least}{figures['sustained_capacity_per_s']:.0f} "
        f"protocols/s[/bold] (the highest rate held {steps[0]['seconds']:.0f} s: every "
        "protocol issued and every effect seen, the backlog growing by at most 1 % of the "
        "records flowing)"
    )
    first_behind = next((step for step in steps if not step["keeps_up"]), None)
    for step in (top, first_behind):
        if step is None:
            continue
        cores = step["cpu_cores_by_process"]
        console.print(
            f"CPU at {step['offered_per_s']:.0f}/s ({sum(cores.values()):.2f} of "
            f"{figures['machine']['cpus']} cores): "
            + ", ".join(f"{name} {used:.2f}" for name, used in cores.items())
        )
    if first_behind is not None:
        behind = sorted(first_behind["backlog_last_by_source"].items(), key=lambda kv: -kv[1])
        console.print(
            f"backlog at the end of {first_behind['offered_per_s']:.0f}/s, by source: "
            + ", ".join(f"{source} {count}" for source, count in behind if count)
        )


def plot(figures: dict[str, Any], path: Path) -> None:
    """Latency percentiles against offered load, one panel per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the fixed rates (short runs, solid) and the sustained steps (dashed), each in order
    # of offered load
    series = [
        ("", "-", sorted(figures["rates"], key=lambda r: r["issuance"]["offered_per_s"])),
        (" sustained", "--", sorted(figures["sustained"], key=lambda r: r["offered_per_s"])),
    ]
    panels = ["HTTP call", *TARGETS]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), sharex=True)
    for ax, title in zip(axes, panels, strict=True):
        for suffix, style, runs in series:
            offered = [r["issuance"]["offered_per_s"] for r in runs]
            rows = [r["issuance"] if title == "HTTP call" else r["fan_out"][title] for r in runs]
            for p, color in ((50, "C0"), (95, "C1"), (99, "C2")):
                values = [row[f"p{p}_ms"] for row in rows]
                ax.plot(offered, values, style, color=color, marker="o", label=f"p{p}{suffix}")
        ax.set_title(title)
        ax.set_xlabel("offered protocols/s")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("latency (ms)")
    axes[-1].legend()
    at_least = "≥ " if figures["sustained_capacity_is_lower_bound"] else ""
    fig.suptitle(
        f"RN 623 platform on {figures['machine']['cpus']} cores, everything local: sustains "
        f"{at_least}{figures['sustained_capacity_per_s']:.0f} protocols/s"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks everything to a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: CI smoke run")
    parser.add_argument("--rates", default="10,25,50,100", help="offered protocols/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="per offered rate")
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    parser.add_argument(
        "--sustain-rates",
        "--sustain-rate",
        default="50,100,150,200,300",
        help="protocols/s held in turn, up to the first not kept up with",
    )
    parser.add_argument("--bisections", type=int, default=2, help="below the first not held")
    parser.add_argument("--sustain-seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=32, help="of the raw insert")
    parser.add_argument("--limit-seconds", type=float, default=5.0)
    parser.add_argument("--kafka-records", type=int, default=20_000)
    parser.add_argument("--no-save", action="store_true", help="do not touch results.json")
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r]
    args.sustain_rates = [float(r) for r in args.sustain_rates.split(",") if r]
    if not args.rates or not args.sustain_rates:
        parser.error("--rates and --sustain-rates need at least one rate each")
    if args.quick:
        args.rates, args.seconds, args.drain_seconds = [10.0], 2.0, 60.0
        args.sustain_rates, args.sustain_seconds, args.bisections = [10.0], 4.0, 0
        args.limit_seconds, args.kafka_records = 1.0, 500
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return the figures."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="rn623-bench-"))
    try:
        with Platform(workdir / "rates", fast_timers=False) as platform:
            figures = asyncio.run(measure(platform, args))
        figures = with_capacity(figures, *capacity(workdir, args))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(figures)
    if not args.no_save:
        plot(figures, PLOT)
        saved = save_results({"platform": figures})
        console.print(f"figures merged into {saved}; plot in {PLOT.relative_to(ROOT)}")
    return figures


if __name__ == "__main__":
    main()
