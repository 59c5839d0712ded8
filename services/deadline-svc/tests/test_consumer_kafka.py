"""deadline-svc's consumer through the real broker: schedule, close, dead-letter."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deadline_svc.consumers import event_consumers
from deadline_svc.runtime import Runtime
from deadline_svc.scheduler import Scheduler
from rn623_devinfra.waiting import eventually
from rn623_events.consumer import ConsumerConfig
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import DemandAnswered, DemandRegistered
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import make_envelope
from rn623_events.settings import KafkaSettings
from rn623_events.topics import dlq_topic, ensure_topics, topic

pytestmark = pytest.mark.integration

DLQ = dlq_topic("deadline-svc")


async def test_events_from_the_broker_schedule_close_and_dead_letter(
    runtime: Runtime, kafka_bootstrap_servers: str, unique_suffix: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap_servers)
    await ensure_topics(
        kafka,
        [topic("operator.events"), topic("protocol.events"), topic("retention.events"), topic(DLQ)],
    )
    ans = f"{secrets.randbelow(900_000) + 100_000}"  # an operator of this test only
    now = runtime.clock.now()
    operator = OperatorUpserted(
        ans_registry=ans,
        name="Operadora Kafka",
        segment="medical",
        modality="cooperativa_medica",
        beneficiaries=10_000,
        uf="RJ",
        municipality_ibge="3304557",
        timezone="America/Sao_Paulo",
        protocol_layout="ans-default-20",
        revision=1,
        updated_at=now,
    )
    demand = DemandRegistered(
        protocol_number=f"{ans}20251121000001",
        ans_registry=ans,
        demand_id=uuid.uuid4(),
        demand_type="non_assistance",
        requested_at=now,
        registered_at=now,
        due_at=datetime(2025, 12, 2, 2, 59, 59, 999999, tzinfo=UTC),
        immediate=False,
        deadline_rule_id="rn623.deadline.non_assistance",
        deadline_legal_basis="RN 623/2024, art. 10",
        deadline_unit="business_days",
        deadline_amount=7,
        ruleset_id="rn623-2025",
    )

    def answered(demand_id: uuid.UUID) -> DemandAnswered:
        return DemandAnswered(
            protocol_number=demand.protocol_number,
            ans_registry=ans,
            demand_id=demand_id,
            outcome="informed",
            text="A segunda via do boleto foi enviada para o seu e-mail.",
            answered_at=now,
            reanalysis_allowed=False,
        )

    stray = answered(uuid.uuid4())  # an answer to a demand nobody registered
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
    await producer.start()
    try:
        for event in (operator, demand, answered(demand.demand_id), stray):
            envelope = make_envelope(event, source="test", time=now)
            await producer.send_and_wait(
                envelope.topic, key=envelope.key, value=envelope.value(), headers=envelope.headers()
            )
    finally:
        await producer.stop()

    dead_letters = DeadLetterPublisher(kafka, DLQ)
    consumers = event_consumers(
        runtime,
        kafka,
        dead_letters,
        name=f"deadline-svc.{unique_suffix}",
        config=ConsumerConfig(session_timeout_ms=2000, heartbeat_interval_ms=500),
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in consumers]

    async def status() -> Any:
        async with runtime.sessions() as session:
            return await session.scalar(
                sa.text("SELECT status FROM deadlines WHERE demand_id = :d"),
                {"d": demand.demand_id},
            )

    async def met() -> bool:
        return await status() == "met"

    try:
        await eventually(met)
        letters = await _dead_letters(kafka_bootstrap_servers, demand.protocol_number)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await dead_letters.close()
    assert [h["dlq_error"] for h in letters] == [
        "demand_id: no deadline was scheduled for this demand"
    ]
    await Scheduler(runtime).tick()  # a met deadline is never breached
    assert await status() == "met"


async def _dead_letters(bootstrap: str, key: str, max_seconds: float = 30) -> list[dict[str, str]]:
    reader = AIOKafkaConsumer(
        DLQ, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await reader.start()
    found: list[dict[str, str]] = []
    deadline = time.monotonic() + max_seconds
    try:
        while not found and time.monotonic() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                found += [
                    {k: v.decode() for k, v in r.headers} for r in records if r.key == key.encode()
                ]
    finally:
        await reader.stop()
    return found
