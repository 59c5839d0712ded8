"""Group commit against the real PostgreSQL: shared transactions, per-caller outcomes."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from events_backbone import Backbone, effects
from rn623_events.db import UnitOfWork, create_engine, outbox_table, session_factory
from rn623_events.group_commit import BatchCommitter, GroupCommitter

pytestmark = pytest.mark.integration

Work = Callable[[UnitOfWork], Coroutine[Any, Any, str]]
CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")


def metric(name: str, group: str) -> float:
    """A group-commit metric's current value for ``group`` (0 when never observed)."""
    return REGISTRY.get_sample_value(name, {"group": group}) or 0.0


async def rows(backbone: Backbone) -> tuple[list[str], int]:
    """The keys of the effect rows and the number of outbox rows."""
    async with backbone.sessions() as session:
        keys = (await session.execute(sa.select(effects.c.key).order_by(effects.c.id))).scalars()
        outbox = await session.scalar(sa.select(sa.func.count()).select_from(outbox_table))
    return list(keys), int(outbox or 0)


def writer(
    backbone: Backbone, key: str, *, gate: asyncio.Event | None = None, fail: str = ""
) -> Work:
    """Work that writes one effect row and publishes one event, failing as asked."""

    async def work(uow: UnitOfWork) -> str:
        if gate is not None:
            await gate.wait()
        await uow.session.execute(
            sa.insert(effects).values(event_id=uuid.uuid4(), key=key, n=1, trace_id=CALLER.get())
        )
        uow.publish(backbone.model(key=key, n=1))
        if fail == "python":
            raise ValueError("refused")
        if fail == "database":
            await uow.session.execute(sa.text("SELECT 1 / 0"))
        return f"{key} by {CALLER.get()}"

    return work


async def call_as(committer: GroupCommitter, caller: str, work: Work) -> str:
    """Run ``work`` through ``committer`` from a caller with its own context."""
    CALLER.set(caller)
    return await committer.run(work)


async def test_concurrent_callers_share_transactions_and_each_gets_its_own_result(
    backbone: Backbone,
) -> None:
    committer = GroupCommitter(backbone.uow, name="test-share", concurrency=1)
    gate = asyncio.Event()
    groups_before = metric("rn623_group_commit_size_count", "test-share")
    try:
        first = asyncio.create_task(call_as(committer, "c0", writer(backbone, "k0", gate=gate)))
        await asyncio.sleep(0.05)  # the first holds the only committer: the rest queue up
        rest = [
            asyncio.create_task(call_as(committer, f"c{i}", writer(backbone, f"k{i}")))
            for i in range(1, 40)
        ]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(first, *rest)
    finally:
        await committer.close()
    assert results == [f"k{i} by c{i}" for i in range(40)]
    keys, outbox = await rows(backbone)
    assert sorted(keys) == sorted(f"k{i}" for i in range(40))
    assert outbox == 40
    # the first went alone, the 39 that queued behind it went together
    assert metric("rn623_group_commit_size_count", "test-share") - groups_before == 2


async def test_a_failing_caller_gets_its_error_and_the_others_commit_once(
    backbone: Backbone,
) -> None:
    committer = GroupCommitter(backbone.uow, name="test-split", concurrency=1)
    gate = asyncio.Event()
    splits_before = metric("rn623_group_commit_splits_total", "test-split")
    try:
        first = asyncio.create_task(call_as(committer, "c0", writer(backbone, "k0", gate=gate)))
        await asyncio.sleep(0.05)
        works = {
            "k1": writer(backbone, "k1"),
            "bad-python": writer(backbone, "bad-python", fail="python"),
            "k2": writer(backbone, "k2"),
            "bad-database": writer(backbone, "bad-database", fail="database"),
            "k3": writer(backbone, "k3"),
        }
        rest = {
            key: asyncio.create_task(call_as(committer, key, work)) for key, work in works.items()
        }
        await asyncio.sleep(0.05)
        gate.set()
        await first
        await asyncio.wait(rest.values())
    finally:
        await committer.close()
    with pytest.raises(ValueError, match="refused"):
        rest["bad-python"].result()
    with pytest.raises(sa.exc.DBAPIError):
        rest["bad-database"].result()
    for key in ("k1", "k2", "k3"):
        assert rest[key].result() == f"{key} by {key}"
    keys, outbox = await rows(backbone)
    assert sorted(keys) == ["k0", "k1", "k2", "k3"]  # once each, nothing of the failures
    assert outbox == 4
    assert metric("rn623_group_commit_splits_total", "test-split") - splits_before == 1


async def test_a_lone_caller_runs_at_once_and_close_cancels_the_waiting(
    backbone: Backbone,
) -> None:
    committer = GroupCommitter(backbone.uow, name="test-close", concurrency=1)
    assert await call_as(committer, "alone", writer(backbone, "k0")) == "k0 by alone"
    gate = asyncio.Event()
    blocked = asyncio.create_task(call_as(committer, "c1", writer(backbone, "k1", gate=gate)))
    waiting = asyncio.create_task(call_as(committer, "c2", writer(backbone, "k2")))
    await asyncio.sleep(0.05)
    await committer.close()
    for task in (blocked, waiting):
        with pytest.raises(asyncio.CancelledError):
            await task
    keys, outbox = await rows(backbone)
    assert keys == ["k0"]
    assert outbox == 1


async def test_a_batch_committer_applies_the_queued_items_in_one_call(
    backbone: Backbone,
) -> None:
    """Items queued behind a busy transaction reach ``apply`` together; an item that makes
    the batch fail gets its own error, the others their results, each written once."""
    gate = asyncio.Event()
    calls: list[list[str]] = []

    async def apply(uow: UnitOfWork, keys: list[str]) -> list[str]:
        calls.append(keys)
        if keys == ["k0"]:
            await gate.wait()
        await uow.session.execute(
            sa.insert(effects),
            [{"event_id": uuid.uuid4(), "key": key, "n": 1, "trace_id": None} for key in keys],
        )
        if "bad" in keys:
            raise ValueError("refused")
        return [key.upper() for key in keys]

    committer = BatchCommitter(backbone.uow, apply, name="test-batch", concurrency=1)
    splits_before = metric("rn623_group_commit_splits_total", "test-batch")
    try:
        first = asyncio.create_task(committer.submit("k0"))
        await asyncio.sleep(0.05)
        together = [asyncio.create_task(committer.submit(f"k{i}")) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        assert await first == "K0"
        assert await asyncio.gather(*together) == [f"K{i}" for i in range(1, 6)]
        assert calls == [["k0"], ["k1", "k2", "k3", "k4", "k5"]]

        gate.clear()
        calls.clear()
        blocker = asyncio.create_task(committer.submit("k0"))
        await asyncio.sleep(0.05)
        mixed = [asyncio.create_task(committer.submit(k)) for k in ("k6", "bad", "k7")]
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        await asyncio.wait(mixed)
    finally:
        await committer.close()
    assert calls == [["k0"], ["k6", "bad", "k7"], ["k6"], ["bad"], ["k7"]]
    assert [mixed[0].result(), mixed[2].result()] == ["K6", "K7"]
    with pytest.raises(ValueError, match="refused"):
        mixed[1].result()
    keys, _ = await rows(backbone)
    assert sorted(keys) == sorted(["k0", "k0", *(f"k{i}" for i in range(1, 8))])
    assert metric("rn623_group_commit_splits_total", "test-batch") - splits_before == 1


async def test_work_on_a_connection_the_database_dropped_runs_again_on_a_fresh_one(
    backbone: Backbone,
) -> None:
    """An engine that does not ping its connections (as the APIs' do) meets a connection
    PostgreSQL has terminated (a restart): the caller still gets its result, once."""
    engine = create_engine(
        backbone.engine.url.render_as_string(hide_password=False), pool_size=1, pre_ping=False
    )
    sessions = session_factory(engine)

    async def apply(uow: UnitOfWork, keys: list[str]) -> list[int]:
        await uow.session.execute(
            sa.insert(effects),
            [{"event_id": uuid.uuid4(), "key": key, "n": 1, "trace_id": None} for key in keys],
        )
        pid = await uow.session.scalar(sa.text("SELECT pg_backend_pid()"))
        return [int(pid or 0)] * len(keys)

    committer = BatchCommitter(
        lambda: UnitOfWork(sessions, source="test-svc", clock=backbone.clock),
        apply,
        name="test-stale",
        concurrency=1,
    )
    retries_before = metric("rn623_group_commit_stale_connection_retries_total", "test-stale")
    try:
        first = await committer.submit("k1")
        async with backbone.engine.connect() as admin:
            await admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            for _ in range(100):  # until PostgreSQL has closed it
                gone = await admin.scalar(
                    sa.text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": first},
                )
                if gone:
                    break
                await asyncio.sleep(0.02)
        second = await committer.submit("k2")
    finally:
        await committer.close()
        await engine.dispose()
    assert second != first
    keys, _ = await rows(backbone)
    assert keys == ["k1", "k2"]
    retries = metric("rn623_group_commit_stale_connection_retries_total", "test-stale")
    assert retries - retries_before == 1
