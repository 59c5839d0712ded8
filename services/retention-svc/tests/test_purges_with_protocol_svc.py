"""retention-svc and protocol-svc together through the real broker: schedules follow the
protocol's events, purges run when retention ends and no hold covers them, the owner
purges and confirms, and only then is the disposal certified in the operator's chain."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from protocol_svc.app import create_app as create_protocol_app
from protocol_svc.consumers import event_consumer as protocol_consumer
from protocol_svc.numbering import SequenceAllocator
from protocol_svc.operations import Runtime as ProtocolRuntime
from protocol_svc.settings import ProtocolSettings
from protocol_svc_testdata import BENEFICIARY, OPERATOR_BODY
from protocol_svc_testdata import migrate as migrate_protocol_svc
from retention_svc import domain
from retention_svc import repository as repo
from retention_svc.collector import AccessCollector
from retention_svc.consumers import event_consumer
from retention_svc.purger import PurgeRunner
from retention_svc.runtime import Runtime
from retention_svc_testdata import SECRET
from rn623_devinfra.databases import create_database, drop_database, with_database
from rn623_devinfra.waiting import eventually
from rn623_events.auth import bearer_headers
from rn623_events.clock import ManualClock
from rn623_events.consumer import ConsumerConfig, ConsumerRunner
from rn623_events.contracts import inbound, protocols, retention
from rn623_events.contracts.protocols import RecordsPurged
from rn623_events.db import create_engine, session_factory
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import make_envelope
from rn623_events.outbox import OutboxRelay
from rn623_events.settings import AuthSettings, KafkaSettings
from rn623_events.topics import dlq_topic, ensure_topics, topic

pytestmark = pytest.mark.integration

FAST = ConsumerConfig(session_timeout_ms=2000, heartbeat_interval_ms=500)


@dataclass
class Platform:
    """protocol-svc (API, relay, consumer) and retention-svc (consumer, relay, purge runner)
    on their own databases, sharing the test broker and one clock."""

    clock: ManualClock
    kafka: KafkaSettings
    operator: str
    suffix: str
    api: httpx.AsyncClient
    protocol_rt: ProtocolRuntime
    rt: Runtime
    purger: PurgeRunner
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    owner: tuple[asyncio.Event, asyncio.Task[None]] | None = None
    publishers: list[DeadLetterPublisher] = field(default_factory=list)

    def dead_letters(self, service: str) -> DeadLetterPublisher:
        """A dead-letter publisher closed with the platform."""
        publisher = DeadLetterPublisher(self.kafka, dlq_topic(service))
        self.publishers.append(publisher)
        return publisher

    def start(self, run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Run a component until the platform stops."""
        self.tasks.append(asyncio.create_task(run(self.stop)))

    def start_owner(self) -> None:
        """Start protocol-svc's consumer of purge requests (it can be stopped alone)."""
        stop = asyncio.Event()
        consumer = protocol_consumer(
            self.protocol_rt,
            self.kafka,
            self.dead_letters("protocol-svc"),
            name=f"protocol-svc.{self.suffix}",
            config=FAST,
        )
        self.owner = (stop, asyncio.create_task(consumer.run(stop)))

    async def stop_owner(self) -> None:
        """Stop protocol-svc's consumer: the owner is down."""
        assert self.owner is not None
        stop, task = self.owner
        stop.set()
        await task
        self.owner = None

    async def open_protocol(self, *, cpf: str = BENEFICIARY["cpf"]) -> dict[str, Any]:
        """A protocol with one assistance demand, through protocol-svc's API."""
        response = await self.api.post(
            "/v1/protocols",
            json={
                "operator": self.operator,
                "channel": "phone",
                "beneficiary": {**BENEFICIARY, "cpf": cpf},
                "demand": {"demand_type": "assistance", "description": "Autorização de exame"},
            },
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A POST to protocol-svc that must succeed."""
        response = await self.api.post(path, json=body)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    async def schedule(self, number: str) -> dict[str, dict[str, Any]]:
        """retention-svc's schedule of a protocol, by record class."""
        async with self.rt.sessions() as session:
            return await repo.schedule_of(session, number)

    async def requests(self, number: str) -> int:
        """How many purge requests retention-svc made for a protocol."""
        count = await self.scalar(
            "SELECT count(*) FROM purge_requests WHERE protocol_number = :n", n=number
        )
        return int(count)

    async def scalar(self, sql: str, **params: Any) -> Any:
        """A scalar from retention-svc's database."""
        async with self.rt.sessions() as session:
            return await session.scalar(sa.text(sql), params)

    async def owner_scalar(self, sql: str, **params: Any) -> Any:
        """A scalar from protocol-svc's database."""
        async with self.protocol_rt.sessions() as session:
            return await session.scalar(sa.text(sql), params)


@pytest_asyncio.fixture(loop_scope="session")
async def platform(
    runtime: Runtime,
    engine: AsyncEngine,
    postgres_admin_url: str,
    kafka_bootstrap_servers: str,
    clock: ManualClock,
    unique_suffix: str,
) -> AsyncIterator[Platform]:
    """Both services running in-process on the test broker."""
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap_servers)
    await ensure_topics(
        kafka,
        [
            topic(protocols.TOPIC),
            topic(retention.TOPIC),
            topic(inbound.TOPIC),
            topic(dlq_topic("retention-svc")),
            topic(dlq_topic("protocol-svc")),
        ],
    )
    name = f"test_protocol_{secrets.token_hex(6)}"
    await create_database(postgres_admin_url, name)
    protocol_url = with_database(postgres_admin_url, name, "postgresql+asyncpg")
    await asyncio.to_thread(migrate_protocol_svc, protocol_url)
    protocol_engine = create_engine(protocol_url, pool_size=4)
    protocol_rt = ProtocolRuntime(
        engine=protocol_engine,
        sessions=session_factory(protocol_engine),
        allocator=SequenceAllocator(create_engine(protocol_url, pool_size=2), 5),
        clock=clock,
        source="protocol-svc",
    )
    app = create_protocol_app(
        ProtocolSettings(
            database_url=protocol_url,
            kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
            auth=AuthSettings(secret=SECRET),
        ),
        clock=clock,
    )
    operator = f"{secrets.randbelow(900_000) + 100_000}"  # an operator of this test only
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://protocol-svc",
            headers=bearer_headers(SECRET),
        ) as api,
    ):
        response = await api.put(f"/v1/operators/{operator}", json=OPERATOR_BODY)
        assert response.status_code in (200, 201), response.text
        platform = Platform(
            clock=clock,
            kafka=kafka,
            operator=operator,
            suffix=unique_suffix,
            api=api,
            protocol_rt=protocol_rt,
            rt=runtime,
            purger=PurgeRunner(runtime, batch_size=100),
        )
        platform.start(OutboxRelay(protocol_engine, kafka, service="protocol-svc").run)
        platform.start(OutboxRelay(engine, kafka, service="retention-svc").run)
        retention_consumer: ConsumerRunner = event_consumer(
            runtime,
            kafka,
            DeadLetterPublisher(kafka, dlq_topic("retention-svc")),
            name=f"retention-svc.{unique_suffix}",
            config=FAST,
        )
        platform.start(retention_consumer.run)
        platform.start_owner()
        try:
            yield platform
        finally:
            if platform.owner is not None:
                await platform.stop_owner()
            platform.stop.set()
            await asyncio.gather(*platform.tasks)
            await protocol_engine.dispose()
            await drop_database(postgres_admin_url, name)


async def test_recordings_are_purged_after_90_days_and_certified_once_the_owner_confirms(
    platform: Platform,
) -> None:
    created = await platform.open_protocol()
    number, demand_id = created["protocol_number"], created["demand"]["id"]
    base = f"/v1/protocols/{number}"
    await platform.post(
        f"{base}/interactions",
        {"kind": "recording", "recording_uri": "s3://gravacoes/1.ogg", "duration_seconds": 300},
    )
    await platform.post(f"{base}/interactions", {"kind": "note", "content": "Retornar amanhã"})
    platform.clock.advance(timedelta(hours=2))
    await platform.post(
        f"{base}/demands/{demand_id}/answer",
        {"outcome": "authorized", "text": "Exame autorizado, guia enviada por e-mail."},
    )
    answered_at = platform.clock.now()

    async def resolved() -> bool:
        entries = await platform.schedule(number)
        return entries.get("protocol_record", {}).get("retain_until") is not None

    await eventually(resolved, max_seconds=30)
    entries = await platform.schedule(number)
    opened_at = answered_at - timedelta(hours=2)
    assert entries["recording"]["retain_until"] == opened_at + timedelta(days=90)
    for record_class in ("interaction_record", "protocol_record", "notification"):
        assert entries[record_class]["retain_until"] == answered_at.replace(
            year=answered_at.year + 2
        )

    # the owner is down when the recordings' retention ends
    await platform.stop_owner()
    platform.clock.advance(timedelta(days=91))
    # (counted by protocol: the shared topic also brings other tests' protocols here)
    await platform.purger.tick()
    assert await platform.requests(number) == 1
    entries = await platform.schedule(number)
    assert entries["recording"]["status"] == domain.PURGE_REQUESTED
    assert {entries[c]["status"] for c in entries if c != "recording"} == {domain.RETAINED}
    await platform.purger.tick()
    assert await platform.requests(number) == 1  # asked once
    await asyncio.sleep(1.0)  # the request is on the topic; nobody confirms it
    certified = "SELECT count(*) FROM certificates WHERE protocol_number = :n"
    assert await platform.scalar(certified, n=number) == 0
    assert (
        await platform.owner_scalar(
            "SELECT count(*) FROM interactions WHERE protocol_number = :n AND kind = 'recording'",
            n=number,
        )
        == 1
    )

    # the owner comes back, reads the request, purges and confirms: only now the certificate
    platform.start_owner()

    async def certificate() -> bool:
        return bool(await platform.scalar(certified, n=number))

    await eventually(certificate, max_seconds=60)
    kinds = await platform.owner_scalar(
        "SELECT string_agg(kind, ',') FROM interactions WHERE protocol_number = :n", n=number
    )
    assert kinds == "note"  # the recording is gone, the other records stay
    entries = await platform.schedule(number)
    assert entries["recording"]["status"] == domain.DISPOSED
    async with platform.rt.sessions() as session:
        chain = await repo.chain_of(session, platform.operator, 0, 100)
    assert [c["record_classes"] for c in chain] == [["recording"]]
    assert chain[0]["confirmations"][0]["owner"] == "protocol-svc"
    assert domain.verify_chain(chain).valid


async def test_a_complaint_keeps_everything_5_years_and_a_hold_blocks_the_purge(
    platform: Platform,
) -> None:
    created = await platform.open_protocol()
    number, demand_id = created["protocol_number"], created["demand"]["id"]
    await platform.post(
        f"/v1/protocols/{number}/demands/{demand_id}/answer",
        {"outcome": "informed", "text": "O reajuste segue a cláusula 12 do contrato."},
    )
    platform.clock.advance(timedelta(days=30))
    await platform.post(
        "/v1/complaints",
        {"operator": platform.operator, "source": "nip", "protocol_number": number},
    )
    complained_at = platform.clock.now()
    five_years = complained_at.replace(year=complained_at.year + 5)

    async def extended() -> bool:
        entries = await platform.schedule(number)
        return entries.get("complaint_linked", {}).get("retain_until") == five_years

    await eventually(extended, max_seconds=30)
    entries = await platform.schedule(number)
    assert {e["retain_until"] for e in entries.values()} == {five_years}

    hold_id = uuid.uuid4()
    async with platform.rt.sessions() as session:
        await session.execute(
            sa.text(
                "INSERT INTO legal_holds (id, ans_registry, scope, protocol_number, reason,"
                " placed_by, placed_at) VALUES (:id, :a, 'protocol', :n, 'Ação judicial',"
                " 'juridico', :at)"
            ),
            {"id": hold_id, "a": platform.operator, "n": number, "at": platform.clock.now()},
        )
        await session.commit()
    platform.clock.advance(timedelta(days=2 * 365 + 1))
    await platform.purger.tick()
    assert await platform.requests(number) == 0  # the complaint keeps them
    platform.clock.set(five_years + timedelta(days=1))
    await platform.purger.tick()
    assert await platform.requests(number) == 0  # the hold keeps them
    async with platform.rt.sessions() as session:
        await session.execute(
            sa.text(
                "UPDATE legal_holds SET released_at = :at, released_by = 'juridico' WHERE id = :id"
            ),
            {"at": platform.clock.now(), "id": hold_id},
        )
        await session.commit()
    await platform.purger.tick()
    assert await platform.requests(number) == 3
    async with platform.rt.sessions() as session:
        rows = await session.execute(
            sa.text(
                "SELECT id, record_classes, owners FROM purge_requests WHERE protocol_number = :n"
            ),
            {"n": number},
        )
        requests = {tuple(r.owners): r for r in rows}
    assert {owners: list(r.record_classes) for owners, r in requests.items()} == {
        ("notification-svc",): ["notification"],
        ("notification-svc", "protocol-svc"): ["complaint_linked"],
        ("protocol-svc",): ["interaction_record", "protocol_record", "recording"],
    }
    certified = "SELECT count(*) FROM certificates WHERE protocol_number = :n"

    async def certificates(expected: int) -> bool:
        return await platform.scalar(certified, n=number) == expected

    # protocol-svc confirms its own request; the shared one waits for notification-svc
    await eventually(lambda: certificates(1), max_seconds=60)
    assert await platform.owner_scalar(
        "SELECT anonymized_at IS NOT NULL FROM protocols WHERE number = :n", n=number
    )
    for owners in (("notification-svc",), ("notification-svc", "protocol-svc")):
        request = requests[owners]
        confirmation = RecordsPurged(
            protocol_number=number,
            ans_registry=platform.operator,
            purge_request_id=request.id,
            record_classes=tuple(request.record_classes),
            purged_at=platform.clock.now(),
            owner="notification-svc",
            anonymized=False,
        )
        envelope = make_envelope(confirmation, source="notification-svc", time=platform.clock.now())
        await publish(platform.kafka, envelope)
    await eventually(lambda: certificates(3), max_seconds=60)
    entries = await platform.schedule(number)
    assert {e["status"] for e in entries.values()} == {domain.DISPOSED}
    async with platform.rt.sessions() as session:
        chain = await repo.chain_of(session, platform.operator, 0, 100)
    assert [c["sequence"] for c in chain] == [1, 2, 3]
    assert domain.verify_chain(chain).valid


async def publish(kafka: KafkaSettings, envelope: Any) -> None:
    """Publish one envelope as another service would."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            envelope.topic, key=envelope.key, value=envelope.value(), headers=envelope.headers()
        )
    finally:
        await producer.stop()


async def test_an_access_request_bundles_every_protocol_of_the_beneficiary(
    platform: Platform,
) -> None:
    first = await platform.open_protocol()
    second = await platform.open_protocol()
    stranger = await platform.open_protocol(cpf="111.444.777-35")
    await platform.post(
        f"/v1/protocols/{second['protocol_number']}/interactions",
        {"kind": "recording", "recording_uri": "s3://gravacoes/2.ogg", "duration_seconds": 60},
    )

    async def known() -> bool:
        return bool(
            await platform.scalar(
                "SELECT count(*) = 3 FROM protocols WHERE protocol_number = ANY(:n)",
                n=[p["protocol_number"] for p in (first, second, stranger)],
            )
        )

    await eventually(known, max_seconds=30)
    request_id = uuid.uuid4()
    now = platform.clock.now()
    async with platform.rt.sessions() as session:
        await session.execute(
            sa.text(
                "INSERT INTO access_requests (id, ans_registry, protocol_number, scope,"
                " requested_by, requested_at, due_at, rule_id, legal_basis, ruleset_id, status,"
                " next_attempt_at) VALUES (:id, :a, :n, 'beneficiary', 'ouvidoria', :at, :due,"
                " 'rn623.deadline.records_access', 'RN 623/2024', 'rn623-2025', 'open', :at)"
            ),
            {
                "id": request_id,
                "a": platform.operator,
                "n": second["protocol_number"],
                "at": now,
                "due": now + timedelta(hours=72),
            },
        )
        await session.commit()

    def token_for(operator: str) -> str:
        header = bearer_headers(SECRET, operators=[operator], scopes=["protocols:read"])
        return header["Authorization"].removeprefix("Bearer ")

    # protocol-svc unreachable: the attempt is recorded and retried later
    async with httpx.AsyncClient() as unreachable:
        down = AccessCollector(
            platform.rt,
            protocol_svc_url="http://127.0.0.1:1",
            token_for=token_for,
            http=unreachable,
        )
        assert await down.collect_next() is False
    state = (
        "SELECT status || ':' || attempts || ':' || last_error FROM access_requests WHERE id = :i"
    )
    assert await platform.scalar(state, i=request_id) == "open:1:ConnectError"
    collector = AccessCollector(
        platform.rt, protocol_svc_url="http://protocol-svc", token_for=token_for, http=platform.api
    )
    assert await collector.tick() == 0  # backing off
    platform.clock.advance(timedelta(minutes=10))
    assert await collector.tick() == 1
    assert await platform.scalar(state.replace("|| ':' || last_error", ""), i=request_id) == (
        "fulfilled:2"
    )
    async with platform.rt.sessions() as session:
        bundle = await session.scalar(
            sa.text("SELECT bundle FROM access_requests WHERE id = :i"), {"i": request_id}
        )
        fulfilled = await session.scalar(
            sa.text(
                "SELECT count(*) FROM outbox WHERE event_type = 'access_request.fulfilled'"
                " AND payload->>'request_id' = :i"
            ),
            {"i": str(request_id)},
        )
    assert fulfilled == 1
    assert sorted(p["protocol_number"] for p in bundle["protocols"]) == sorted(
        [first["protocol_number"], second["protocol_number"]]
    )
    assert all(p["available"] and p["record"]["demands"] for p in bundle["protocols"])
    assert {e["record_class"] for e in bundle["protocols"][0]["retention"]} >= {"recording"}
    assert [r["recording_uri"] for r in bundle["recordings"]] == ["s3://gravacoes/2.ogg"]
    assert await collector.tick() == 0  # fulfilled once


async def test_a_confirmation_for_an_unknown_purge_is_dead_lettered_with_its_reason(
    platform: Platform, kafka_bootstrap_servers: str
) -> None:
    number = f"{platform.operator}20251121999999"
    stray = RecordsPurged(
        protocol_number=number,
        ans_registry=platform.operator,
        purge_request_id=uuid.uuid4(),
        record_classes=("recording",),
        purged_at=platform.clock.now(),
        owner="protocol-svc",
        anonymized=False,
    )
    await publish(
        platform.kafka, make_envelope(stray, source="protocol-svc", time=platform.clock.now())
    )
    reader = AIOKafkaConsumer(
        dlq_topic("retention-svc"),
        bootstrap_servers=kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await reader.start()
    found: list[dict[str, str]] = []
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not found and asyncio.get_running_loop().time() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                found += [
                    {k: v.decode() for k, v in r.headers}
                    for r in records
                    if r.key == number.encode()
                ]
    finally:
        await reader.stop()
    assert [h["dlq_error"] for h in found] == ["purge_request_id: no such purge request"]
