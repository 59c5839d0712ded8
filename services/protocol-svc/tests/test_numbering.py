"""Daily sequence blocks against the real PostgreSQL: unique numbers, blocks sized by rate."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from protocol_svc import numbering
from protocol_svc.numbering import SequenceAllocator, sequence_in_use
from rn623_events.db import create_engine
from rn623_rulebook import get_layout

pytestmark = pytest.mark.integration

DAY = date(2025, 11, 21)


async def test_blocks_grow_while_used_fast_and_shrink_when_idle(
    migrated_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(numbering.time, "monotonic", lambda: now[0])
    layout = get_layout("ans-default-20")
    engine = create_engine(migrated_database, pool_size=2)
    try:
        allocator = SequenceAllocator(engine, block_size=5)
        issued = [await allocator.next("111111", DAY, layout) for _ in range(5 + 10 + 20)]
        # 5, then 10 and 20: each block was used up within a second
        assert await sequence_in_use(engine, "111111", DAY) == 35
        # a block never exceeds a thousandth of the daily capacity (nor 1 000)
        largest = min(numbering.MAX_BLOCK, layout.daily_capacity // 1000)
        for _ in range(12):
            issued += [await allocator.next("111111", DAY, layout)]
            while (block := allocator._blocks[("111111", DAY)]).next <= block.last:
                issued.append(await allocator.next("111111", DAY, layout))
        assert allocator._blocks[("111111", DAY)].size == largest
        now[0] += numbering.SHRINK_AFTER_SECONDS + 1
        issued.append(await allocator.next("111111", DAY, layout))
        assert allocator._blocks[("111111", DAY)].size == largest // 2
        assert issued == list(range(1, len(issued) + 1))  # one replica: no gaps, no repeats
    finally:
        await engine.dispose()


async def test_concurrent_replicas_never_share_a_number(migrated_database: str) -> None:
    layout = get_layout("ans-default-20")
    engines = [create_engine(migrated_database, pool_size=2) for _ in range(3)]
    try:
        replicas = [SequenceAllocator(engine, block_size=3) for engine in engines]

        async def issue(allocator: SequenceAllocator) -> list[int]:
            numbers = []
            for _ in range(400):
                numbers.append(await allocator.next("222222", DAY, layout))
                await asyncio.sleep(0)
            return numbers

        results = await asyncio.gather(*(issue(replica) for replica in replicas))
        issued = [n for numbers in results for n in numbers]
        assert len(set(issued)) == len(issued) == 1200
    finally:
        for engine in engines:
            await engine.dispose()
