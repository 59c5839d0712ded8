"""Outbox → broker → consumer against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from events_backbone import Backbone, Happened, effects, record_effect
from rn623_events.consumer import ConsumerRunner, Handler, NotReady, inbox_count
from rn623_events.db import GatheredWrites, UnitOfWork
from rn623_events.dlq import replay_dead_letters
from rn623_events.envelope import Envelope, make_envelope
from rn623_events.registry import Event

pytestmark = pytest.mark.integration


def keyed_events(n: int, keys: int) -> list[tuple[str, int]]:
    """``n`` events spread over ``keys`` aggregates, numbered per aggregate."""
    counters: dict[str, int] = defaultdict(int)
    out = []
    for _ in range(n):
        key = f"k{random.randrange(keys)}"
        counters[key] += 1
        out.append((key, counters[key]))
    return out


def assert_in_order_per_key(rows: list[Any]) -> None:
    """Each aggregate's effects were applied in the order its events were written."""
    seen: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        seen[row.key].append(row.n)
    for key, ns in seen.items():
        assert ns == sorted(ns), f"events of {key} applied out of order"


async def test_outbox_to_consumer_gives_exactly_one_effect_under_redelivery(
    backbone: Backbone,
) -> None:
    events = keyed_events(300, keys=20)
    await backbone.write(events)
    relay, consumer = backbone.relay(batch_size=64), backbone.consumer("c-exactly-once")
    backbone.start(relay.run)
    backbone.start(consumer.run)

    rows = await backbone.wait_for_effects(300)
    assert len(rows) == 300
    assert_in_order_per_key(rows)

    # Redeliver everything: mark the whole outbox unpublished so the relay sends it again.
    async with backbone.sessions() as s, s.begin():
        await s.execute(sa.text("UPDATE outbox SET published_at = NULL"))
    await backbone.wait_published()
    # The redelivered copies reach the consumer: wait until its lag is gone.
    await asyncio.sleep(2)
    rows = await backbone.effect_rows()
    assert len(rows) == 300
    assert len({r.event_id for r in rows}) == 300
    assert await inbox_count(backbone.sessions, "c-exactly-once") == 300
    labels = {"consumer": "c-exactly-once"}
    assert (
        REGISTRY.get_sample_value(
            "consumer_processed_total", {**labels, "event_type": "test.happened"}
        )
        == 300
    )
    duplicates = REGISTRY.get_sample_value("consumer_duplicates_total", labels)
    assert duplicates is not None
    assert duplicates >= 300


async def test_rolled_back_unit_of_work_publishes_nothing(backbone: Backbone) -> None:
    async with backbone.uow() as uow:
        uow.publish(backbone.model(key="k", n=1))
        # leaving without commit() rolls back the state change and its events
    await backbone.write([("k", 2)])
    async with backbone.sessions() as s:
        payloads = (await s.execute(sa.text("SELECT payload FROM outbox"))).scalars().all()
    assert [p["n"] for p in payloads] == [2]


async def test_two_relays_publish_each_event_once_in_order(backbone: Backbone) -> None:
    backbone.start(backbone.relay(batch_size=16).run)
    backbone.start(backbone.relay(batch_size=16).run)
    backbone.start(backbone.consumer("c-two-relays").run)
    events = keyed_events(200, keys=5)
    await backbone.write(events, per_tx=3)
    rows = await backbone.wait_for_effects(200)
    assert len(rows) == 200
    assert_in_order_per_key(rows)


async def test_a_busy_relay_shares_batches_among_commits_that_keep_coming(
    backbone: Backbone,
) -> None:
    """Commits arriving faster than ``min_batch_interval`` share batches; every event
    still goes out, in order."""

    def batches() -> float:
        return (
            REGISTRY.get_sample_value("outbox_publish_batch_seconds_count", {"service": "test-svc"})
            or 0.0
        )

    interval = 0.5
    backbone.start(backbone.relay(min_batch_interval=interval).run)
    backbone.start(backbone.consumer("c-spaced").run)
    await backbone.write([("warm", 0)])
    assert len(await backbone.wait_for_effects(1)) == 1
    before = batches()
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = keyed_events(40, keys=4)
    for event in events:
        await backbone.write([event], per_tx=1)  # a commit, and a wake-up, each
        await asyncio.sleep(0.01)
    writing = loop.time() - started
    rows = await backbone.wait_for_effects(41)
    assert len(rows) == 41
    assert_in_order_per_key(rows[1:])
    # one batch per interval at most while commits keep coming (40 without the spacing)
    assert batches() - before <= writing / interval + 3


async def test_a_polling_relay_is_spaced_by_its_poll_interval_alone(
    backbone: Backbone,
) -> None:
    """With LISTEN off, the poll interval is the only wait between batches: the spacing
    meant for commits' wake-ups does not slow a polling relay down."""

    def batches() -> float:
        return (
            REGISTRY.get_sample_value("outbox_publish_batch_seconds_count", {"service": "test-svc"})
            or 0.0
        )

    backbone.start(backbone.relay(listen=False, poll_interval=0.05, min_batch_interval=5.0).run)
    backbone.start(backbone.consumer("c-polled").run)
    await backbone.write([("warm", 0)])
    assert len(await backbone.wait_for_effects(1)) == 1
    before = batches()
    for event in keyed_events(20, keys=4):
        await backbone.write([event], per_tx=1)
        await asyncio.sleep(0.1)
    rows = await backbone.wait_for_effects(21)
    assert len(rows) == 21
    # spaced by min_batch_interval, two seconds of commits would take one or two batches
    assert batches() - before >= 5


async def test_broker_frozen_for_20_seconds_loses_nothing(
    backbone: Backbone, tansu_broker: Any
) -> None:
    backbone.start(backbone.relay(publish_timeout=3.0).run)
    backbone.start(backbone.consumer("c-frozen").run)
    await backbone.write(keyed_events(50, keys=10))
    assert len(await backbone.wait_for_effects(50)) == 50

    tansu_broker.freeze()
    try:
        loop = asyncio.get_running_loop()
        frozen_until = loop.time() + 20
        n = 0
        while loop.time() < frozen_until:
            await backbone.write([(f"f{n % 7}", 1000 + n)], per_tx=1)
            n += 1
            await asyncio.sleep(0.1)
        assert await backbone.unpublished() > 0  # the broker really was unreachable
    finally:
        tansu_broker.thaw()

    rows = await backbone.wait_for_effects(50 + n, max_seconds=120)
    assert len(rows) == 50 + n, "events were lost"
    assert len({r.event_id for r in rows}) == len(rows), "an event had two effects"
    assert_in_order_per_key(rows)
    assert await backbone.unpublished() == 0


async def test_a_consumer_stops_in_bounded_time_with_the_broker_gone(
    backbone: Backbone, tansu_broker: Any
) -> None:
    """SIGTERM while the database is down and the broker does not answer: the last offset
    commit and the leave are given up after ``shutdown_timeout`` (what was not committed
    is redelivered, and the inbox drops it), so the worker exits instead of waiting for
    the broker forever."""
    database_down = asyncio.Event()

    async def handler(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        assert isinstance(event, Happened)
        if event.n == 3:
            database_down.set()
            raise ConnectionRefusedError("database unreachable")
        await record_effect(event, envelope, uow)

    runner = backbone.consumer("c-stop-frozen", handler, shutdown_timeout=2.0)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    backbone.start(backbone.relay().run)
    await backbone.write([("k", 1), ("k", 2), ("k", 3)], per_tx=3)  # one partition
    await asyncio.wait_for(database_down.wait(), timeout=30)
    assert len(await backbone.wait_for_effects(2)) == 2  # handled, not committed yet
    tansu_broker.freeze()
    try:
        stop.set()
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(task, timeout=60)
        assert asyncio.get_running_loop().time() - started < 10
    finally:
        tansu_broker.thaw()


async def _produce_raw(bootstrap: str, topic: str, records: list[tuple[bytes, list[Any]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(topic, value=value, key=b"k", headers=headers)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, expected: int, seconds: float = 30) -> list[Any]:
    """The records of ``topic`` once ``expected`` have arrived (expecting none: all that
    arrive within ``seconds``)."""
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await reader.start()
    out: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (len(out) < expected or expected == 0) and loop.time() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                out.extend(records)
    finally:
        await reader.stop()
    return out


def _good(backbone: Backbone, key: str, n: int) -> tuple[bytes, list[Any]]:
    env = make_envelope(backbone.model(key=key, n=n), source="test", time=backbone.clock.now())
    return env.value(), env.headers()


def _polled(
    backbone: Backbone, partition: int, offset: int, key: str, n: int
) -> ConsumerRecord[Any, Any]:
    """A good record as a poll would hand it over, at ``partition``/``offset``."""
    value, headers = _good(backbone, key, n)
    return ConsumerRecord(
        backbone.topic, partition, offset, 0, 0, key.encode(), value,
        None, len(key), len(value), headers,
    )  # fmt: skip


async def test_bad_messages_go_to_the_dead_letter_topic_and_the_consumer_goes_on(
    backbone: Backbone,
) -> None:
    bootstrap = backbone.kafka.bootstrap_servers
    good_headers = _good(backbone, "k", 1)[1]
    poison_n = 666
    broken = {"on": True}

    async def handler(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        if getattr(event, "n", None) == poison_n and broken["on"]:
            raise RuntimeError("cannot handle this one")
        await record_effect(event, envelope, uow)

    invalid_body = _good(backbone, "k", 2)[0].replace(b'"n":2', b'"n":"two"')
    await _produce_raw(
        bootstrap,
        backbone.topic,
        [
            (b"{not json", good_headers),  # unparseable body
            (b'{"key":"k","n":1}', [("ce_type", b"test.happened")]),  # missing headers
            (invalid_body, good_headers),  # payload breaks the contract
            _good(backbone, "k", poison_n),  # the handler keeps failing
            _good(backbone, "k", 3),  # a good one after all of them
        ],
    )
    runner = backbone.consumer("c-dlq", handler=handler, max_attempts=3)
    backbone.start(runner.run)
    rows = await backbone.wait_for_effects(1)
    assert [r.n for r in rows] == [3]

    dead = await _read_all(bootstrap, backbone.dlq_topic, 4)
    reasons = [dict(r.headers)["dlq_reason"].decode() for r in dead]
    assert reasons == ["unparseable", "unparseable", "invalid_payload", "handler_error"]
    last = dict(dead[-1].headers)
    assert last["dlq_error_type"] == b"RuntimeError"
    assert last["dlq_consumer"] == b"c-dlq"
    assert last["dlq_attempts"] == b"3"
    assert last["dlq_original_topic"].decode() == backbone.topic

    # Once the handler is fixed, replaying the dead letters applies the poison event.
    broken["on"] = False
    replayed = await replay_dead_letters(
        backbone.kafka, backbone.dlq_topic, consumer="c-dlq", process=runner.replay
    )
    assert replayed == 4
    rows = await backbone.effect_rows()
    assert sorted(r.n for r in rows) == [3, poison_n]
    # the three that can never succeed were dead-lettered again, the poison one was not
    dead = await _read_all(bootstrap, backbone.dlq_topic, 7)
    assert len(dead) == 7


async def test_trace_id_survives_the_hop_from_producer_to_consumer(backbone: Backbone) -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /v1/protocols") as span:
        producer_trace_id = format(span.get_span_context().trace_id, "032x")
        await backbone.write([("traced", 1)])
    backbone.start(backbone.relay().run)
    backbone.start(backbone.consumer("c-trace").run)
    rows = await backbone.wait_for_effects(1)
    assert rows[0].trace_id == producer_trace_id


async def test_batch_handler_applies_a_batch_in_one_transaction_and_isolates_poison(
    backbone: Backbone,
) -> None:
    calls: list[int] = []

    async def batch(items: Any, uow: UnitOfWork) -> None:
        calls.append(len(items))
        for event, envelope in items:
            if event.n == 13:
                raise ValueError("unlucky")
            await record_effect(event, envelope, uow)

    runner = backbone.consumer("c-batch")
    runner.handlers.clear()
    runner.batch_handlers["test.happened"] = batch
    runner.config = replace(runner.config, max_attempts=2)
    await backbone.write([("b", n) for n in range(1, 41)], per_tx=40)
    backbone.start(backbone.relay().run)
    backbone.start(runner.run)
    rows = await backbone.wait_for_effects(39)
    await asyncio.sleep(1)
    rows = await backbone.effect_rows()
    assert sorted(r.n for r in rows) == [n for n in range(1, 41) if n != 13]
    assert max(calls) > 1, "events were never handled as a batch"
    async with backbone.sessions() as s:
        assert await s.scalar(sa.select(sa.func.count()).select_from(effects)) == 39


async def test_events_the_consumer_ignores_do_not_split_a_batch(backbone: Backbone) -> None:
    """A topic interleaves types (protocol.opened, demand.registered, ...): the types a
    consumer ignores between two of its batch type still let them share one batch."""
    calls: list[int] = []

    async def batch(items: Any, uow: UnitOfWork) -> None:
        calls.append(len(items))
        for event, envelope in items:
            await record_effect(event, envelope, uow)

    records = []
    for n in range(1, 9):
        value, headers = _good(backbone, "mixed", n)
        records.append((value, headers))
        ignored = [(k, b"test.ignored" if k == "ce_type" else v) for k, v in headers]
        records.append((value, ignored))
    await _produce_raw(backbone.kafka.bootstrap_servers, backbone.topic, records)
    runner = backbone.consumer("c-mixed")
    runner.handlers.clear()
    runner.batch_handlers["test.happened"] = batch
    backbone.start(runner.run)
    rows = await backbone.wait_for_effects(8)
    assert sorted(r.n for r in rows) == list(range(1, 9))
    assert max(calls) > 1, "every event of the batch type was handled alone"


async def test_a_poll_over_many_partitions_is_one_transaction_and_commits_each(
    backbone: Backbone,
) -> None:
    """A poll brings a few records from each of many partitions: they share one
    transaction, in each partition's order, and every partition's offset advances."""
    transactions: set[int] = set()
    seen: list[tuple[int, int]] = []

    async def handler(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        transactions.add(id(uow))
        seen.append((envelope.subject == "p1", getattr(event, "n", 0)))
        await record_effect(event, envelope, uow)

    records = [
        _polled(backbone, partition, 40 + offset, key, 10 * partition + offset)
        for partition, key in enumerate(("p0", "p1"))
        for offset in range(3)
    ]
    runner = backbone.consumer("c-partitions", handler=handler)
    await runner.process_records(records)
    assert len(transactions) == 1
    assert seen == [(False, 0), (False, 1), (False, 2), (True, 10), (True, 11), (True, 12)]
    assert runner._pending == {
        TopicPartition(backbone.topic, 0): 43,
        TopicPartition(backbone.topic, 1): 43,
    }


async def test_a_failure_inside_a_shared_transaction_keeps_order_and_exactly_once(
    backbone: Backbone,
) -> None:
    failures = {5: 1, 8: 99}  # n=5 fails once then succeeds; n=8 never succeeds
    calls: dict[int, int] = defaultdict(int)

    async def flaky(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        n = getattr(event, "n", 0)
        calls[n] += 1
        if calls[n] <= failures.get(n, 0):
            raise RuntimeError("flaky")
        await record_effect(event, envelope, uow)

    # one transaction, one key, one partition: the runner sees them as one run
    await backbone.write([("run", n) for n in range(1, 13)], per_tx=12)
    backbone.start(backbone.relay().run)
    backbone.start(backbone.consumer("c-run", handler=flaky, max_attempts=3).run)
    rows = await backbone.wait_for_effects(11)
    await asyncio.sleep(1)
    rows = await backbone.effect_rows()
    assert [r.n for r in rows] == [n for n in range(1, 13) if n != 8]
    assert calls[8] == 3
    dead = await _read_all(backbone.kafka.bootstrap_servers, backbone.dlq_topic, 1)
    assert [dict(r.headers)["dlq_reason"] for r in dead] == [b"handler_error"]


Gathered = tuple[Event, Envelope]


def _gathering_runner(
    backbone: Backbone,
    name: str,
    write: Callable[[UnitOfWork, dict[str, Gathered]], Awaitable[None]],
    **config: Any,
) -> ConsumerRunner:
    """A runner whose handler gathers its events for ``write`` at the commit."""
    gathered = GatheredWrites(write)

    async def gather(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        gathered.pending(uow)[str(envelope.id)] = (event, envelope)

    return backbone.consumer(name, handler=gather, **config)


async def _record_gathered(uow: UnitOfWork, items: dict[str, Gathered]) -> None:
    """Record one effect per gathered event."""
    for event, envelope in items.values():
        await record_effect(event, envelope, uow)


async def test_a_gathered_write_failing_at_commit_costs_a_few_transactions_not_one_per_event(
    backbone: Backbone,
) -> None:
    """Handlers gather their writes for the commit (``before_commit``); one event's data
    breaks that write. The run is halved until the bad event is alone: it alone is
    dead-lettered, every other event takes effect once and in order, and it takes a
    handful of transactions, not one per event before it."""
    commits: list[int] = []

    async def write_gathered(uow: UnitOfWork, items: dict[str, Gathered]) -> None:
        commits.append(len(items))
        if any(getattr(event, "n", 0) == 150 for event, _ in items.values()):
            raise ValueError("a value the gathered insert refuses")
        await _record_gathered(uow, items)

    records = [_polled(backbone, 0, n, "gathered", n) for n in range(1, 201)]
    runner = _gathering_runner(backbone, "c-gathered", write_gathered, max_attempts=2)
    await runner.process_records(records)
    rows = await backbone.effect_rows()
    assert [r.n for r in rows] == [n for n in range(1, 201) if n != 150]
    dead = await _read_all(backbone.kafka.bootstrap_servers, backbone.dlq_topic, 1)
    assert [dict(r.headers)["dlq_reason"] for r in dead] == [b"handler_error"]
    assert len(commits) <= 30, commits  # one per event before it would be ~150


async def test_a_gathered_write_not_ready_at_commit_is_waited_out_not_dead_lettered(
    backbone: Backbone,
) -> None:
    """``NotReady`` raised by a write gathered for the commit (reference data of another
    consumer group not there yet) is waited out like a handler's: the event takes effect
    once the data is there, and nothing is dead-lettered."""
    arrived = {"after": 3}  # the reference data is there from the fourth commit on

    async def write_gathered(uow: UnitOfWork, items: dict[str, Gathered]) -> None:
        arrived["after"] -= 1
        if arrived["after"] >= 0 and any(getattr(e, "n", 0) == 2 for e, _ in items.values()):
            raise NotReady("the operator's registration has not arrived yet")
        await _record_gathered(uow, items)

    records = [_polled(backbone, 0, n, "waits", n) for n in range(1, 4)]
    runner = _gathering_runner(backbone, "c-gathered-waits", write_gathered, max_attempts=1)
    await runner.process_records(records)
    assert [r.n for r in await backbone.effect_rows()] == [1, 2, 3]
    for reason in ("handler_error", "not_ready", "permanent_error"):
        labels = {"consumer": "c-gathered-waits", "reason": reason}
        assert REGISTRY.get_sample_value("consumer_dead_lettered_total", labels) is None


@pytest.mark.parametrize("mode", ["per_event", "batch"])
async def test_copies_of_one_event_in_the_same_poll_give_one_effect(
    backbone: Backbone, mode: str
) -> None:
    # a producer retry without idempotence leaves adjacent copies on the partition
    copy = _good(backbone, "dup", 1)
    await _produce_raw(
        backbone.kafka.bootstrap_servers,
        backbone.topic,
        [copy, copy, copy, _good(backbone, "dup", 2)],
    )
    runner = backbone.consumer(f"c-dup-{mode}")
    if mode == "batch":

        async def batch(items: Any, uow: UnitOfWork) -> None:
            for event, envelope in items:
                await record_effect(event, envelope, uow)

        runner.handlers.clear()
        runner.batch_handlers["test.happened"] = batch
    backbone.start(runner.run)
    await backbone.wait_for_effects(2)
    await asyncio.sleep(1)
    assert sorted(r.n for r in await backbone.effect_rows()) == [1, 2]


async def test_stopping_during_retries_neither_dead_letters_nor_commits(
    backbone: Backbone,
) -> None:
    calls = 0

    async def failing(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("down for now")

    await _produce_raw(backbone.kafka.bootstrap_servers, backbone.topic, [_good(backbone, "s", 1)])
    runner = backbone.consumer("c-stop", handler=failing, backoff_initial=2.0, max_attempts=5)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    for _ in range(200):
        if calls:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert calls < 5, "retries were burnt out during shutdown"
    assert await _read_all(backbone.kafka.bootstrap_servers, backbone.dlq_topic, 1) == []

    # the record was not committed: the next member of the group gets it again
    backbone.start(backbone.consumer("c-stop").run)
    assert [r.n for r in await backbone.wait_for_effects(1)] == [1]


async def test_an_event_the_producer_refuses_is_parked_and_the_rest_flow(
    backbone: Backbone,
) -> None:
    class Big(backbone.model):  # type: ignore[name-defined,misc]
        """A payload over the producer's 1 MB request limit."""

        blob: str = "x" * 2_000_000

    async with backbone.uow() as uow:
        uow.publish(backbone.model(key="p", n=1))
        uow.publish(Big(key="p", n=2))
        uow.publish(backbone.model(key="p", n=3))
        await uow.commit()
    backbone.start(backbone.relay().run)
    backbone.start(backbone.consumer("c-park").run)
    rows = await backbone.wait_for_effects(2)
    assert [r.n for r in rows] == [1, 3]
    async with backbone.sessions() as s:
        parked = (
            (
                await s.execute(
                    sa.text("SELECT payload->>'n' FROM outbox WHERE parked_at IS NOT NULL")
                )
            )
            .scalars()
            .all()
        )
    assert parked == ["2"]
    assert await backbone.unpublished() == 1  # parked rows stay for inspection, not in flight


async def test_outbox_depth_and_age_metrics(backbone: Backbone) -> None:
    relay = backbone.relay()
    await backbone.write([("m", n) for n in range(1, 4)])
    await asyncio.sleep(0.2)
    await relay.refresh_stats()
    assert REGISTRY.get_sample_value("outbox_depth", {"service": "test-svc"}) == 3
    age = REGISTRY.get_sample_value(
        "outbox_oldest_unpublished_age_seconds", {"service": "test-svc"}
    )
    assert age is not None
    assert age >= 0.2
    assert await relay.publish_batch() == 3
    await relay.refresh_stats()
    assert REGISTRY.get_sample_value("outbox_depth", {"service": "test-svc"}) == 0
    assert (
        REGISTRY.get_sample_value("outbox_oldest_unpublished_age_seconds", {"service": "test-svc"})
        == 0
    )
    await relay._drop_producer()


async def test_a_relay_publishes_nothing_while_another_holds_the_batch(
    backbone: Backbone,
) -> None:
    """While another replica's batch transaction holds the relay's lock this one
    publishes nothing; once it ends, it publishes the rows."""
    relay = backbone.relay()
    other = backbone.relay()
    await backbone.write([("r", n) for n in range(1, 4)])
    try:
        async with backbone.engine.connect() as conn, conn.begin():
            await conn.execute(
                sa.select(sa.func.pg_try_advisory_xact_lock(other._lock_key))
            )  # the other replica, mid-batch
            assert await relay.publish_batch() == 0
            assert await backbone.unpublished() == 3
        assert await relay.publish_batch() == 3
        assert await backbone.unpublished() == 0
    finally:
        await relay._drop_producer()


async def test_two_members_of_a_group_share_the_work_and_survive_a_rebalance(
    backbone: Backbone,
) -> None:
    backbone.start(backbone.relay().run)
    first_stop = asyncio.Event()
    first = backbone.consumer("c-group")
    first_task = asyncio.create_task(first.run(first_stop))
    backbone.start(backbone.consumer("c-group").run)
    await backbone.write(keyed_events(150, keys=30))
    await backbone.wait_for_effects(40)
    first_stop.set()  # one member leaves mid-stream: its partitions move to the other
    await asyncio.wait_for(first_task, 15)
    await backbone.write(keyed_events(150, keys=30))
    rows = await backbone.wait_for_effects(300, max_seconds=90)
    assert len(rows) == 300
    assert len({r.event_id for r in rows}) == 300
    processed = REGISTRY.get_sample_value(
        "consumer_processed_total", {"consumer": "c-group", "event_type": "test.happened"}
    )
    assert processed is not None
    assert processed >= 300


async def test_an_event_not_ready_waits_without_attempts_or_dead_letters(
    backbone: Backbone,
) -> None:
    calls: dict[int, int] = defaultdict(int)

    async def waits_for_reference_data(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        n = getattr(event, "n", 0)
        calls[n] += 1
        if n == 3 and calls[n] <= 6:  # more failures than max_attempts allows
            raise NotReady("reference data has not arrived yet")
        await record_effect(event, envelope, uow)

    await backbone.write([("ready", n) for n in range(1, 6)], per_tx=5)
    backbone.start(backbone.relay().run)
    backbone.start(
        backbone.consumer("c-ready", handler=waits_for_reference_data, max_attempts=2).run
    )
    rows = await backbone.wait_for_effects(5)
    assert [r.n for r in rows] == [1, 2, 3, 4, 5]  # order held while 3 waited
    assert calls[3] == 7
    assert await _read_all(backbone.kafka.bootstrap_servers, backbone.dlq_topic, 0, seconds=2) == []


async def test_an_event_never_ready_is_dead_lettered_after_the_wait_and_the_rest_flow(
    backbone: Backbone,
) -> None:
    async def needs_missing_data(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        if getattr(event, "n", 0) == 2:
            raise NotReady("reference data never arrives")
        await record_effect(event, envelope, uow)

    await backbone.write([("never", n) for n in range(1, 4)], per_tx=3)
    backbone.start(backbone.relay().run)
    backbone.start(
        backbone.consumer("c-never", handler=needs_missing_data, not_ready_max_seconds=1.0).run
    )
    rows = await backbone.wait_for_effects(2)
    assert [r.n for r in rows] == [1, 3]
    dead = await _read_all(backbone.kafka.bootstrap_servers, backbone.dlq_topic, 1)
    assert [dict(r.headers)["dlq_reason"] for r in dead] == [b"not_ready"]


async def test_after_commit_actions_run_once_and_only_if_the_unit_commits(
    backbone: Backbone,
) -> None:
    ran: list[str] = []
    async with backbone.uow() as uow:
        uow.after_commit(lambda: ran.append("rolled back"))
    async with backbone.uow() as uow:
        uow.after_commit(lambda: ran.append("committed"))
        await uow.commit()
        await uow.commit()  # a second commit has nothing left to run
    assert ran == ["committed"]


async def test_before_commit_actions_write_and_publish_in_the_transaction(
    backbone: Backbone,
) -> None:
    """Actions registered with ``before_commit`` run at the commit, in order, before the
    outbox is written, so what they publish goes out with the transaction; one that
    fails fails the commit, and nothing of the transaction is kept."""
    ran: list[int] = []

    async def publish(n: int) -> None:
        ran.append(n)
        uow.publish(backbone.model(key="bc", n=n))

    async with backbone.uow() as uow:
        uow.publish(backbone.model(key="bc", n=1))
        uow.before_commit(lambda: publish(2))
        uow.before_commit(lambda: publish(3))
        assert ran == []
        await uow.commit()
    assert ran == [2, 3]

    async def fail() -> None:
        raise RuntimeError("cannot write what the handlers gathered")

    async with backbone.uow() as uow:
        uow.publish(backbone.model(key="bc", n=4))
        uow.before_commit(fail)
        with pytest.raises(RuntimeError):
            await uow.commit()
    async with backbone.sessions() as s:
        payloads = (
            (await s.execute(sa.text("SELECT payload FROM outbox WHERE key = 'bc' ORDER BY id")))
            .scalars()
            .all()
        )
    assert [p["n"] for p in payloads] == [1, 2, 3]


async def test_a_failed_savepoint_drops_its_events_and_keeps_the_rest(backbone: Backbone) -> None:
    counted: list[int] = []
    async with backbone.uow() as uow:
        uow.publish(backbone.model(key="sp", n=1))

        async def failing_outcome() -> None:
            async with uow.savepoint():
                uow.publish(backbone.model(key="sp", n=2))
                uow.after_commit(lambda: counted.append(2))
                raise RuntimeError("this outcome cannot be recorded")

        with pytest.raises(RuntimeError):
            await failing_outcome()
        async with uow.savepoint():
            uow.publish(backbone.model(key="sp", n=3))
            uow.after_commit(lambda: counted.append(3))
        await uow.commit()
    async with backbone.sessions() as s:
        payloads = (
            (await s.execute(sa.text("SELECT payload FROM outbox WHERE key = 'sp' ORDER BY id")))
            .scalars()
            .all()
        )
    assert [p["n"] for p in payloads] == [1, 3]
    assert counted == [3]


def _lanes_runner(
    backbone: Backbone, name: str, handler: Handler, *, lanes: int, **config: Any
) -> ConsumerRunner:
    """A runner splitting every poll into ``lanes`` lanes, one partition each (as ``run()``
    would once it has read the topic's metadata)."""
    runner = backbone.consumer(name, handler=handler, lanes=lanes, records_per_lane=1, **config)
    runner._partition_counts = {backbone.topic: lanes}
    return runner


async def _backlog(backbone: Backbone, events: list[tuple[str, int]]) -> None:
    """Put ``events`` on the broker before any consumer starts, as a backlog."""
    await backbone.write(events, per_tx=len(events))
    relay_stop = asyncio.Event()
    relay = asyncio.create_task(backbone.relay(batch_size=500).run(relay_stop))
    try:
        await backbone.wait_published()
    finally:
        relay_stop.set()
        await relay


async def test_a_backlog_is_handled_in_concurrent_lanes_exactly_once_and_in_order(
    backbone: Backbone,
) -> None:
    """Big polls are split by partition into lanes run concurrently, each in its own
    transaction; every partition's offsets are committed, and each key keeps its order."""
    events = keyed_events(150, keys=30)
    await _backlog(backbone, events)
    in_flight = peak = 0

    async def slow(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.005)  # a database round trip
            await record_effect(event, envelope, uow)
        finally:
            in_flight -= 1

    runner = backbone.consumer("c-lanes", handler=slow, lanes=3, records_per_lane=2)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    rows = await backbone.wait_for_effects(150)
    stop.set()
    await asyncio.wait_for(task, 15)
    assert len(rows) == len({r.event_id for r in rows}) == 150
    assert_in_order_per_key(rows)
    assert peak > 1, "the lanes never ran at the same time"
    assert (REGISTRY.get_sample_value("consumer_lanes_total", {"consumer": "c-lanes"}) or 0) > 0

    # every lane's offsets were committed: the group's next member has nothing to redo
    again = backbone.consumer("c-lanes")
    backbone.start(again.run)
    await asyncio.sleep(3)
    labels = {"consumer": "c-lanes"}
    assert REGISTRY.get_sample_value("consumer_duplicates_total", labels) in (None, 0.0)
    assert len(await backbone.effect_rows()) == 150


async def test_stopping_while_one_lane_retries_keeps_the_other_lanes_work(
    backbone: Backbone,
) -> None:
    """One lane backs off on a failing event while the others finish their partitions;
    stopping then dead-letters nothing and commits only what was done."""
    from rn623_events.consumer import _Stopped

    # the failing partition comes first: handled in one pass, it would hold up the rest
    batches = {
        TopicPartition(backbone.topic, 0): [
            _polled(backbone, 0, 10 + i, "bad", i + 1) for i in range(4)
        ],
        TopicPartition(backbone.topic, 1): [
            _polled(backbone, 1, 20 + i, "one", i + 1) for i in range(3)
        ],
        TopicPartition(backbone.topic, 2): [
            _polled(backbone, 2, 30 + i, "two", i + 1) for i in range(3)
        ],
    }

    async def fails_for_one_key(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        if getattr(event, "key", "") == "bad":
            raise RuntimeError("down for now")
        await record_effect(event, envelope, uow)

    runner = _lanes_runner(
        backbone,
        "c-lanes-stop",
        fails_for_one_key,
        lanes=3,
        backoff_initial=30.0,
        backoff_max=30.0,
        max_attempts=5,
    )
    task = asyncio.create_task(runner.process_poll(batches))
    rows = await backbone.wait_for_effects(6, max_seconds=20)  # inside the 30 s backoff
    assert sorted((r.key, r.n) for r in rows) == [(k, n) for k in ("one", "two") for n in (1, 2, 3)]
    runner._stop.set()  # the worker shuts down
    with pytest.raises(_Stopped):
        await asyncio.wait_for(task, 10)
    assert runner._pending == {
        TopicPartition(backbone.topic, 1): 23,
        TopicPartition(backbone.topic, 2): 33,
    }
    assert await _read_all(backbone.kafka.bootstrap_servers, backbone.dlq_topic, 1, 2) == []


async def _deadlock_reported_by_postgres(uow: UnitOfWork) -> None:
    """Make PostgreSQL abort the transaction as it does the victim of a deadlock."""
    await uow.session.execute(
        sa.text(
            "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = 'deadlock_detected';"
            " END $$"
        )
    )


async def test_a_transaction_conflict_is_run_again_without_counting_attempts(
    backbone: Backbone,
) -> None:
    """A deadlock victim is not the event's fault: more conflicts than ``max_attempts``
    allows still end in one effect, with no attempt counted and nothing dead-lettered."""
    conflicts_left = 4

    async def conflicting(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        nonlocal conflicts_left
        if getattr(event, "n", None) == 2 and conflicts_left:
            conflicts_left -= 1
            await _deadlock_reported_by_postgres(uow)
        await record_effect(event, envelope, uow)

    await backbone.write([("k", 1), ("k", 2), ("k", 3)])
    backbone.start(backbone.relay().run)
    backbone.start(backbone.consumer("c-conflict", handler=conflicting, max_attempts=2).run)
    rows = await backbone.wait_for_effects(3)
    assert [(r.key, r.n) for r in rows] == [("k", 1), ("k", 2), ("k", 3)]
    assert conflicts_left == 0
    labels = {"consumer": "c-conflict"}
    assert REGISTRY.get_sample_value("consumer_conflicts_total", labels) == 4
    assert REGISTRY.get_sample_value("consumer_retried_total", labels) in (None, 0.0)
    assert await _read_all(backbone.kafka.bootstrap_servers, backbone.dlq_topic, 0, 2) == []


async def test_an_event_that_only_ever_conflicts_is_dead_lettered_as_such(
    backbone: Backbone,
) -> None:
    """The guard against a livelock: past ``max_conflicts`` the event goes to the
    dead-letter topic with reason ``transaction_conflict`` and the rest flow."""

    async def always_conflicting(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        if getattr(event, "n", None) == 2:
            await _deadlock_reported_by_postgres(uow)
        await record_effect(event, envelope, uow)

    await backbone.write([("k", 1), ("k", 2), ("k", 3)])
    backbone.start(backbone.relay().run)
    runner = backbone.consumer(
        "c-livelock", handler=always_conflicting, max_conflicts=3, conflict_backoff_max=0.02
    )
    backbone.start(runner.run)
    rows = await backbone.wait_for_effects(2)
    assert [(r.key, r.n) for r in rows] == [("k", 1), ("k", 3)]
    dead = await _read_all(backbone.kafka.bootstrap_servers, backbone.dlq_topic, 1)
    assert [dict(r.headers)["dlq_reason"] for r in dead] == [b"transaction_conflict"]


async def test_two_lanes_that_deadlock_both_commit_and_count_no_attempt(
    backbone: Backbone,
) -> None:
    """Two lanes lock the same two rows in opposite orders: PostgreSQL aborts one, the
    runner runs it again, and both events take effect, with ``max_attempts=1``."""
    batches = {
        TopicPartition(backbone.topic, 0): [_polled(backbone, 0, 5, "a", 1)],
        TopicPartition(backbone.topic, 1): [_polled(backbone, 1, 7, "b", 1)],
    }
    both_hold_their_first_lock = asyncio.Barrier(2)
    first_call: set[str] = set()

    async def locks_in_opposite_orders(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        key = getattr(event, "key", "")
        first, second = (1, 2) if key == "a" else (2, 1)
        await uow.session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": first})
        if key not in first_call:
            first_call.add(key)
            await both_hold_their_first_lock.wait()
        await uow.session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": second})
        await record_effect(event, envelope, uow)

    runner = _lanes_runner(
        backbone, "c-lanes-deadlock", locks_in_opposite_orders, lanes=2, max_attempts=1
    )
    attempts_before_own_path: list[int] = []
    process_one = runner._process_one

    async def spy(*args: Any) -> None:
        attempts_before_own_path.append(args[4] if len(args) > 4 else 0)
        await process_one(*args)

    runner._process_one = spy  # type: ignore[method-assign]
    await asyncio.wait_for(runner.process_poll(batches), 30)
    # the victim took the per-event path with no attempt counted against it
    assert attempts_before_own_path == [0]
    rows = await backbone.effect_rows()
    assert sorted((r.key, r.n) for r in rows) == [("a", 1), ("b", 1)]
    labels = {"consumer": "c-lanes-deadlock"}
    assert REGISTRY.get_sample_value("consumer_conflicts_total", labels) == 1
    assert REGISTRY.get_sample_value("consumer_retried_total", labels) in (None, 0.0)
    assert runner._pending == {
        TopicPartition(backbone.topic, 0): 6,
        TopicPartition(backbone.topic, 1): 8,
    }
    assert await _read_all(backbone.kafka.bootstrap_servers, backbone.dlq_topic, 0, 2) == []


async def test_a_lock_a_unit_holds_is_released_when_it_ends_committed_or_not(
    backbone: Backbone,
) -> None:
    lock = asyncio.Lock()
    async with backbone.uow() as uow:
        await uow.hold(lock)
        await uow.hold(lock)  # held already: no second acquire (it would wait forever)
        assert lock.locked()
        await uow.commit()
        assert lock.locked()  # until the unit ends, commit included
    assert not lock.locked()

    async def failing_unit() -> None:
        async with backbone.uow() as uow:
            await uow.hold(lock)
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        await failing_unit()
    assert not lock.locked()
    # a second unit waits for the first to end
    order: list[str] = []

    async def unit(name: str, pause: float) -> None:
        async with backbone.uow() as uow:
            await uow.hold(lock)
            order.append(f"{name} holds")
            await asyncio.sleep(pause)
            order.append(f"{name} ends")

    await asyncio.gather(unit("first", 0.2), unit("second", 0))
    assert order == ["first holds", "first ends", "second holds", "second ends"]


async def _committed_total(bootstrap: str, group: str, topic: str) -> int:
    """The sum of ``group``'s committed offsets over ``topic``'s partitions."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        await reader.topics()
        total = 0
        for partition in reader.partitions_for_topic(topic) or ():
            total += await reader.committed(TopicPartition(topic, partition)) or 0
        return total
    finally:
        await reader.stop()


async def test_offsets_are_committed_while_running_once_the_interval_passes(
    backbone: Backbone,
) -> None:
    """Commits are spaced (``commit_interval_seconds``), not withheld: a running consumer's
    offsets reach the end of what it handled without a rebalance or a stop."""
    backbone.start(backbone.relay().run)
    backbone.start(backbone.consumer("c-spaced-commits", commit_interval_seconds=0.5).run)
    await backbone.write(keyed_events(30, keys=6))
    assert len(await backbone.wait_for_effects(30)) == 30
    bootstrap = backbone.kafka.bootstrap_servers
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    committed = 0
    while committed < 30 and loop.time() < deadline:
        await asyncio.sleep(0.3)
        committed = await _committed_total(bootstrap, "c-spaced-commits", backbone.topic)
    assert committed == 30
