"""The topic catalogue: invariants, Strimzi manifests and idempotent creation on a broker."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

import rn623_events.contracts  # noqa: F401  (registers every contract)
from rn623_events.registry import REGISTRY
from rn623_events.settings import KafkaSettings
from rn623_events.topics import (
    CONSUMING_SERVICES,
    TOPICS,
    TopicCreationError,
    TopicSpec,
    _check_create_response,
    dlq_topic,
    ensure_topics,
    strimzi_manifests,
    topic,
)

# catalogue invariants


@pytest.mark.unit
def test_topic_names_are_unique() -> None:
    names = [spec.name for spec in TOPICS]
    assert len(names) == len(set(names))


@pytest.mark.unit
def test_design_topics_are_catalogued() -> None:
    for name in (
        "operator.events",
        "protocol.events",
        "deadline.events",
        "notification.events",
        "retention.events",
        "igr.events",
        "contact-center.inbound",
    ):
        assert topic(name).name == name
    with pytest.raises(KeyError, match="not in the catalogue"):
        topic("nope.events")


@pytest.mark.unit
def test_every_contract_topic_is_catalogued() -> None:
    assert len(REGISTRY) > 0
    for info in REGISTRY:
        assert topic(info.topic).name == info.topic


@pytest.mark.unit
def test_every_consuming_service_has_a_dlq() -> None:
    consumers = {c for spec in TOPICS for c in spec.consumers}
    assert consumers <= set(CONSUMING_SERVICES)
    for service in CONSUMING_SERVICES:
        dlq = topic(dlq_topic(service))
        assert dlq.is_dlq
        assert dlq.owner == service
        assert dlq.retention_ms is not None
        assert dlq.retention_ms >= 30 * 24 * 3600 * 1000


@pytest.mark.unit
def test_dlq_topic_helper() -> None:
    assert dlq_topic("deadline-svc") == "deadline-svc.dlq"
    with pytest.raises(ValueError, match="not a service"):
        dlq_topic("deadline-svc.dlq")
    with pytest.raises(ValueError, match="not a service"):
        dlq_topic("")


@pytest.mark.unit
def test_compacted_topics_have_no_retention() -> None:
    compacted = [spec for spec in TOPICS if spec.cleanup_policy == "compact"]
    assert [spec.name for spec in compacted] == ["operator.events"]
    for spec in TOPICS:
        if spec.cleanup_policy == "compact":
            assert spec.retention_ms is None
            assert "retention.ms" not in spec.configs()
        else:
            assert spec.retention_ms is not None
            assert spec.configs()["retention.ms"] == str(spec.retention_ms)


@pytest.mark.unit
def test_spec_validation() -> None:
    base = topic("protocol.events")
    with pytest.raises(ValueError, match="no time-based retention"):
        replace(base, cleanup_policy="compact")
    with pytest.raises(ValueError, match="needs retention_ms"):
        replace(base, retention_ms=None)
    with pytest.raises(ValueError, match=">= 1"):
        replace(base, partitions=0)
    for name in ("bad name", "a/b", "", "x" * 250, ".."):
        with pytest.raises(ValueError, match="illegal Kafka topic name"):
            replace(base, name=name)


@pytest.mark.unit
def test_partitions_and_replication() -> None:
    assert topic("protocol.events").partitions == 12
    assert topic("contact-center.inbound").partitions == 12
    assert topic("deadline.events").partitions == 6
    assert all(spec.partitions == 3 for spec in TOPICS if spec.is_dlq)
    assert all(spec.replication_factor == 3 for spec in TOPICS)


@pytest.mark.unit
def test_strimzi_manifests() -> None:
    manifests = strimzi_manifests("rn623")
    assert len(manifests) == len(TOPICS)
    by_topic = {m["spec"]["topicName"]: m for m in manifests}
    operator = by_topic["operator.events"]
    assert operator["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert operator["kind"] == "KafkaTopic"
    assert operator["metadata"]["namespace"] == "rn623"
    assert operator["metadata"]["labels"]["strimzi.io/cluster"] == "rn623"
    assert operator["spec"]["config"] == {"cleanup.policy": "compact", "min.insync.replicas": 2}
    dlq = by_topic["igr-svc.dlq"]["spec"]
    assert dlq["partitions"] == 3
    assert dlq["config"]["retention.ms"] == 30 * 24 * 3600 * 1000
    assert "namespace" not in strimzi_manifests(None)[0]["metadata"]


@pytest.mark.unit
def test_create_response_errors() -> None:
    ok = {"topic_errors": [{"topic": "a", "error_code": 0, "error_message": None}]}
    assert _check_create_response(ok) == set()
    raced = {"topic_errors": [{"topic": "a", "error_code": 36, "error_message": "exists"}]}
    assert _check_create_response(raced) == {"a"}
    bad: dict[str, Any] = {
        "topic_errors": [
            {"topic": "a", "error_code": 0},
            {"topic": "b", "error_code": 38},  # INVALID_REPLICATION_FACTOR, v0: no message
        ]
    }
    with pytest.raises(TopicCreationError, match="b: error 38"):
        _check_create_response(bad)


# against the real broker


@pytest.mark.integration
async def test_ensure_topics_is_idempotent(
    kafka_bootstrap_servers: str, unique_suffix: str
) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap_servers)
    specs = [
        TopicSpec(
            name=f"test-{unique_suffix}.events",
            partitions=4,
            owner="test",
            key="test id",
            summary="test events",
        ),
        TopicSpec(
            name=f"test-{unique_suffix}.state",
            partitions=2,
            owner="test",
            key="test id",
            summary="compacted test state",
            cleanup_policy="compact",
            retention_ms=None,
        ),
        TopicSpec(
            name=dlq_topic(f"test-{unique_suffix}-svc"),
            partitions=3,
            owner="test",
            key="original key",
            summary="test dead letters",
        ),
    ]
    created = await ensure_topics(settings, specs)
    assert created == [spec.name for spec in specs]
    assert await ensure_topics(settings, specs) == []

    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    await admin.start()
    try:
        described = await admin.describe_topics([spec.name for spec in specs])
        resources = [ConfigResource(ConfigResourceType.TOPIC, spec.name) for spec in specs]
        configs = {
            item["resource_name"]: {
                entry["config_names"]: entry["config_value"] for entry in item["config_entries"]
            }
            for response in await admin.describe_configs(resources)
            for item in response.to_object()["resources"]
        }
    finally:
        await admin.close()
    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert partitions == {spec.name: spec.partitions for spec in specs}
    for spec in specs:
        for name, value in spec.configs().items():
            assert configs[spec.name][name] == value
