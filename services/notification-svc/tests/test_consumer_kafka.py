"""notification-svc's consumers through the real broker: an event delivered three times
makes one receipt, a poison message goes to the dead-letter topic with its reason, and a
purge request deletes the protocol's messages and is confirmed on notification.events."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from notification_svc.consumers import event_consumers
from notification_svc.dispatcher import Dispatcher
from notification_svc.models import deliveries, messages, protocols
from notification_svc.runtime import Runtime
from notification_svc_testdata import opened, operator, protocol_number
from rn623_devinfra.provider_emulators import RunningEmulators
from rn623_devinfra.waiting import eventually
from rn623_events.consumer import ConsumerConfig
from rn623_events.contracts.retention import PurgeRequested
from rn623_events.db import outbox_table
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import make_envelope
from rn623_events.registry import Event
from rn623_events.settings import KafkaSettings
from rn623_events.topics import dlq_topic, ensure_topics, topic

pytestmark = pytest.mark.integration

DLQ = dlq_topic("notification-svc")


async def _publish(bootstrap: str, records: list[tuple[str, bytes, bytes, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for name, key, value, headers in records:
            await producer.send_and_wait(name, key=key, value=value, headers=headers)
    finally:
        await producer.stop()


def _record(event: Event, at: Any) -> tuple[str, bytes, bytes, Any]:
    envelope = make_envelope(event, source="test", time=at)
    return envelope.topic, envelope.key, envelope.value(), envelope.headers()


async def test_redelivery_poison_and_purge_through_the_broker(
    runtime: Runtime,
    emulators: RunningEmulators,
    kafka_bootstrap_servers: str,
    unique_suffix: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap_servers)
    await ensure_topics(
        kafka,
        [topic("operator.events"), topic("protocol.events"), topic("retention.events"), topic(DLQ)],
    )
    now = runtime.clock.now()
    ans = f"{secrets.randbelow(900_000) + 100_000}"  # an operator of this test only
    number, poisoned = protocol_number(), protocol_number()
    contact = _record(opened(ans, number, now), now)
    bad_topic, _, bad_value, bad_headers = _record(opened(ans, poisoned, now), now)
    poison = (  # a phone number that is not one
        bad_topic,
        poisoned.encode(),
        bad_value.replace(b"+5511990000001", b"not-a-phone"),
        bad_headers,
    )
    # the same event three times (a producer retry, a replay), and a malformed one
    await _publish(
        kafka_bootstrap_servers,
        [_record(operator(ans, at=now), now), contact, contact, poison, contact],
    )
    dead_letters = DeadLetterPublisher(kafka, DLQ)
    consumers = event_consumers(
        runtime,
        kafka,
        dead_letters,
        name=f"notification-svc.{unique_suffix}",
        config=ConsumerConfig(session_timeout_ms=2000, heartbeat_interval_ms=500),
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in consumers]

    async def count(table: Any, column: Any) -> int:
        async with runtime.sessions() as session:
            return int(
                await session.scalar(
                    sa.select(sa.func.count()).select_from(table).where(column == number)
                )
                or 0
            )

    try:

        async def receipt_created() -> bool:
            return await count(messages, messages.c.protocol_number) == 1

        await eventually(receipt_created)
        await Dispatcher(runtime).tick()
        await emulators.wait_for_messages(provider="meta")
        letters = await _dead_letters(kafka_bootstrap_servers, poisoned)
        assert len(letters) == 1
        assert letters[0]["dlq_reason"] == "invalid_payload"
        reason = letters[0]["dlq_error"]
        assert "phone" in reason  # names the field...
        for personal in ("not-a-phone", "+5511990000002", "maria.teste@example.org", "Maria"):
            assert personal not in reason  # ...never the data

        purge = PurgeRequested(
            purge_request_id=uuid.uuid4(),
            protocol_number=number,
            ans_registry=ans,
            record_classes=("notification", "recording"),
            owners=("protocol-svc", "notification-svc"),
            requested_at=now,
        )
        await _publish(kafka_bootstrap_servers, [_record(purge, now)])

        async def purged() -> bool:
            return await count(protocols, protocols.c.protocol_number) == 0

        await eventually(purged)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await dead_letters.close()

    assert await count(messages, messages.c.protocol_number) == 0
    assert await count(deliveries, deliveries.c.protocol_number) == 0
    sent = [m for m in emulators.messages() if number in (m.text or "") + str(m.template)]
    assert len(sent) == 1  # three deliveries of the event, one receipt
    async with runtime.sessions() as session:
        confirmations = (
            await session.execute(
                sa.select(outbox_table.c.topic, outbox_table.c.payload).where(
                    outbox_table.c.key == number, outbox_table.c.event_type == "records.purged"
                )
            )
        ).all()
    assert len(confirmations) == 1
    assert confirmations[0].topic == "notification.events"
    assert confirmations[0].payload["owner"] == "notification-svc"
    assert confirmations[0].payload["record_classes"] == ["notification"]


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
