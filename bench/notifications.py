"""notification-svc benchmark: receipts dispatched per second through the provider emulators,
and the latency from ``protocol.opened`` to the provider call at a fixed offered rate.

Starts an embedded PostgreSQL (fsync on) on a free loopback port, migrates notification-svc
into a fresh database, starts the provider emulators and the SMTP sink
(``running_emulators``) and the service's API (``create_app``) on real loopback ports, so
the emulators' delivery callbacks reach ``POST /v1/webhooks/{provider}``. With
``--layout processes`` (the default) the emulators and the API each run in a process of
their own, as they are deployed (the providers are elsewhere, the API is its own
deployment), and this process is the worker: the consumer path and the dispatcher. With
``--layout single`` all of it shares this process's event loop. The service's own code
runs with its default dispatch settings (unless ``--dispatch-batch`` or
``--dispatch-concurrency``), every provider pointed at the emulators, logs at WARNING:

- setup: three operators registered (``operator.upserted``), two of them with a profile
  (``PUT /v1/operators/{ans}/notification-profile``) that routes WhatsApp to Zenvia or
  Twilio and SMS to Twilio, so that every provider is used. Protocol ``i`` belongs to
  operator ``i % 3``; its beneficiary has every address and, by ``(i // 3) % 10``, no
  preference (7 in 10: WhatsApp), prefers SMS (2 in 10) or e-mail (1 in 10).
- throughput: ``--messages`` ``protocol.opened`` applied by notification-svc's own consumer
  runner (``ConsumerRunner.process_records`` on the records a poll would return: inbox
  claim, ``NotificationHandlers``, one transaction per ``--batch`` events), the dispatcher
  stopped; then ``Dispatcher(rt).run(stop)`` started and timed until every message is final:
  ``delivered`` (proof of delivery from the callback) for WhatsApp and SMS, ``sent`` for
  e-mail (SMTP acceptance is all the proof there is). Reported: provider calls accepted per
  second (the emulators' ``received_at`` of the last one, counted from the dispatcher's
  start), proofs of delivery recorded per second (the database polled every 50 ms, up to
  the last proof), the mix of channels and providers, and checks: each receipt reached
  exactly one provider once, and every message is final. A message still pending although
  its provider's proof of delivery reached the API is counted as lost: the callback found
  no delivery with that provider id (the dispatcher had not committed it yet), was stored
  unmatched, and committed too late for ``record_sent`` to see it; nothing applies it later.
- latency: the dispatcher running continuously (a fresh ``Dispatcher(rt).run(stop)``, as
  the worker runs it) while ``protocol.opened`` events are applied at ``--rate`` per second
  for ``--seconds`` through the same consumer runner: the events due are created and
  applied at once, those falling due while a transaction runs make the next one, at most
  ``--batch`` per transaction (as a consumer's next poll would). Latency counts from the
  event's creation (the instant its envelope is made, just before it is applied) to the
  emulator's ``received_at`` for that message, matched by the protocol number in its text,
  template or subject. Its parts, creation to commit and commit to the provider call, are
  reported, with the delay of the creation behind the offered schedule (non-zero when the
  consumer path falls behind), and whether the provider calls kept pace with the offered
  rate (if not, the latency is mostly queueing and grows with ``--seconds``).
- optionally (``--broker``): the same offered load published to a Tansu broker as
  protocol-svc publishes it and consumed by ``notification_svc.consumers.event_consumers``;
  latency from the publish to the provider call.

Not included: the outbox relay (the ``notification.*`` events stay in the outbox), the
fallback timer, the gauges. Every process shares the machine's cores with PostgreSQL and
the emulators, so the figures are a floor. Prints a table and merges the figures into
``bench/results.json`` under ``notification_svc``; exits 1 without saving if a check fails.
The default run (2,000 receipts; 200 events/s for 3 s) takes about a minute and a half on
2 cores; ``--messages 5000 --seconds 10`` three to four minutes; ``--broker`` adds about 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from rich.console import Console
from rich.table import Table

from benchlib import ROOT, CpuMeter, machine_info, percentile, postmaster_pid, save_results
from notification_svc.app import create_app
from notification_svc.consumers import event_consumers
from notification_svc.dispatcher import Dispatcher, FallbackTimer
from notification_svc.provider_setup import build_providers
from notification_svc.runtime import Runtime
from notification_svc.settings import NotificationSettings
from rn623_devinfra.broker import TansuBroker
from rn623_devinfra.databases import create_database, with_database
from rn623_devinfra.migrations import migrate
from rn623_devinfra.ports import free_port
from rn623_devinfra.postgres import EmbeddedPostgres
from rn623_devinfra.provider_emulators import (
    EmulatorConfig,
    ReceivedMessage,
    RunningEmulators,
    notification_settings,
    running_emulators,
)
from rn623_devinfra.provider_emulators.serving import serve_asgi
from rn623_events.auth import bearer_headers
from rn623_events.clock import SystemClock
from rn623_events.consumer import ConsumerConfig, ConsumerRunner
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import Beneficiary, ProtocolOpened
from rn623_events.db import create_engine, session_factory
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope, make_envelope
from rn623_events.registry import Event
from rn623_events.settings import AuthSettings, KafkaSettings, TelemetrySettings
from rn623_events.topics import dlq_topic, ensure_topics, topic
from rn623_events.worker import periodic

SERVICE = ROOT / "services" / "notification-svc"
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"  # noqa: S105 - local benchmark key
HOST = "127.0.0.1"
WORKER = "worker (this process)"
TIMEZONE = ZoneInfo("America/Sao_Paulo")
DAY = "20251121"  # in every protocol number: operator (6) + day (8) + sequence (6)
NUMBER = re.compile(r"\d{20}")
# The operators: the first sends with the defaults (WhatsApp: Meta; SMS: Zenvia), the
# others with a profile that puts another provider first.
OPERATORS: dict[str, dict[str, list[str]] | None] = {
    "400001": None,
    "400002": {"whatsapp": ["zenvia", "meta"], "sms": ["twilio", "zenvia"]},
    "400003": {"whatsapp": ["twilio", "meta"], "sms": ["zenvia", "twilio"]},
}
ANS = sorted(OPERATORS)
# The beneficiaries' preferences by (i // operators) % 10: none (WhatsApp first) 7 in 10,
# SMS 2 in 10, e-mail 1 in 10.
PREFERENCES: tuple[tuple[str, ...], ...] = ((),) * 7 + (("sms",),) * 2 + (("email",),)
POLL_SECONDS = 0.05
# Nothing queued or being sent, no callback pending at the emulators and no change for this
# long: what is not final by then never will be.
SETTLED_SECONDS = 1.0
STALL_SECONDS = 60.0  # no progress at all for this long: the run is given up
LATENCY_FIRST = 500_000  # sequence numbers of the latency phase start here
BROKER_FIRST = 800_000  # and those of the broker phase here
console = Console(width=120)

# Each phase numbers its protocols in a range of sequences (the last 6 digits).
PROGRESS = sa.text(
    """
    SELECT count(*) FILTER (WHERE m.status = 'delivered') AS delivered,
        count(*) FILTER (WHERE m.status IN ('delivered', 'sent')) AS final,
        count(*) FILTER (WHERE m.status IN ('failed', 'unreachable')) AS failed,
        (SELECT count(*) FROM deliveries AS d
         WHERE d.status IN ('queued', 'sending')
             AND right(d.protocol_number, 6) BETWEEN :first AND :last) AS unsent
    FROM messages AS m WHERE right(m.protocol_number, 6) BETWEEN :first AND :last
    """
)
# Messages still pending although their channel's provider called back a proof of delivery:
# the callback was stored unmatched (the provider's id not committed yet) and never applied.
LOST = sa.text(
    """
    SELECT count(DISTINCT m.id) FROM messages AS m
    JOIN deliveries AS d ON d.message_id = m.id AND d.status = 'sent'
    JOIN callbacks AS c ON c.provider = d.provider
        AND c.provider_message_id = d.provider_message_id
        AND c.applied_at IS NULL AND c.status IN ('delivered', 'read')
    WHERE m.status = 'pending' AND right(m.protocol_number, 6) BETWEEN :first AND :last
    """
)
MIX = sa.text(
    """
    SELECT channel, coalesce(provider, '-') AS provider, status, count(*) AS deliveries
    FROM deliveries WHERE right(protocol_number, 6) BETWEEN :first AND :last
    GROUP BY channel, provider, status ORDER BY count(*) DESC, channel, provider
    """
)


def protocol_number(i: int) -> str:
    """The i-th protocol's number (20 digits): its operator, the day, its sequence."""
    return f"{ANS[i % len(ANS)]}{DAY}{i:06d}"


def opened(i: int, at: datetime) -> ProtocolOpened:
    """``protocol.opened`` of the i-th protocol, as protocol-svc emits it."""
    preferred = PREFERENCES[(i // len(ANS)) % len(PREFERENCES)]
    return ProtocolOpened(
        protocol_number=protocol_number(i),
        ans_registry=ANS[i % len(ANS)],
        layout_id="ans-default-20",
        channel="phone",
        direction="inbound",
        opened_at=at.astimezone(TIMEZONE),
        timezone="America/Sao_Paulo",
        beneficiary=Beneficiary(
            name="Maria Teste",
            email=f"beneficiario{i}@example.org",
            phone=f"+55119{i % 10**8:08d}",
            whatsapp=f"+55119{i % 10**8:08d}",
            preferred_channels=preferred,
        ),
    )


def as_record(envelope: Envelope, offset: int) -> ConsumerRecord[bytes, bytes]:
    """The Kafka record a consumer would have polled for ``envelope``."""
    key, value = envelope.key, envelope.value()
    return ConsumerRecord(
        topic=envelope.topic,
        partition=0,
        offset=offset,
        timestamp=int(envelope.time.timestamp() * 1000),
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=envelope.headers(),
    )


@dataclass
class Applier:
    """Applies events through notification-svc's own consumer runners (no broker)."""

    runners: dict[str, ConsumerRunner]
    offset: int = 0

    async def apply(self, events: Sequence[Event], at: datetime) -> None:
        """Apply ``events`` (one topic) as one poll of the consumer: one transaction."""
        envelopes = [make_envelope(e, source="protocol-svc", time=at) for e in events]
        records = []
        for envelope in envelopes:
            records.append(as_record(envelope, self.offset))
            self.offset += 1
        await self.runners[envelopes[0].topic].process_records(records, track_offsets=False)


# ---- the emulators, in this process or in their own --------------------------------------


@dataclass(frozen=True)
class Received:
    """What a provider accepted (or the SMTP sink received), and the protocols it names."""

    provider: str
    channel: str
    numbers: tuple[str, ...]
    received_at: float  # seconds since the epoch


def summarize(messages: Iterable[ReceivedMessage]) -> list[Received]:
    """The received messages, each with the protocol numbers in its text/template/subject."""
    return [
        Received(
            m.provider,
            m.channel,
            tuple(sorted(set(NUMBER.findall(f"{m.text} {m.template} {m.subject}")))),
            m.received_at.timestamp(),
        )
        for m in messages
    ]


class Emulators:
    """The provider emulators and the SMTP sink: where they listen, what they received."""

    http_url: str
    smtp_port: int

    async def received(self) -> list[Received]:
        """Everything received so far, oldest first."""
        raise NotImplementedError

    async def pending(self) -> int:
        """How many delivery-callback sequences are still running."""
        raise NotImplementedError

    async def idle(self) -> None:
        """Wait until every callback was sent (or given up)."""
        raise NotImplementedError


class LocalEmulators(Emulators):
    """Emulators running on this event loop."""

    def __init__(self, emu: RunningEmulators) -> None:
        self.emu = emu
        self.http_url = emu.http_url
        self.smtp_port = emu.smtp_port

    async def received(self) -> list[Received]:
        """Everything received so far, oldest first."""
        return summarize(self.emu.messages())

    async def pending(self) -> int:
        """How many delivery-callback sequences are still running."""
        return self.emu.state.callbacks.pending

    async def idle(self) -> None:
        """Wait until every callback was sent (or given up)."""
        await self.emu.wait_for_callbacks()


class Child:
    """A spawned process answering one command at a time over a pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=target, args=(*args, child), daemon=True)
        self.process.start()
        child.close()
        self.lock = asyncio.Lock()

    async def ask(self, command: str | None) -> Any:
        """Send a command; its answer."""
        async with self.lock:
            self.conn.send(command)
            return await asyncio.to_thread(self.conn.recv)

    async def ready(self) -> Any:
        """The child's first message, once it is serving."""
        return await asyncio.to_thread(self.conn.recv)

    def close(self) -> None:
        """End the process."""
        if self.process.is_alive():
            with contextlib.suppress(OSError):  # the process died: nothing to tell it
                self.conn.send(None)
            self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()


def emulator_process(
    config: EmulatorConfig, http_port: int, smtp_port: int, conn: Connection
) -> None:
    """Entry point of the emulators' process (see ``serve_emulators``)."""
    asyncio.run(serve_emulators(config, http_port, smtp_port, conn))


async def serve_emulators(
    config: EmulatorConfig, http_port: int, smtp_port: int, conn: Connection
) -> None:
    """Run the emulators; answer ``received``, ``pending`` and ``idle`` until None."""
    async with running_emulators(config, http_port=http_port, smtp_port=smtp_port) as emu:
        local = LocalEmulators(emu)
        conn.send("ready")
        while (command := await asyncio.to_thread(conn.recv)) is not None:
            if command == "received":
                conn.send(await local.received())
            elif command == "pending":
                conn.send(await local.pending())
            elif command == "idle":
                await local.idle()
                conn.send(True)


class EmulatorProcess(Emulators):
    """Emulators running in a process of their own."""

    def __init__(self, config: EmulatorConfig) -> None:
        http_port, self.smtp_port = free_port(), free_port()
        self.http_url = f"http://{HOST}:{http_port}"
        self.child = Child(emulator_process, config, http_port, self.smtp_port)

    async def received(self) -> list[Received]:
        """Everything received so far, oldest first."""
        received: list[Received] = await self.child.ask("received")
        return received

    async def pending(self) -> int:
        """How many delivery-callback sequences are still running."""
        pending: int = await self.child.ask("pending")
        return pending

    async def idle(self) -> None:
        """Wait until every callback was sent (or given up)."""
        await self.child.ask("idle")


def api_process(settings: NotificationSettings, port: int, conn: Connection) -> None:
    """Entry point of the API's process: serve until told to stop."""
    asyncio.run(serve_api(settings, port, conn))


async def serve_api(settings: NotificationSettings, port: int, conn: Connection) -> None:
    """Serve the API on ``port`` until None arrives."""
    async with serve_asgi(create_app(settings), HOST, port):
        conn.send("ready")
        while await asyncio.to_thread(conn.recv) is not None:
            conn.send("serving")


def service_settings(
    database_url: str, emu: Emulators, api_port: int, args: argparse.Namespace
) -> NotificationSettings:
    """The service's defaults, every provider pointed at the emulators, logs at WARNING
    (at INFO every provider call and callback is logged by httpx)."""
    fields: dict[str, Any] = {
        "database_url": database_url,
        "kafka": KafkaSettings(bootstrap_servers=f"{HOST}:1"),
        "auth": AuthSettings(secret=SECRET),
        "telemetry": TelemetrySettings(log_level="WARNING"),
        **notification_settings(
            emu.http_url, HOST, emu.smtp_port, f"http://{HOST}:{api_port}/v1/webhooks"
        ),
        "meta_verify_token": "bench-meta-verify-token",
    }
    if args.dispatch_batch is not None:
        fields["dispatch_batch_size"] = args.dispatch_batch
    if args.dispatch_concurrency is not None:
        fields["dispatch_concurrency"] = args.dispatch_concurrency
    return NotificationSettings(**fields)


# ---- measuring ---------------------------------------------------------------------------


@dataclass
class Bench:
    """The running parts: the worker's runtime, its consumer runners, the emulators."""

    rt: Runtime
    settings: NotificationSettings
    emu: Emulators
    applier: Applier
    processes: dict[str, int]  # CPU meter roots: this worker, the API, emulators, PostgreSQL

    async def progress(self, first: int, last: int) -> tuple[int, int, int, int]:
        """Of protocols first..last: messages delivered, final, failed; deliveries unsent."""
        async with self.rt.sessions() as session:
            row = (
                await session.execute(PROGRESS, {"first": f"{first:06d}", "last": f"{last:06d}"})
            ).one()
        return int(row.delivered), int(row.final), int(row.failed), int(row.unsent)

    async def lost(self, first: int, last: int) -> int:
        """Messages whose proof of delivery arrived but was never applied."""
        async with self.rt.sessions() as session:
            found = await session.scalar(LOST, {"first": f"{first:06d}", "last": f"{last:06d}"})
        return int(found or 0)


@dataclass
class Settled:
    """How a run of messages ended: counts, and when the last proof was recorded."""

    delivered: int
    final: int
    failed: int
    lost: int
    last_delivered: float  # time.perf_counter() when the delivered count last grew
    stalled: bool


async def until_settled(bench: Bench, first: int, last: int) -> Settled:
    """Poll until every message of protocols first..last is final, or nothing more can
    happen (nothing unsent, no callback pending, no change for ``SETTLED_SECONDS``)."""
    count = last - first + 1
    state, changed = (-1, -1, -1), time.perf_counter()
    last_delivered = changed
    while True:
        delivered, final, failed, unsent = await bench.progress(first, last)
        now = time.perf_counter()
        if delivered != state[0]:
            last_delivered = now
        if (delivered, final, unsent) != state:
            state, changed = (delivered, final, unsent), now
        stalled = now - changed > STALL_SECONDS
        settled = unsent == 0 and now - changed > SETTLED_SECONDS and await bench.emu.pending() == 0
        if final + failed >= count or settled or stalled:
            lost = await bench.lost(first, last)
            if stalled:
                console.print(f"[red]  stalled: {final:,} of {count:,} final[/red]")
            elif final + failed < count:
                console.print(
                    f"[red]  {count - final - failed:,} messages never final, {lost:,} of "
                    "them with a proof of delivery received and not applied[/red]"
                )
            return Settled(delivered, final, failed, lost, last_delivered, stalled)
        await asyncio.sleep(POLL_SECONDS)


async def setup_operators(bench: Bench, api: httpx.AsyncClient) -> None:
    """Register the operators (the operators' consumer) and put their profiles (the API)."""
    now = datetime.now(UTC)
    events = [
        OperatorUpserted(
            ans_registry=ans,
            name=f"Operadora Bench {ans}",
            segment="medical",
            modality="medicina_de_grupo",
            beneficiaries=50_000,
            uf="SP",
            municipality_ibge="3550308",
            timezone="America/Sao_Paulo",
            revision=1,
            updated_at=now,
        )
        for ans in ANS
    ]
    await bench.applier.apply(events, now)
    for ans, providers in OPERATORS.items():
        if providers is None:
            continue
        response = await api.put(
            f"/v1/operators/{ans}/notification-profile",
            json={"channel_providers": providers},
            headers=bearer_headers(SECRET),
        )
        response.raise_for_status()


def emails(first: int, last: int) -> int:
    """How many of protocols first..last prefer e-mail (final once SMTP accepts)."""
    return sum(
        1 for i in range(first, last + 1) if PREFERENCES[(i // len(ANS)) % 10][:1] == ("email",)
    )


def one_call_each(received: Sequence[Received], numbers: Iterable[str]) -> tuple[int, int]:
    """How many of ``numbers`` reached no provider, and how many more than once."""
    calls = Counter(n for r in received for n in r.numbers)
    wanted = list(numbers)
    return sum(1 for n in wanted if calls[n] == 0), sum(1 for n in wanted if calls[n] > 1)


def sending(rt: Runtime, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """The worker's sending side: the dispatcher, and the fallback timer whose sweep applies
    callbacks that arrived while their send was being recorded."""
    timer = periodic(FallbackTimer(rt).tick, rt.settings.fallback_interval_seconds, what="timer")
    return [
        asyncio.create_task(Dispatcher(rt).run(stop)),
        asyncio.create_task(timer(stop)),
    ]


async def throughput(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """Create ``--messages`` receipts, then dispatch them until every one is final."""
    count = args.messages
    console.print(
        f"applying {count:,} protocol.opened through the consumer runner "
        f"({args.batch} per transaction)…"
    )
    started = time.perf_counter()
    for first in range(0, count, args.batch):
        now = datetime.now(UTC)
        await bench.applier.apply(
            [opened(i, now) for i in range(first, min(count, first + args.batch))], now
        )
    create_seconds = time.perf_counter() - started
    unsent = (await bench.progress(0, count - 1))[3]
    console.print(
        f"  {create_seconds:,.1f} s ({count / create_seconds:,.0f} events/s); "
        f"{unsent:,} deliveries queued"
    )
    console.print(
        f"dispatching (batch {bench.settings.dispatch_batch_size}, "
        f"concurrency {bench.settings.dispatch_concurrency})…"
    )
    before = len(await bench.emu.received())
    stop = asyncio.Event()
    cpu = CpuMeter(bench.processes, alone=[WORKER])
    cpu.start()
    started_at = time.time()
    started = time.perf_counter()
    tasks = sending(bench.rt, stop)
    try:
        settled = await until_settled(bench, 0, count - 1)
        cores = cpu.cores()
        dispatch_seconds = time.perf_counter() - started
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    await bench.emu.idle()
    received = (await bench.emu.received())[before:]
    first_call = min((r.received_at for r in received), default=started_at) - started_at
    last_call = max((r.received_at for r in received), default=started_at) - started_at
    proofs_seconds = settled.last_delivered - started
    missing, duplicates = one_call_each(received, (protocol_number(i) for i in range(count)))
    async with bench.rt.sessions() as session:
        mix = [
            dict(row)
            for row in (await session.execute(MIX, {"first": "000000", "last": f"{count - 1:06d}"}))
            .mappings()
            .all()
        ]
    email = emails(0, count - 1)
    ok = (
        not settled.stalled
        and settled.failed == 0
        and settled.final == count
        and settled.delivered == count - email
        and missing == 0
        and duplicates == 0
        and len(received) == count
    )
    figures = {
        "messages": count,
        "create_seconds": create_seconds,
        "create_events_per_s": count / create_seconds,
        "seconds_to_first_call": first_call,
        "seconds_to_last_call": last_call,
        "provider_calls_accepted": len(received),
        "provider_calls_per_s": len(received) / last_call if last_call > 0 else None,
        "delivered": settled.delivered,
        "seconds_to_last_proof": proofs_seconds,
        "delivered_per_s": settled.delivered / proofs_seconds if proofs_seconds > 0 else None,
        "emails_sent": settled.final - settled.delivered,
        "final": settled.final,
        "failed": settled.failed,
        "lost_proofs": settled.lost,
        "received_by_provider": dict(sorted(Counter(r.provider for r in received).items())),
        "cpu_cores": cores,
        "cpu_ms_per_receipt": {
            name: 1000 * used * dispatch_seconds / count for name, used in cores.items()
        },
        "mix": mix,
        "missing": missing,
        "duplicates": duplicates,
        "ok": ok,
    }
    console.print(
        f"  {len(received):,} provider calls accepted, the last after {last_call:,.1f} s "
        f"({figures['provider_calls_per_s'] or 0:,.0f}/s); {settled.delivered:,} proofs of "
        f"delivery, the last after {proofs_seconds:,.1f} s "
        f"({figures['delivered_per_s'] or 0:,.0f}/s) → "
        + ("[green]ok[/green]" if ok else "[red]WRONG[/red]")
    )
    return figures


@dataclass
class Offered:
    """One event of the offered load: when it was due, created, committed."""

    number: str
    scheduled: float  # time.time() of its slot in the schedule
    created: float  # time.time() when its envelope was made (and published, via the broker)
    committed: float | None = None


async def offer(bench: Bench, rate: float, seconds: float, first: int, batch: int) -> list[Offered]:
    """Apply ``protocol.opened`` at ``rate`` per second for ``seconds`` through the consumer
    runner: the events due are applied at once, at most ``batch`` per transaction (a poll)."""
    total = int(rate * seconds)
    offered: list[Offered] = []
    started = time.time()
    i = 0
    while i < total:
        due = min(total, int((time.time() - started) * rate) + 1, i + batch)
        if due <= i:
            await asyncio.sleep(max(0.0, started + i / rate - time.time()))
            continue
        now = time.time()
        at = datetime.fromtimestamp(now, UTC)
        await bench.applier.apply([opened(first + k, at) for k in range(i, due)], at)
        committed = time.time()
        offered.extend(
            Offered(protocol_number(first + k), started + k / rate, now, committed)
            for k in range(i, due)
        )
        i = due
    return offered


def ms(values: Sequence[float]) -> dict[str, float]:
    """Percentiles of durations in seconds, in milliseconds."""
    return {
        "p50_ms": percentile(values, 50) * 1000,
        "p95_ms": percentile(values, 95) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values, default=float("nan")) * 1000,
    }


async def latency_figures(
    bench: Bench, offered: Sequence[Offered], args: argparse.Namespace, settled: Settled
) -> dict[str, Any]:
    """Percentiles of creation → provider call, and of its parts."""
    calls: dict[str, list[float]] = {}
    for r in await bench.emu.received():
        for number in r.numbers:
            calls.setdefault(number, []).append(r.received_at)
    to_call: list[float] = []
    to_commit: list[float] = []
    commit_to_call: list[float] = []
    behind: list[float] = []
    missing = duplicates = 0
    for o in offered:
        found = calls.get(o.number, [])
        if not found:
            missing += 1
            continue
        duplicates += len(found) > 1
        to_call.append(min(found) - o.created)
        behind.append(o.created - o.scheduled)
        if o.committed is not None:
            to_commit.append(o.committed - o.created)
            commit_to_call.append(min(found) - o.committed)
    span = max(o.created for o in offered) - min(o.created for o in offered)
    # the provider calls' own pace: below the offered rate, the latency is mostly queueing
    first_calls = [min(calls[o.number]) for o in offered if o.number in calls]
    calls_span = max(first_calls, default=0.0) - min(first_calls, default=0.0)
    calls_per_s = (len(first_calls) - 1) / calls_span if calls_span > 0 else None
    ok = not settled.stalled and settled.failed == 0 and missing == 0 and duplicates == 0
    return {
        "offered_rate": args.rate,
        "seconds": args.seconds,
        "events": len(offered),
        "achieved_rate": (len(offered) - 1) / span if span > 0 else None,
        "provider_calls_per_s": calls_per_s,
        "overloaded": calls_per_s is not None and calls_per_s < 0.9 * args.rate,
        "to_provider_call": ms(to_call),
        "to_commit": ms(to_commit),
        "commit_to_provider_call": ms(commit_to_call),
        "created_behind_schedule": ms(behind),
        "final": settled.final,
        "lost_proofs": settled.lost,
        "missing": missing,
        "duplicates": duplicates,
        "ok": ok and settled.final == len(offered),
    }


def show_latency(figures: dict[str, Any]) -> None:
    """One line of a latency run."""
    call = figures["to_provider_call"]
    console.print(
        f"  {figures['events']:,} events ({figures['achieved_rate'] or 0:,.0f}/s): "
        f"to the provider call p50 {call['p50_ms']:,.0f} / p95 {call['p95_ms']:,.0f} / "
        f"p99 {call['p99_ms']:,.0f} ms → "
        + ("[green]ok[/green]" if figures["ok"] else "[red]WRONG[/red]")
    )


async def latency(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """The offered load through the consumer runner, the dispatcher running meanwhile."""
    console.print(
        f"offering {args.rate:g} protocol.opened/s for {args.seconds:g} s through the "
        "consumer runner, the dispatcher running…"
    )
    stop = asyncio.Event()
    tasks = sending(bench.rt, stop)
    try:
        offered = await offer(bench, args.rate, args.seconds, LATENCY_FIRST, args.batch)
        settled = await until_settled(bench, LATENCY_FIRST, LATENCY_FIRST + len(offered) - 1)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    await bench.emu.idle()
    figures = await latency_figures(bench, offered, args, settled)
    show_latency(figures)
    return figures


async def broker_latency(bench: Bench, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The offered load published to Tansu and consumed by the service's consumers."""
    console.print("starting Tansu…")
    broker = TansuBroker(free_port(), tmp / "tansu.log")
    broker.start()
    try:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        await ensure_topics(
            kafka,
            [
                topic("operator.events"),
                topic("protocol.events"),
                topic("retention.events"),
                topic(dlq_topic("notification-svc")),
            ],
        )
        dead_letters = DeadLetterPublisher(kafka, dlq_topic("notification-svc"))
        group = f"notification-svc-bench-{uuid.uuid4().hex[:8]}"
        consumers = event_consumers(
            bench.rt,
            kafka,
            dead_letters,
            name=group,
            config=ConsumerConfig(session_timeout_ms=6000, heartbeat_interval_ms=1000),
        )
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=0)
        await producer.start()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(c.run(stop)) for c in consumers]
        tasks += sending(bench.rt, stop)
        try:
            await warm_up_consumer(bench, producer)
            console.print(
                f"publishing {args.rate:g} protocol.opened/s for {args.seconds:g} s to Tansu, "
                f"consumed by event_consumers (group {group})…"
            )
            offered = await publish(producer, args.rate, args.seconds, BROKER_FIRST)
            settled = await until_settled(bench, BROKER_FIRST, BROKER_FIRST + len(offered) - 1)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await producer.stop()
            await dead_letters.close()
    finally:
        broker.stop()
    await bench.emu.idle()
    figures = await latency_figures(bench, offered, args, settled)
    figures["group"] = group
    show_latency(figures)
    return figures


async def warm_up_consumer(bench: Bench, producer: AIOKafkaProducer) -> None:
    """Publish one protocol and wait for its receipt to be final: the group has joined."""
    event = opened(BROKER_FIRST - 1, datetime.now(UTC))
    envelope = make_envelope(event, source="protocol-svc", time=datetime.now(UTC))
    await producer.send_and_wait(
        envelope.topic, key=envelope.key, value=envelope.value(), headers=envelope.headers()
    )
    deadline = time.perf_counter() + 60
    while (await bench.progress(BROKER_FIRST - 1, BROKER_FIRST - 1))[1] < 1:
        if time.perf_counter() > deadline:
            raise RuntimeError("the consumer group did not start within 60 s")
        await asyncio.sleep(POLL_SECONDS)


async def publish(
    producer: AIOKafkaProducer, rate: float, seconds: float, first: int
) -> list[Offered]:
    """Publish ``protocol.opened`` at ``rate`` per second, each in its own slot."""
    total = int(rate * seconds)
    offered: list[Offered] = []
    sends = []
    started = time.time()
    for k in range(total):
        delay = started + k / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.time()
        at = datetime.fromtimestamp(now, UTC)
        envelope = make_envelope(opened(first + k, at), source="protocol-svc", time=at)
        sends.append(
            await producer.send(
                envelope.topic,
                key=envelope.key,
                value=envelope.value(),
                headers=envelope.headers(),
            )
        )
        offered.append(Offered(protocol_number(first + k), started + k / rate, now))
    await asyncio.gather(*sends)
    return offered


# ---- running -----------------------------------------------------------------------------


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start PostgreSQL, the emulators and the API; measure; stop them."""
    console.print(
        f"starting embedded PostgreSQL (fsync on), the emulators and the API ({args.layout})…"
    )
    postgres = EmbeddedPostgres(tmp / "pg", free_port(), fsync=True)
    postgres.start()
    try:
        admin_url = postgres.admin_url()
        await create_database(admin_url, "notification_svc")
        database_url = with_database(admin_url, "notification_svc")
        await asyncio.to_thread(migrate, SERVICE, database_url)
        api_port = free_port()
        webhooks = f"http://{HOST}:{api_port}/v1/webhooks"
        config = EmulatorConfig(
            zenvia_webhook_url=f"{webhooks}/zenvia", meta_webhook_url=f"{webhooks}/meta"
        )
        processes = {WORKER: os.getpid()}
        if (pid := postmaster_pid(postgres.data_dir)) is not None:
            processes["PostgreSQL"] = pid
        if args.layout == "single":
            async with running_emulators(config) as emu:
                return await with_emulators(
                    args, database_url, LocalEmulators(emu), api_port, tmp, processes
                )
        emulators = EmulatorProcess(config)
        try:
            await emulators.child.ready()
            if emulators.child.process.pid is not None:
                processes["emulators"] = emulators.child.process.pid
            return await with_emulators(args, database_url, emulators, api_port, tmp, processes)
        finally:
            emulators.child.close()
    finally:
        postgres.stop()


async def with_emulators(
    args: argparse.Namespace,
    database_url: str,
    emu: Emulators,
    api_port: int,
    tmp: Path,
    processes: dict[str, int],
) -> dict[str, Any]:
    """Start the API and the worker's parts; measure."""
    settings = service_settings(database_url, emu, api_port, args)
    engine = create_engine(database_url, pool_size=8)  # as the worker's
    providers = build_providers(settings)
    rt = Runtime(
        sessions=session_factory(engine),
        clock=SystemClock(),
        settings=settings,
        providers=providers,
    )
    dead_letters = DeadLetterPublisher(settings.kafka, dlq_topic("notification-svc"))
    runners = event_consumers(rt, settings.kafka, dead_letters)
    api_child = None if args.layout == "single" else Child(api_process, settings, api_port)
    if api_child is not None and api_child.process.pid is not None:
        processes["API"] = api_child.process.pid
    bench = Bench(
        rt,
        settings,
        emu,
        Applier({"operator.events": runners[0], "protocol.events": runners[1]}),
        processes,
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            if api_child is None:
                await stack.enter_async_context(serve_asgi(create_app(settings), HOST, api_port))
            else:
                await api_child.ready()
            api = await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://{HOST}:{api_port}")
            )
            await setup_operators(bench, api)
            figures: dict[str, Any] = {
                "parameters": parameters(args, settings),
                "machine": machine_info(),
            }
            figures["throughput"] = await throughput(bench, args)
            figures["latency"] = await latency(bench, args)
            if args.broker:
                figures["latency_via_broker"] = await broker_latency(bench, args, tmp)
        return figures
    finally:
        if api_child is not None:
            api_child.close()
        await providers.aclose()
        await engine.dispose()


def parameters(args: argparse.Namespace, settings: NotificationSettings) -> dict[str, Any]:
    """The run's parameters, saved with its figures."""
    return {
        "layout": args.layout,
        "messages": args.messages,
        "batch": args.batch,
        "rate": args.rate,
        "seconds": args.seconds,
        "broker": args.broker,
        "dispatch_batch_size": settings.dispatch_batch_size,
        "dispatch_concurrency": settings.dispatch_concurrency,
        "dispatch_interval_seconds": settings.dispatch_interval_seconds,
        "emulator_delivered_delay_seconds": EmulatorConfig().delivered_delay,
        "load_average_at_start": os.getloadavg(),
    }


def latency_rows(table: Table, label: str, figures: dict[str, Any]) -> None:
    """The rows of one latency run."""
    call, commit = figures["to_provider_call"], figures["to_commit"]
    after, behind = figures["commit_to_provider_call"], figures["created_behind_schedule"]
    table.add_row(
        f"{label}: protocol.opened → provider call p50 / p95 / p99",
        f"{call['p50_ms']:,.0f} / {call['p95_ms']:,.0f} / {call['p99_ms']:,.0f} ms",
        f"{figures['events']:,} events at {figures['achieved_rate'] or 0:,.0f}/s "
        f"(offered {figures['offered_rate']:g}/s), max {call['max_ms']:,.0f} ms; provider "
        f"calls kept pace at {figures['provider_calls_per_s'] or 0:,.0f}/s"
        + (" (OVERLOADED: the latency is mostly queueing)" if figures["overloaded"] else "")
        + (
            ""
            if figures["ok"]
            else f"; WRONG: {figures['lost_proofs']} proofs lost, "
            f"{figures['missing']} missing, {figures['duplicates']} duplicated"
        ),
    )
    if commit["p50_ms"] == commit["p50_ms"]:  # not NaN: the consumer path was in-process
        table.add_row(
            f"{label}: creation → commit p50 / p95 / p99",
            f"{commit['p50_ms']:,.0f} / {commit['p95_ms']:,.0f} / {commit['p99_ms']:,.0f} ms",
            f"then commit → provider call {after['p50_ms']:,.0f} / {after['p95_ms']:,.0f} / "
            f"{after['p99_ms']:,.0f} ms; creation behind schedule p99 "
            f"{behind['p99_ms']:,.0f} ms",
        )


def report(figures: dict[str, Any]) -> None:
    """Print the figures."""
    params, out = figures["parameters"], figures["throughput"]
    where = (
        "worker here; API and emulators in processes of their own"
        if params["layout"] == "processes"
        else "consumer path, dispatcher, API and emulators on one event loop"
    )
    load = ", ".join(f"{x:.1f}" for x in params["load_average_at_start"])
    table = Table(title=f"notification-svc (fsync on; {where}; load average at start {load})")
    table.add_column("measure")
    table.add_column("figure", justify="right")
    table.add_column("note")
    table.add_row(
        f"create {out['messages']:,} receipts (protocol.opened, consumer runner)",
        f"{out['create_events_per_s']:,.0f} events/s",
        f"{out['create_seconds']:,.1f} s, {params['batch']} events per transaction",
    )
    table.add_row(
        "handed to provider (provider calls accepted)",
        f"{out['provider_calls_per_s'] or 0:,.0f}/s",
        f"{out['provider_calls_accepted']:,} calls, the first after "
        f"{out['seconds_to_first_call']:,.2f} s, the last after "
        f"{out['seconds_to_last_call']:,.1f} s; target ≥ 500/s",
    )
    table.add_row(
        "proofs of delivery recorded (message delivered)",
        f"{out['delivered_per_s'] or 0:,.0f}/s",
        f"{out['delivered']:,} delivered, the last after {out['seconds_to_last_proof']:,.1f} s; "
        f"+ {out['emails_sent']:,} e-mails final once SMTP accepted",
    )
    per_receipt = out["cpu_ms_per_receipt"]
    cores = os.cpu_count() or 1
    ceiling = 1000 * cores / max(sum(per_receipt.values()), 1e-9)
    table.add_row(
        "CPU per receipt while dispatching",
        f"{sum(per_receipt.values()):,.2f} ms",
        ", ".join(
            f"{name} {ms:,.2f} ms ({out['cpu_cores'][name]:,.2f} cores)"
            for name, ms in sorted(per_receipt.items(), key=lambda item: -item[1])
        )
        + f"; {cores} cores allow ~{ceiling:,.0f} receipts/s",
    )
    accepted = [m for m in out["mix"] if m["status"] in ("delivered", "read", "sent")]
    table.add_row(
        "mix: deliveries by channel / provider / status",
        f"{sum(m['deliveries'] for m in accepted):,}",
        ", ".join(
            f"{m['channel']}/{m['provider']} {m['status']} {m['deliveries']:,}" for m in out["mix"]
        ),
    )
    table.add_row(
        "check: each receipt reached one provider once; every message final",
        "ok" if out["ok"] else "WRONG",
        f"{out['missing']} missing, {out['duplicates']} duplicated, {out['failed']} failed, "
        f"{out['messages'] - out['final'] - out['failed']} never final "
        f"({out['lost_proofs']} with their proof of delivery received and not applied)",
    )
    latency_rows(table, "consumer runner", figures["latency"])
    if (broker := figures.get("latency_via_broker")) is not None:
        latency_rows(table, "via Tansu", broker)
    table.add_row(
        "dispatcher settings",
        f"batch {params['dispatch_batch_size']}",
        f"concurrency {params['dispatch_concurrency']}, idle poll every "
        f"{params['dispatch_interval_seconds']:g} s; the emulators call back delivered "
        f"{params['emulator_delivered_delay_seconds']:g} s after accepting",
    )
    console.print(table)


def main() -> None:
    """Parse arguments, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=2_000, help="receipts dispatched")
    parser.add_argument("--batch", type=int, default=200, help="events per consumer transaction")
    parser.add_argument(
        "--rate",
        type=float,
        default=30,
        help="offered protocol.opened/s (one the machine sustains)",
    )
    parser.add_argument("--seconds", type=float, default=10, help="duration of the offered load")
    parser.add_argument("--broker", action="store_true", help="also offer the load via Tansu")
    parser.add_argument(
        "--layout",
        choices=("processes", "single"),
        default="processes",
        help="API and emulators in processes of their own, or all on one event loop",
    )
    parser.add_argument("--dispatch-batch", type=int, default=None, help="DISPATCH_BATCH_SIZE")
    parser.add_argument(
        "--dispatch-concurrency", type=int, default=None, help="DISPATCH_CONCURRENCY"
    )
    args = parser.parse_args()
    if not 0 < args.messages <= LATENCY_FIRST or not 0 < args.rate * args.seconds <= 200_000:
        parser.error(f"--messages must be 1..{LATENCY_FIRST:,}; rate * seconds 1..200,000")
    with tempfile.TemporaryDirectory(prefix="rn623-bench-notifications-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - PostgreSQL runs as another user and must traverse it
        figures = asyncio.run(run(args, Path(tmp)))
    report(figures)
    checks = [figures["throughput"]["ok"], figures["latency"]["ok"]]
    if "latency_via_broker" in figures:
        checks.append(figures["latency_via_broker"]["ok"])
    if not all(checks):
        console.print("[red]checks failed: figures not saved[/red]")
        sys.exit(1)
    console.print(f"written to {save_results({'notification_svc': figures})}")


if __name__ == "__main__":
    main()
