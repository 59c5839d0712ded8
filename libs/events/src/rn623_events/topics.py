"""The Kafka topic catalogue as data, plus idempotent creation and Strimzi manifests.

One topic per aggregate, keyed by aggregate id so the events of one aggregate stay
ordered (DESIGN §3), and one dead-letter topic per consuming service.

Partition counts (they can be raised later but never lowered, and raising them moves
keys to other partitions, so they are sized for growth up front):

- 12 for ``protocol.events`` and ``contact-center.inbound``: the high-volume streams
  (every protocol, demand, answer and interaction); 12 divides evenly among 1, 2, 3, 4,
  6 or 12 consumers of a group, so workers can scale out without idle members.
- 6 for the other aggregate topics: an order of magnitude fewer events (operators,
  deadlines, notifications, retention, IGR), still enough for a few parallel workers.
- 3 for dead-letter topics: dead letters are rare, are read by operators and replay
  tooling rather than hot consumers, and need no key ordering.

Retention: domain event topics keep 7 days (long enough to ride out a consumer outage
over a long weekend; each service keeps its own state in its database, and personal
data should not linger in the log); dead letters keep 30 days so they can be
investigated and replayed; ``operator.events`` is compacted (the latest upsert per
operator is kept forever), so it has no time-based retention.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from rn623_events.settings import KafkaSettings

CleanupPolicy = Literal["delete", "compact"]

DAY_MS = 24 * 60 * 60 * 1000
EVENT_RETENTION_MS = 7 * DAY_MS
DLQ_RETENTION_MS = 30 * DAY_MS
TOPIC_ALREADY_EXISTS = 36
DLQ_SUFFIX = ".dlq"
_LEGAL_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")

CONTACT_CENTER = "contact-center"
"""Owner id of topics written by external contact-center platforms."""


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic: its layout, configuration, owner and key."""

    name: str
    partitions: int
    owner: str
    key: str
    summary: str
    cleanup_policy: CleanupPolicy = "delete"
    retention_ms: int | None = EVENT_RETENTION_MS
    replication_factor: int = 3
    consumers: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _LEGAL_NAME.fullmatch(self.name) or self.name in (".", ".."):
            raise ValueError(f"illegal Kafka topic name {self.name!r}")
        if self.partitions < 1 or self.replication_factor < 1:
            raise ValueError(f"{self.name}: partitions and replication factor must be >= 1")
        if self.cleanup_policy == "compact" and self.retention_ms is not None:
            raise ValueError(f"{self.name}: a compacted topic has no time-based retention")
        if self.cleanup_policy == "delete" and self.retention_ms is None:
            raise ValueError(f"{self.name}: a delete-policy topic needs retention_ms")

    @property
    def is_dlq(self) -> bool:
        """Whether this is a dead-letter topic."""
        return self.name.endswith(DLQ_SUFFIX)

    def configs(self) -> dict[str, str]:
        """Topic-level Kafka configuration (``cleanup.policy``, ``retention.ms``)."""
        configs: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


def dlq_topic(service_name: str) -> str:
    """Return the dead-letter topic of a consuming service (``<service>.dlq``)."""
    if not service_name or service_name.endswith(DLQ_SUFFIX):
        raise ValueError(f"not a service name: {service_name!r}")
    return f"{service_name}{DLQ_SUFFIX}"


def _dlq(service: str) -> TopicSpec:
    return TopicSpec(
        name=dlq_topic(service),
        partitions=3,
        owner=service,
        key="the original record's key",
        summary=f"Dead letters of {service}: records that failed after retries or could "
        "not be parsed, with the error in their headers; replayable.",
        retention_ms=DLQ_RETENTION_MS,
    )


CONSUMING_SERVICES = (
    "protocol-svc",
    "deadline-svc",
    "notification-svc",
    "retention-svc",
    "igr-svc",
)

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        name="operator.events",
        partitions=6,
        owner="protocol-svc",
        key="ANS registration of the operator (6 digits)",
        summary="Operator registry changes; compacted, so it always holds the latest "
        "state of every operator.",
        cleanup_policy="compact",
        retention_ms=None,
        consumers=("deadline-svc", "notification-svc", "igr-svc"),
    ),
    TopicSpec(
        name="protocol.events",
        partitions=12,
        owner="protocol-svc",
        key="protocol number",
        summary="Protocols, demands, answers, interactions, complaints and purges.",
        consumers=("deadline-svc", "notification-svc", "retention-svc", "igr-svc"),
    ),
    TopicSpec(
        name="deadline.events",
        partitions=6,
        owner="deadline-svc",
        key="protocol number",
        summary="Deadlines scheduled, warned, breached, met and recomputed.",
        consumers=("notification-svc", "igr-svc"),
    ),
    TopicSpec(
        name="notification.events",
        partitions=6,
        owner="notification-svc",
        key="protocol number",
        summary="Receipt and answer messages sent, delivered or failed.",
        consumers=("retention-svc",),
    ),
    TopicSpec(
        name="retention.events",
        partitions=6,
        owner="retention-svc",
        key="protocol number",
        summary="Retention schedules, purge requests, disposals and access requests.",
        consumers=("protocol-svc", "deadline-svc", "notification-svc"),
    ),
    TopicSpec(
        name="igr.events",
        partitions=6,
        owner="igr-svc",
        key="ANS registration of the operator (6 digits)",
        summary="IGR computed per operator and quarter.",
    ),
    TopicSpec(
        name="contact-center.inbound",
        partitions=12,
        owner=CONTACT_CENTER,
        key="contact id assigned by the contact-center platform",
        summary="What external contact-center platforms publish (contacts, interactions, "
        "answers, complaints), validated by protocol-svc.",
        consumers=("protocol-svc",),
    ),
    *(_dlq(service) for service in CONSUMING_SERVICES),
)

_BY_NAME = {spec.name: spec for spec in TOPICS}


def topic(name: str) -> TopicSpec:
    """Return the catalogue entry of a topic; ``KeyError`` if it is not catalogued."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"topic {name!r} is not in the catalogue") from None


class TopicCreationError(RuntimeError):
    """The broker refused to create one or more topics."""


async def ensure_topics(
    settings: KafkaSettings, topics: Sequence[TopicSpec] | None = None
) -> list[str]:
    """Create the catalogued topics missing from the cluster; return the names created.

    Idempotent: existing topics are left untouched (partitions and configuration are
    never changed). The replication factor is clamped to the number of brokers, so the
    same catalogue works on a one-broker development cluster.
    """
    specs = list(TOPICS if topics is None else topics)
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError("duplicate topic names")
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        cluster = await admin.describe_cluster()
        brokers = max(1, len(cluster.get("brokers") or ()))
        new_topics = [
            NewTopic(
                spec.name,
                spec.partitions,
                min(spec.replication_factor, brokers),
                topic_configs=spec.configs(),
            )
            for spec in missing
        ]
        response = await admin.create_topics(new_topics)
    finally:
        await admin.close()
    raced = _check_create_response(response.to_object())
    return [spec.name for spec in missing if spec.name not in raced]


def _check_create_response(response: dict[str, Any]) -> set[str]:
    """Raise on per-topic errors; return the topics another client created first."""
    raced: set[str] = set()
    failures: list[str] = []
    for entry in response.get("topic_errors", ()):
        code = entry["error_code"]
        if code == 0:
            continue
        if code == TOPIC_ALREADY_EXISTS:
            raced.add(entry["topic"])
            continue
        detail = entry.get("error_message") or for_code(code).__name__
        failures.append(f"{entry['topic']}: error {code} ({detail})")
    if failures:
        raise TopicCreationError("could not create topics: " + "; ".join(failures))
    return raced


def _k8s_name(topic_name: str) -> str:
    return re.sub(r"[^a-z0-9.-]", "-", topic_name.lower()).strip("-.")


def strimzi_manifests(
    namespace: str | None, *, cluster: str = "rn623", topics: Sequence[TopicSpec] | None = None
) -> list[dict[str, Any]]:
    """Return one Strimzi ``KafkaTopic`` resource per catalogued topic.

    Production topics also get ``min.insync.replicas`` = replicas - 1, so writes with
    ``acks=all`` survive the loss of one broker.
    """
    manifests: list[dict[str, Any]] = []
    for spec in TOPICS if topics is None else topics:
        config: dict[str, Any] = {"cleanup.policy": spec.cleanup_policy}
        if spec.retention_ms is not None:
            config["retention.ms"] = spec.retention_ms
        if spec.replication_factor > 1:
            config["min.insync.replicas"] = spec.replication_factor - 1
        metadata: dict[str, Any] = {
            "name": _k8s_name(spec.name),
            "labels": {
                "strimzi.io/cluster": cluster,
                "app.kubernetes.io/part-of": "rn623",
                "rn623.io/owner": spec.owner,
            },
        }
        if namespace:
            metadata["namespace"] = namespace
        manifests.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaTopic",
                "metadata": metadata,
                "spec": {
                    "topicName": spec.name,
                    "partitions": spec.partitions,
                    "replicas": spec.replication_factor,
                    "config": config,
                },
            }
        )
    return manifests
