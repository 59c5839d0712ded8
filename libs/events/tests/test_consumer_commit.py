"""Offset commits that fail (rebalance, broker away) are kept, never fatal."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from rn623_events.clock import SystemClock
from rn623_events.consumer import ConsumerConfig, ConsumerRunner
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.settings import KafkaSettings

pytestmark = pytest.mark.unit


class RebalancingConsumer:
    """Stands in for aiokafka's consumer at the moment the group rebalances."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.commits: list[dict[TopicPartition, int]] = []
        self.fail = True

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail:
            raise CommitFailedError("group rebalanced")
        self.commits.append(offsets)


def runner_without_database(config: ConsumerConfig | None = None) -> ConsumerRunner:
    """A runner whose offset bookkeeping alone is exercised."""
    kafka = KafkaSettings()
    return ConsumerRunner(
        name="c",
        topics=["t"],
        sessions=None,  # type: ignore[arg-type]
        kafka=kafka,
        clock=SystemClock(),
        source="test",
        dead_letters=DeadLetterPublisher(kafka, "t.dlq"),
        config=config,
    )


async def test_a_failed_commit_is_retried_with_the_same_offsets() -> None:
    runner = runner_without_database()
    tp, gone = TopicPartition("t", 0), TopicPartition("t", 1)
    fake: Any = RebalancingConsumer({tp})
    runner._consumer = fake
    runner._pending = {tp: 10, gone: 4}

    await runner.commit()  # fails: must not raise
    assert fake.commits == []
    fake.fail = False
    await runner.commit()
    assert fake.commits == [{tp: 10}]  # kept and retried; the revoked partition's dropped
    await runner.commit()
    assert fake.commits == [{tp: 10}]  # nothing new, nothing committed again


async def test_offsets_are_committed_at_most_once_per_interval() -> None:
    runner = runner_without_database(ConsumerConfig(commit_interval_seconds=60))
    tp = TopicPartition("t", 0)
    fake: Any = RebalancingConsumer({tp})
    fake.fail = False
    runner._consumer = fake
    await runner.commit_if_due()
    assert fake.commits == []  # nothing processed: nothing to commit
    runner._pending = {tp: 3}
    await runner.commit_if_due()  # the first commit is due at once
    runner._pending = {tp: 7}
    await runner.commit_if_due()  # within the interval: kept for later
    assert fake.commits == [{tp: 3}]
    assert runner._pending == {tp: 7}
    runner._last_commit -= 60  # the interval has passed
    await runner.commit_if_due()
    assert fake.commits == [{tp: 3}, {tp: 7}]
