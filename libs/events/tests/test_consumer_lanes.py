"""How a poll's partitions are shared among a consumer's lanes."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from rn623_events.consumer import split_into_lanes

pytestmark = pytest.mark.unit


def poll(sizes: dict[int, int]) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
    """A poll with ``sizes[p]`` records from partition ``p`` of topic ``t``."""
    return {
        TopicPartition("t", p): [
            ConsumerRecord("t", p, offset, 0, 0, b"k", b"v", None, 1, 1, []) for offset in range(n)
        ]
        for p, n in sizes.items()
    }


def layout(lanes: list[list[ConsumerRecord[Any, Any]]]) -> list[list[tuple[int, int]]]:
    return [[(r.partition, r.offset) for r in lane] for lane in lanes]


def test_a_small_poll_stays_one_lane_in_poll_order() -> None:
    lanes = split_into_lanes(poll({0: 2, 1: 3, 2: 2}), lanes=4, records_per_lane=8)
    assert layout(lanes) == [[(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]]


def test_one_lane_configured_means_one_lane_whatever_the_poll() -> None:
    assert len(split_into_lanes(poll({p: 50 for p in range(12)}), 1, 8)) == 1


def test_a_big_poll_is_shared_evenly_and_each_partition_stays_whole_and_in_order() -> None:
    sizes = {0: 40, 1: 10, 2: 25, 3: 25, 4: 5, 5: 30, 6: 15, 7: 10}
    lanes = split_into_lanes(poll(sizes), lanes=4, records_per_lane=8)
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
    assert len(split_into_lanes(poll({0: 100, 1: 100}), lanes=4, records_per_lane=8)) == 2
    assert len(split_into_lanes(poll({p: 4 for p in range(8)}), lanes=4, records_per_lane=8)) == 4
    assert len(split_into_lanes(poll({p: 2 for p in range(8)}), lanes=4, records_per_lane=8)) == 2
    assert split_into_lanes({}, lanes=4, records_per_lane=8) == []
