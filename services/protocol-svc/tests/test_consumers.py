"""protocol-svc's consumer of contact-center.inbound and retention.events (real broker, DB)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from protocol_svc import repository as repo
from protocol_svc.consumers import event_consumer
from protocol_svc.domain import PURGED_TEXT
from protocol_svc.numbering import SequenceAllocator
from protocol_svc.operations import Runtime
from protocol_svc.schemas import OperatorIn
from protocol_svc_testdata import OPERATOR_BODY
from rn623_devinfra.waiting import eventually
from rn623_events.clock import ManualClock
from rn623_events.consumer import ConsumerConfig
from rn623_events.contracts import inbound, retention
from rn623_events.db import create_engine, session_factory
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope, make_envelope
from rn623_events.registry import Event
from rn623_events.settings import KafkaSettings
from rn623_events.topics import dlq_topic, ensure_topics, topic

pytestmark = pytest.mark.integration

DLQ = dlq_topic("protocol-svc")
CPF = "529.982.247-25"
BAD_CPF = "529.982.247-26"
PHONE = "(11) 91234-5678"
NAME = "Joana Pereira"
EMAIL = "joana.pereira@example.com"


@dataclass
class Ingestion:
    """A running inbound consumer over a fresh database, with one registered operator."""

    rt: Runtime
    kafka: KafkaSettings
    operator: str
    suffix: str
    producer: AIOKafkaProducer

    def contact(self, n: int) -> str:
        """A contact id unique to this test."""
        return f"cc-{self.suffix}-{n}"

    async def send(self, event: Event, *, event_id: uuid.UUID | None = None) -> Envelope:
        """Publish ``event`` on its topic, as a contact-center platform (or retention-svc) would."""
        envelope = make_envelope(
            event, source="cc-platform", time=datetime.now(UTC), event_id=event_id
        )
        await self.send_envelope(envelope)
        return envelope

    async def send_envelope(self, envelope: Envelope, value: bytes | None = None) -> None:
        """Publish an envelope, optionally with a tampered body."""
        await self.producer.send_and_wait(
            envelope.topic,
            key=envelope.key,
            value=envelope.value() if value is None else value,
            headers=envelope.headers(),
        )

    async def protocols(self, contact_id: str) -> list[Any]:
        """Protocols issued for a contact."""
        async with self.rt.sessions() as session:
            rows = await session.execute(
                sa.text("SELECT * FROM protocols WHERE contact_id = :c"), {"c": contact_id}
            )
            return list(rows.mappings())

    async def count(self, sql: str, **params: Any) -> int:
        """A scalar count from the service's database."""
        async with self.rt.sessions() as session:
            return int(await session.scalar(sa.text(sql), params) or 0)


@pytest_asyncio.fixture(loop_scope="session")
async def ingestion(
    migrated_database: str, kafka_bootstrap_servers: str, clock: ManualClock, unique_suffix: str
) -> AsyncIterator[Ingestion]:
    """protocol-svc's inbound consumer and outbox over a fresh database and the test broker."""
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap_servers)
    await ensure_topics(kafka, [topic(inbound.TOPIC), topic(retention.TOPIC), topic(DLQ)])
    engine = create_engine(migrated_database, pool_size=4)
    sequences = create_engine(migrated_database, pool_size=2)
    rt = Runtime(
        engine=engine,
        sessions=session_factory(engine),
        allocator=SequenceAllocator(sequences, 5),
        clock=clock,
        source="protocol-svc",
    )
    # A fresh operator per test: records other tests left on the shared topic name an
    # operator this database does not know and are dead-lettered, not applied.
    operator = f"{secrets.randbelow(900_000) + 100_000}"
    async with rt.uow() as uow:
        await repo.save_operator(
            uow.session,
            {
                **OperatorIn.model_validate(OPERATOR_BODY).model_dump(mode="json"),
                "ans_registry": operator,
                "revision": 1,
                "updated_at": clock.now(),
            },
            exists=False,
        )
        await uow.commit()
    dead_letters = DeadLetterPublisher(kafka, DLQ)
    consumer = event_consumer(
        rt,
        kafka,
        dead_letters,
        name=f"protocol-svc.inbound.{unique_suffix}",
        config=ConsumerConfig(session_timeout_ms=2000, heartbeat_interval_ms=500),
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
    await producer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield Ingestion(rt, kafka, operator, unique_suffix, producer)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await producer.stop()
        await dead_letters.close()
        await engine.dispose()
        await sequences.dispose()


async def dead_letters_for(
    bootstrap: str, keys: set[str], expected: int, max_seconds: float = 60
) -> dict[str, dict[str, str]]:
    """The dead letters whose key is one of ``keys``: key → dlq headers."""
    reader = AIOKafkaConsumer(
        DLQ, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await reader.start()
    found: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + max_seconds
    try:
        while len(found) < expected and time.monotonic() < deadline:
            batches = await reader.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    key = (record.key or b"").decode()
                    if key in keys:
                        found[key] = {k: v.decode() for k, v in record.headers}
    finally:
        await reader.stop()
    return found


def contact_opened(ing: Ingestion, n: int, **changes: Any) -> inbound.ContactOpened:
    """A valid ``contact.opened`` with masked contact data and a first demand."""
    data: dict[str, Any] = {
        "ans_registry": ing.operator,
        "contact_id": ing.contact(n),
        "channel": "whatsapp",
        "direction": "inbound",
        "occurred_at": ing.rt.clock.now() - timedelta(seconds=30),
        "beneficiary": {"cpf": CPF, "name": NAME, "phone": PHONE, "email": EMAIL},
        "demand": {"demand_type": "assistance", "description": "Consulta com cardiologista"},
    }
    data.update(changes)
    return inbound.ContactOpened.model_validate(data)


async def test_a_contact_opened_on_kafka_gets_its_protocol_once(ingestion: Ingestion) -> None:
    opened = contact_opened(ingestion, 1)
    envelope = await ingestion.send(opened)
    await ingestion.send(opened, event_id=envelope.id)  # the same event redelivered
    await ingestion.send(opened)  # the same contact published again under a new id

    await eventually(lambda: has_protocol(ingestion, 1))
    # a later contact on the same partition proves the three copies were all handled
    await ingestion.send(contact_opened(ingestion, 2))

    await eventually(lambda: has_protocol(ingestion, 2))
    [protocol] = await ingestion.protocols(ingestion.contact(1))
    assert protocol["ans_registry"] == ingestion.operator
    assert protocol["channel"] == "whatsapp"
    assert protocol["beneficiary_cpf"] == "52998224725"
    assert protocol["beneficiary"]["phone"] == "+5511912345678"
    number = protocol["number"]
    demands = await ingestion.count(
        "SELECT count(*) FROM demands WHERE protocol_number = :n", n=number
    )
    assert demands == 1
    async with ingestion.rt.sessions() as session:
        requested_at = await session.scalar(
            sa.text("SELECT requested_at FROM demands WHERE protocol_number = :n"), {"n": number}
        )
        events = Counter(
            (
                await session.execute(
                    sa.text("SELECT event_type FROM outbox WHERE key = :n"), {"n": number}
                )
            ).scalars()
        )
    assert requested_at == opened.occurred_at  # the demand dates from the contact
    assert events == Counter({"protocol.opened": 1, "demand.registered": 1})


async def test_interactions_answers_and_complaints_arrive_on_kafka(
    ingestion: Ingestion,
) -> None:
    await ingestion.send(contact_opened(ingestion, 1))

    await eventually(lambda: has_protocol(ingestion, 1))
    [protocol] = await ingestion.protocols(ingestion.contact(1))
    number = protocol["number"]
    async with ingestion.rt.sessions() as session:
        demand_id = await session.scalar(
            sa.text("SELECT id FROM demands WHERE protocol_number = :n"), {"n": number}
        )
    now = ingestion.rt.clock.now()
    common = {"ans_registry": ingestion.operator, "contact_id": ingestion.contact(1)}
    await ingestion.send(
        inbound.InboundInteractionRecorded(
            **common,
            kind="recording",
            occurred_at=now - timedelta(seconds=20),
            recording_uri="s3://recordings/call-1.ogg",
            duration_seconds=312,
        )
    )
    await ingestion.send(
        inbound.InboundDemandAnswered(
            **common,
            demand_ref={"protocol_number": number, "demand_id": demand_id},
            outcome="authorized",
            text="Consulta autorizada; a guia foi enviada ao seu e-mail.",
            answered_at=now - timedelta(seconds=10),
            answered_by="agent-7",
        )
    )
    await ingestion.send(
        inbound.ComplaintReceived(
            **common, source="nip", external_reference="NIP-2025-1", received_at=now
        )
    )

    async def all_recorded() -> bool:
        complaints = await ingestion.count(
            "SELECT count(*) FROM complaints WHERE protocol_number = :n", n=number
        )
        return complaints == 1

    await eventually(all_recorded)
    assert (
        await ingestion.count(
            "SELECT count(*) FROM interactions WHERE protocol_number = :n AND kind = 'recording'",
            n=number,
        )
        == 1
    )
    async with ingestion.rt.sessions() as session:
        answer = (
            (
                await session.execute(
                    sa.text("SELECT * FROM answers WHERE protocol_number = :n"), {"n": number}
                )
            )
            .mappings()
            .one()
        )
        status = await session.scalar(
            sa.text("SELECT status FROM protocols WHERE number = :n"), {"n": number}
        )
        events = Counter(
            (
                await session.execute(
                    sa.text("SELECT event_type FROM outbox WHERE key = :n"), {"n": number}
                )
            ).scalars()
        )
    assert answer["outcome"] == "authorized"
    assert answer["answered_at"] == now - timedelta(seconds=10)  # when the agent answered
    assert status == "answered"
    assert events == Counter(
        {
            "protocol.opened": 1,
            "demand.registered": 1,
            "interaction.recorded": 1,
            "demand.answered": 1,
            "complaint.registered": 1,
        }
    )


async def test_a_complaint_from_an_unknown_contact_opens_a_protocol(
    ingestion: Ingestion,
) -> None:
    await ingestion.send(
        inbound.ComplaintReceived(
            ans_registry=ingestion.operator,
            contact_id=ingestion.contact(9),
            source="procon",
            received_at=ingestion.rt.clock.now(),
        )
    )

    await eventually(lambda: has_protocol(ingestion, 9))
    [protocol] = await ingestion.protocols(ingestion.contact(9))
    assert protocol["channel"] == "web"
    assert (
        await ingestion.count(
            "SELECT count(*) FROM complaints WHERE protocol_number = :n AND source = 'procon'",
            n=protocol["number"],
        )
        == 1
    )


async def test_invalid_records_are_dead_lettered_naming_the_field(
    ingestion: Ingestion, kafka_bootstrap_servers: str
) -> None:
    now = ingestion.rt.clock.now()
    bad_cpf = contact_opened(ingestion, 1, beneficiary={"cpf": BAD_CPF, "name": NAME})
    await ingestion.send(bad_cpf)
    await ingestion.send(contact_opened(ingestion, 2, ans_registry="999999"))
    await ingestion.send(
        contact_opened(
            ingestion, 3, demand={"demand_type": "assistance", "requested_at": now + timedelta(1)}
        )
    )
    await ingestion.send(
        inbound.InboundInteractionRecorded(
            ans_registry=ingestion.operator,
            contact_id=ingestion.contact(4),
            kind="note",
            content="Beneficiária pediu retorno",
            occurred_at=now,
        )
    )
    missing_channel = envelope_of(contact_opened(ingestion, 5))
    body = dict(missing_channel.data)
    del body["channel"]
    await ingestion.send_envelope(missing_channel, json.dumps(body).encode())
    unparseable = envelope_of(contact_opened(ingestion, 6))
    await ingestion.send_envelope(unparseable, b"{not json")
    # a valid record after the bad ones is still processed: the consumer moved on
    await ingestion.send(contact_opened(ingestion, 7))

    await eventually(lambda: has_protocol(ingestion, 7))
    stalling = contact_opened(ingestion, 8)
    await ingestion.send(stalling)
    await eventually(lambda: has_protocol(ingestion, 8))
    [protocol] = await ingestion.protocols(ingestion.contact(8))
    async with ingestion.rt.sessions() as session:
        demand_id = await session.scalar(
            sa.text("SELECT id FROM demands WHERE protocol_number = :n"),
            {"n": protocol["number"]},
        )
    await ingestion.send(
        inbound.InboundDemandAnswered(
            ans_registry=ingestion.operator,
            contact_id=ingestion.contact(8),
            demand_ref={"protocol_number": protocol["number"], "demand_id": demand_id},
            outcome="informed",
            text="Sua solicitação está EM ANÁLISE, aguarde.",
            answered_at=now,
        )
    )

    await ingestion.send(contact_opened(ingestion, 10))
    await eventually(lambda: has_protocol(ingestion, 10))
    [early] = await ingestion.protocols(ingestion.contact(10))
    async with ingestion.rt.sessions() as session:
        early_demand = await session.scalar(
            sa.text("SELECT id FROM demands WHERE protocol_number = :n"), {"n": early["number"]}
        )
    await ingestion.send(
        inbound.InboundDemandAnswered(
            ans_registry=ingestion.operator,
            contact_id=ingestion.contact(10),
            demand_ref={"protocol_number": early["number"], "demand_id": early_demand},
            outcome="authorized",
            text="Exame autorizado; a guia foi enviada ao seu e-mail.",
            answered_at=now - timedelta(hours=1),  # before the beneficiary asked
        )
    )

    keys = {ingestion.contact(n) for n in (1, 2, 3, 4, 5, 6, 8, 10)}
    letters = await dead_letters_for(kafka_bootstrap_servers, keys, expected=len(keys))
    assert set(letters) == keys
    reasons = {key: letters[key]["dlq_error"] for key in letters}
    assert reasons[ingestion.contact(1)].startswith("beneficiary.cpf:")
    assert reasons[ingestion.contact(2)].startswith("ans_registry:")
    assert reasons[ingestion.contact(3)].startswith("demand.requested_at:")
    assert reasons[ingestion.contact(4)].startswith("contact_id:")
    assert reasons[ingestion.contact(5)].startswith("channel:")
    assert letters[ingestion.contact(6)]["dlq_reason"] == "unparseable"
    assert reasons[ingestion.contact(8)].startswith("text:")
    assert "generic_answer" in reasons[ingestion.contact(8)]
    assert reasons[ingestion.contact(10)].startswith("answered_at:")
    assert letters[ingestion.contact(1)]["dlq_reason"] == "permanent_error"
    assert letters[ingestion.contact(5)]["dlq_reason"] == "invalid_payload"
    for headers in letters.values():
        text = json.dumps(headers)
        for secret in (BAD_CPF, "52998224726", NAME, "Beneficiária pediu retorno"):
            assert secret not in text
    for n in (1, 2, 3, 5, 6):
        assert not await ingestion.protocols(ingestion.contact(n))
    assert (
        await ingestion.count(
            "SELECT count(*) FROM answers WHERE protocol_number = :n", n=protocol["number"]
        )
        == 0
    )


def envelope_of(event: Event) -> Envelope:
    """An envelope for ``event`` (to tamper with before sending)."""
    return make_envelope(event, source="cc-platform", time=datetime.now(UTC))


async def has_protocol(ing: Ingestion, n: int) -> bool:
    """Whether the n-th contact of the test has its protocol."""
    return bool(await ing.protocols(ing.contact(n)))


def purge_request(
    ing: Ingestion, number: str, classes: tuple[str, ...], **changes: Any
) -> retention.PurgeRequested:
    """A purge request from retention-svc naming protocol-svc among the owners."""
    data: dict[str, Any] = {
        "purge_request_id": uuid.uuid4(),
        "protocol_number": number,
        "ans_registry": ing.operator,
        "record_classes": classes,
        "owners": ("protocol-svc", "notification-svc"),
        "requested_at": ing.rt.clock.now(),
    }
    data.update(changes)
    return retention.PurgeRequested.model_validate(data)


async def test_purge_requests_delete_or_anonymize_and_are_confirmed_once(
    ingestion: Ingestion, clock: ManualClock, kafka_bootstrap_servers: str
) -> None:
    await ingestion.send(contact_opened(ingestion, 1))
    await eventually(lambda: has_protocol(ingestion, 1))
    [protocol] = await ingestion.protocols(ingestion.contact(1))
    number = protocol["number"]
    now = ingestion.rt.clock.now()
    common = {"ans_registry": ingestion.operator, "contact_id": ingestion.contact(1)}
    await ingestion.send(
        inbound.InboundInteractionRecorded(
            **common, kind="recording", occurred_at=now, recording_uri="s3://r/1.ogg"
        )
    )
    await ingestion.send(
        inbound.InboundInteractionRecorded(
            **common, kind="note", occurred_at=now, content="Beneficiária pediu retorno"
        )
    )

    async def interactions(kind: str) -> int:
        return await ingestion.count(
            "SELECT count(*) FROM interactions WHERE protocol_number = :n AND kind = :k",
            n=number,
            k=kind,
        )

    async with ingestion.rt.sessions() as session:
        demand_id = await session.scalar(
            sa.text("SELECT id FROM demands WHERE protocol_number = :n"), {"n": number}
        )
    await ingestion.send(
        inbound.InboundDemandAnswered(
            **common,
            demand_ref={"protocol_number": number, "demand_id": demand_id},
            outcome="denied",
            text="A consulta não tem cobertura no seu plano.",
            legal_basis="Contrato, cláusula 7.2 (exclusões de cobertura)",
            answered_at=now,
            answered_by="agent-3",
        )
    )

    async def recorded() -> bool:
        answers = await ingestion.count(
            "SELECT count(*) FROM answers WHERE protocol_number = :n", n=number
        )
        return answers == 1 and await interactions("note") == 1

    await eventually(recorded)
    assert await interactions("recording") == 1

    def purges_done(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            done = await ingestion.count(
                "SELECT count(*) FROM record_purges WHERE protocol_number = :n", n=number
            )
            return done >= count

        return check

    # too early by protocol-svc's own records: refused, nothing deleted
    await ingestion.send(purge_request(ingestion, number, ("recording",)))
    [early] = (await dead_letters_for(kafka_bootstrap_servers, {number}, 1)).values()
    assert early["dlq_error"].startswith("record_classes: recording not at the end")
    assert await interactions("recording") == 1

    # 90 days on: the recording goes, everything else stays
    clock.advance(timedelta(days=91))
    await ingestion.send(purge_request(ingestion, number, ("recording",)))
    await eventually(purges_done(1))
    assert await interactions("recording") == 0
    assert await interactions("note") == 1
    [kept] = await ingestion.protocols(ingestion.contact(1))
    assert kept["beneficiary_cpf"] == "52998224725"

    # a request that does not name protocol-svc is not ours; then the 2-year purge,
    # delivered twice under the same request id
    await ingestion.send(
        purge_request(ingestion, number, ("protocol_record",), owners=("notification-svc",))
    )
    clock.advance(timedelta(days=2 * 366))  # two years after the answer
    later = purge_request(
        ingestion, number, ("interaction_record", "protocol_record", "notification")
    )
    await ingestion.send(later)
    await ingestion.send(later)
    await ingestion.send(purge_request(ingestion, number, ("recording",)))  # a sync point
    await eventually(purges_done(3))
    assert await interactions("note") == 0
    [purged] = await ingestion.protocols(ingestion.contact(1))
    assert purged["beneficiary"] == {}
    assert purged["beneficiary_cpf"] is None
    assert purged["anonymized_at"] is not None
    async with ingestion.rt.sessions() as session:
        description = await session.scalar(
            sa.text("SELECT description FROM demands WHERE protocol_number = :n"), {"n": number}
        )
        answer = (
            (
                await session.execute(
                    sa.text("SELECT * FROM answers WHERE protocol_number = :n"), {"n": number}
                )
            )
            .mappings()
            .one()
        )
        confirmations = [
            row
            for row in (
                await session.execute(
                    sa.text(
                        "SELECT payload FROM outbox WHERE key = :n "
                        "AND event_type = 'records.purged' ORDER BY id"
                    ),
                    {"n": number},
                )
            ).scalars()
        ]
    assert description is None
    assert [c["record_classes"] for c in confirmations] == [
        ["recording"],
        ["interaction_record", "protocol_record"],
        ["recording"],
    ]
    assert [c["anonymized"] for c in confirmations] == [False, True, False]
    assert confirmations[1]["purge_request_id"] == str(later.purge_request_id)
    assert {c["owner"] for c in confirmations} == {"protocol-svc"}
    assert (answer["text"], answer["answered_by"]) == (PURGED_TEXT, None)
    assert answer["outcome"] == "denied"  # kept for the statistics


async def test_a_contact_reported_after_midnight_keeps_its_day(ingestion: Ingestion) -> None:
    occurred = datetime(2025, 11, 20, 23, 58, tzinfo=ZoneInfo("America/Sao_Paulo"))
    await ingestion.send(contact_opened(ingestion, 1, occurred_at=occurred))
    await eventually(lambda: has_protocol(ingestion, 1))
    [protocol] = await ingestion.protocols(ingestion.contact(1))
    assert protocol["number"][6:14] == "20251120"  # the contact's day, not processing's
    assert protocol["opened_at"] == occurred
