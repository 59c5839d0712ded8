"""The committed deployment files equal what deploy/generate.py produces."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import yaml

from rn623_events.topics import TOPICS

pytestmark = pytest.mark.unit


def test_generated_files_are_up_to_date(generator: ModuleType) -> None:
    stale = generator.stale(generator.render())
    assert not stale, (
        f"stale generated files: {[str(p) for p in stale]}; "
        "run: uv run --frozen python deploy/generate.py"
    )


def test_kafka_topics_match_the_catalogue(generator: ModuleType) -> None:
    path = generator.ROOT / generator.K8S_BASE / "kafka-topics" / "topics.yaml"
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d]
    by_topic = {d["spec"]["topicName"]: d for d in docs}
    assert set(by_topic) == {t.name for t in TOPICS}
    for spec in TOPICS:
        doc = by_topic[spec.name]
        assert doc["kind"] == "KafkaTopic"
        assert doc["spec"]["partitions"] == spec.partitions
        assert doc["spec"]["replicas"] == spec.replication_factor
        assert doc["spec"]["config"]["cleanup.policy"] == spec.cleanup_policy
        assert doc["spec"]["config"].get("retention.ms") == spec.retention_ms
        assert doc["metadata"]["labels"]["strimzi.io/cluster"]


def test_worker_replicas_are_bounded_by_partitions(services: list[Any]) -> None:
    for svc in services:
        consumed = [t for t in TOPICS if svc.name in t.consumers]
        assert consumed, f"{svc.name} consumes nothing?"
        assert 1 <= svc.worker_max_replicas <= min(t.partitions for t in consumed)
