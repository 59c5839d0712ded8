"""How a poll's partitions are shared among a consumer's lanes."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from rn623_events.consumer import lane_groups, split_into_lanes

pytestmark = pytest.mark.unit


def poll(
    sizes: dict[int, int], topic: str = "t"
) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
    """A poll with ``sizes[p]`` records from partition ``p`` of ``topic``."""
    return {
        TopicPartition(topic, p): [
            ConsumerRecord(topic, p, offset, 0, 0, b"k", b"v", None, 1, 1, [])
            for offset in range(n)
        ]
        for p, n in sizes.items()
    }


def layout(lanes: list[list[ConsumerRecord[Any, Any]]]) -> list[list[tuple[int, int]]]:
    return [[(r.partition, r.offset) for r in lane] for lane in lanes]


def test_a_small_poll_stays_one_lane_in_poll_order() -> None:
    lanes = split_into_lanes(poll({0: 2, 1: 3, 2: 2}), lanes=4, records_per_lane=8, groups=12)
    assert layout(lanes) == [[(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]]


def test_one_lane_configured_means_one_lane_whatever_the_poll() -> None:
    assert len(split_into_lanes(poll({p: 50 for p in range(12)}), 1, 8, 12)) == 1


def test_a_big_poll_is_shared_evenly_and_each_partition_stays_whole_and_in_order() -> None:
    sizes = {0: 40, 1: 10, 2: 25, 3: 25, 4: 5, 5: 30, 6: 15, 7: 10}
    lanes = split_into_lanes(poll(sizes), lanes=4, records_per_lane=8, groups=12)
    assert len(lanes) == 4
    where: dict[int, set[int]] = {}
    for index, lane in enumerate(lanes):
        for r in lane:
            where.setdefault(r.partition, set()).add(index)
        for p in {r.partition for r in lane}:
            assert [r.offset for r in lane if r.partition == p] == list(range(sizes[p]))
    assert all(len(indexes) == 1 for indexes in where.values())
    assert sorted(len(lane) for lane in lanes) == [40, 40, 40, 40]


def test_lanes_never_outnumber_partitions_nor_go_below_their_minimum_size() -> None:
    assert (
        len(split_into_lanes(poll({0: 100, 1: 100}), lanes=4, records_per_lane=8, groups=12)) == 2
    )
    assert (
        len(
            split_into_lanes(poll({p: 4 for p in range(8)}), lanes=4, records_per_lane=8, groups=12)
        )
        == 4
    )
    assert (
        len(
            split_into_lanes(poll({p: 2 for p in range(8)}), lanes=4, records_per_lane=8, groups=12)
        )
        == 2
    )
    assert split_into_lanes({}, lanes=4, records_per_lane=8, groups=12) == []
    unknown = split_into_lanes(
        poll({p: 50 for p in range(12)}), lanes=4, records_per_lane=8, groups=0
    )
    assert len(unknown) == 1, "without the partition counts a poll is never split"


def test_lane_groups_are_the_common_divisor_of_the_partition_counts() -> None:
    assert lane_groups({"protocol.events": 12, "retention.events": 6}) == 6
    assert lane_groups({"protocol.events": 12}) == 12
    assert lane_groups({"a": 12, "b": 8}) == 4
    assert lane_groups({}) == 0
    assert lane_groups({"a": 12, "b": 0}) == 0  # a topic whose metadata is not known yet


def test_one_aggregate_s_partitions_of_two_topics_share_a_lane() -> None:
    """A protocol's events sit in partition h % 12 of a 12-partition topic and h % 6 of a
    6-partition one: both must be handled in the same lane, one after the other."""
    batches = {**poll({p: 5 for p in range(12)}, "a"), **poll({p: 5 for p in range(6)}, "b")}
    lanes = split_into_lanes(
        batches, lanes=4, records_per_lane=8, groups=lane_groups({"a": 12, "b": 6})
    )
    assert len(lanes) == 4
    lane_of = {(r.topic, r.partition): i for i, lane in enumerate(lanes) for r in lane}
    for h in range(1000):
        assert lane_of[("a", h % 12)] == lane_of[("b", h % 6)]
