"""Integration tests of the Tansu broker: produce/consume and freeze/thaw."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from rn623_devinfra.broker import TansuBroker

pytestmark = pytest.mark.integration


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def test_produce_and_consume(kafka_bootstrap_servers: str, unique_suffix: str) -> None:
    topic = f"devinfra-{unique_suffix}"
    await _create_topic(kafka_bootstrap_servers, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k1", headers=[("ce_type", b"t")])
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap_servers,
        group_id=f"g-{unique_suffix}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # Tansu answers a group join after about half the session timeout (5 s by default).
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=20)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert (message.key, message.value) == (b"k1", b"hello")
    assert message.headers == (("ce_type", b"t"),)


async def test_produce_during_freeze_completes_after_thaw(
    tansu_broker: TansuBroker, unique_suffix: str
) -> None:
    topic = f"freeze-{unique_suffix}"
    await _create_topic(tansu_broker.bootstrap_servers, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=tansu_broker.bootstrap_servers, request_timeout_ms=60_000
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before")
        tansu_broker.freeze()
        try:
            pending = asyncio.ensure_future(producer.send_and_wait(topic, b"during"))
            await asyncio.sleep(1.0)
            assert not pending.done()
        finally:
            tansu_broker.thaw()
        metadata = await asyncio.wait_for(pending, timeout=20)
        assert metadata.offset == 1
    finally:
        await producer.stop()
