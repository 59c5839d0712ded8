"""Idempotent consumer runner: inbox + effect in one transaction, then the offset commit.

For every record: parse the envelope, skip types nobody handles, validate the payload
against its contract, and run the handler inside a unit of work that first claims
``(consumer, event_id)`` in the inbox. A redelivered event finds its claim and is
skipped. A failing handler is retried with backoff; after ``max_attempts`` the record
goes to the dead-letter topic with the reason in its headers and the consumer moves on.
A database that is down is not the message's fault: the runner waits for it instead of
dead-lettering; nor is a transaction PostgreSQL aborted to resolve a conflict with another
(a deadlock, a serialization failure): it is run again without counting an attempt.
Offsets are committed only after the records before them are done.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError, KafkaError
from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rn623_events.clock import Clock
from rn623_events.db import (
    UnitOfWork,
    inbox_table,
    is_infrastructure_error,
    is_transaction_conflict,
)
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope, parse_record
from rn623_events.registry import REGISTRY, Event, Registry
from rn623_events.settings import KafkaSettings
from rn623_events.tracecontext import context_from_headers
from rn623_events.worker import sleep_unless_stopped

log = logging.getLogger(__name__)
tracer = trace.get_tracer("rn623_events.consumer")

PROCESSED = Counter("consumer_processed_total", "Events handled", ["consumer", "event_type"])
DUPLICATES = Counter("consumer_duplicates_total", "Redelivered events skipped", ["consumer"])
RETRIED = Counter("consumer_retried_total", "Handler attempts that failed", ["consumer"])
CONFLICTS = Counter(
    "consumer_conflicts_total",
    "Transactions aborted by a deadlock or serialization failure and run again",
    ["consumer"],
)
DEAD_LETTERED = Counter(
    "consumer_dead_lettered_total", "Events sent to the dead-letter topic", ["consumer", "reason"]
)
LAG = Gauge("consumer_lag", "Records behind the partition end", ["consumer", "topic", "partition"])
WAITING = Gauge(
    "consumer_waiting_not_ready", "1 while an event waits for its precondition", ["consumer"]
)
LANES = Counter(
    "consumer_lanes_total", "Concurrent lanes run for polls big enough to split", ["consumer"]
)
HANDLE_SECONDS = Histogram("consumer_handle_seconds", "Time to handle one event", ["consumer"])

Handler = Callable[[Event, Envelope, UnitOfWork], Awaitable[None]]
BatchHandler = Callable[[Sequence[tuple[Event, Envelope]], UnitOfWork], Awaitable[None]]


E = TypeVar("E", bound=Event)


def typed_handler(model: type[E], handle: Callable[[E, UnitOfWork], Awaitable[None]]) -> Handler:
    """A handler for one contract: refuses (dead-letters) any other payload type."""

    async def run(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        if not isinstance(event, model):
            raise PermanentError(f"unexpected {envelope.type} payload from {envelope.topic}")
        await handle(event, uow)

    return run


class PermanentError(Exception):
    """Raised by a handler for an event that can never succeed: dead-letter it at once."""


class NotReady(Exception):
    """Raised by a handler whose precondition is not met yet, e.g. reference data another
    consumer has still to apply: the runner waits and retries without counting attempts
    (the partition waits, so order holds), for ``not_ready_max_seconds`` at most; then
    the event is dead-lettered with reason ``not_ready``, to be replayed."""


@dataclass(frozen=True)
class ConsumerConfig:
    """Tuning of a consumer runner."""

    max_attempts: int = 5
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    infrastructure_backoff_max: float = 10.0
    max_records: int = 200
    poll_timeout_ms: int = 500
    auto_offset_reset: str = "earliest"
    # A group join waits about half the session timeout; tests shorten both.
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # How long the broker may hold a fetch while no record arrives. Apache Kafka answers
    # as soon as a record is there, so this costs no latency there; some brokers (Tansu)
    # hold the fetch for the whole wait, so keep it short.
    fetch_max_wait_ms: int = 100
    # Offsets are committed at most this often while records flow, and always when
    # partitions are revoked and at shutdown. A crash redelivers at most this much, which
    # the inbox drops; a commit after every poll cost a broker round trip per poll.
    commit_interval_seconds: float = 1.0
    # How long an event whose handler says NotReady may hold its partition.
    not_ready_max_seconds: float = 300.0
    # At shutdown, how long the last offset commit, then leaving the group, may wait for
    # the broker (aiokafka would wait for an unreachable one forever).
    shutdown_timeout: float = 10.0
    # Under a backlog, a poll's partitions are split into up to this many lanes, each
    # handled in its own transaction, concurrently; the partitions holding the same keys
    # (of every topic) stay in one lane, so one aggregate's order holds. A consumer whose
    # events wait on database round trips then keeps up. Two lanes locking rows shared by
    # several aggregates may deadlock: PostgreSQL aborts one, which is run again.
    lanes: int = 1
    # The fewest records a lane is given: a small poll stays one transaction, the
    # cheapest way to handle it.
    records_per_lane: int = 8
    # An event whose transaction PostgreSQL keeps aborting to resolve conflicts is run
    # again this many times (not counted as attempts), then dead-lettered with reason
    # ``transaction_conflict``; conflicts need concurrent transactions, so this is a guard
    # against a livelock, not a limit ever met in normal work.
    max_conflicts: int = 50
    conflict_backoff_max: float = 1.0


# One statement for any number of events (arrays, unnested), so it is prepared once; a
# multi-row VALUES insert would be compiled again by SQLAlchemy for every batch.
_INBOX_CLAIM = sa.text(
    """
    INSERT INTO inbox (consumer, event_id, event_type)
    SELECT :consumer, e, t
    FROM unnest(CAST(:event_ids AS uuid[]), CAST(:types AS text[])) AS claims (e, t)
    ON CONFLICT DO NOTHING
    RETURNING event_id
    """
)


class _Stopped(Exception):
    """The runner is stopping: leave the current record unprocessed and uncommitted."""


def _ignore(record: ConsumerRecord[Any, Any]) -> None:
    """Offset tracker that tracks nothing (replayed records)."""


class _RunFailedAt(Exception):
    """The handler of the event at ``index`` of a shared-transaction run failed."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class _CommitFailed(Exception):
    """The commit of a shared-transaction run failed for a reason of the events' own (a
    write the handlers gathered for the commit, ``UnitOfWork.before_commit``): which
    event is at fault is not known."""


@dataclass
class _Failure:
    reason: str
    error: BaseException
    attempts: int


def lane_groups(partition_counts: Mapping[str, int]) -> int:
    """How many groups of partitions lanes may share out: the greatest common divisor of
    the subscribed topics' partition counts (0: unknown, no lanes).

    Events are keyed by their aggregate, and the default partitioner puts a key in
    partition ``murmur2(key) % n`` of an n-partition topic; partition ``p % g`` of every
    topic whose count is a multiple of ``g`` therefore holds the same aggregates. Lanes
    given whole groups never handle one aggregate's events of two topics at once."""
    counts = list(partition_counts.values())
    if not counts or 0 in counts:
        return 0
    return math.gcd(*counts)


def split_into_lanes(
    batches: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]],
    lanes: int,
    records_per_lane: int,
    groups: int,
) -> list[list[ConsumerRecord[Any, Any]]]:
    """Share a poll's partition groups (``partition % groups``, see ``lane_groups``)
    among at most ``lanes`` lanes of about equal size, with at least ``records_per_lane``
    records each where the poll allows; every partition's records stay together and in
    order in one lane, and so do those of one group across topics."""
    total = sum(len(records) for records in batches.values())
    grouped: dict[int, list[ConsumerRecord[Any, Any]]] = {}
    for tp, records in batches.items():
        grouped.setdefault(tp.partition % groups if groups > 0 else 0, []).extend(records)
    count = max(1, min(lanes, total // max(1, records_per_lane), len(grouped)))
    if count == 1:
        return [[record for records in batches.values() for record in records]] if total else []
    shares: list[list[ConsumerRecord[Any, Any]]] = [[] for _ in range(count)]
    # the largest groups first, each to the lane with the fewest records so far
    for records in sorted(grouped.values(), key=len, reverse=True):
        min(shares, key=len).extend(records)
    return [share for share in shares if share]


class ConsumerRunner:
    """Runs one consumer group over some topics, dispatching by CloudEvents ``type``."""

    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        sessions: async_sessionmaker[AsyncSession],
        kafka: KafkaSettings,
        clock: Clock,
        source: str,
        dead_letters: DeadLetterPublisher,
        handlers: Mapping[str, Handler] | None = None,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        registry: Registry | None = None,
        config: ConsumerConfig | None = None,
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self.sessions = sessions
        self.kafka = kafka
        self.clock = clock
        self.source = source
        self.dead_letters = dead_letters
        self.handlers = dict(handlers or {})
        self.batch_handlers = dict(batch_handlers or {})
        self.registry = registry if registry is not None else REGISTRY
        self.config = config or ConsumerConfig()
        self._consumer: AIOKafkaConsumer | None = None
        self._pending: dict[TopicPartition, int] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._stop = asyncio.Event()
        self._last_commit = -math.inf  # time.monotonic() of the last commit
        self._waiting: set[Any] = set()  # ids of events waiting for their precondition
        # partitions per subscribed topic, from the broker's metadata (lanes need them)
        self._partition_counts: dict[str, int] = {}

    # ---- lifecycle -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set; commits what was processed before returning."""
        self._stop = stop or asyncio.Event()
        consumer = AIOKafkaConsumer(
            group_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset=self.config.auto_offset_reset,
            session_timeout_ms=self.config.session_timeout_ms,
            heartbeat_interval_ms=self.config.heartbeat_interval_ms,
            fetch_max_wait_ms=self.config.fetch_max_wait_ms,
            **self.kafka.client_kwargs(),
        )
        self._consumer = consumer
        consumer.subscribe(self.topics, listener=_CommitOnRevoke(self))
        await consumer.start()
        try:
            while not self._stop.is_set():
                batches = await consumer.getmany(
                    timeout_ms=self.config.poll_timeout_ms, max_records=self.config.max_records
                )
                if self.config.lanes > 1:
                    self._partition_counts = {
                        topic: len(consumer.partitions_for_topic(topic) or ())
                        for topic in self.topics
                    }
                try:
                    await self.process_poll(batches)
                except _Stopped:
                    break  # the record being handled stays uncommitted and is redelivered
                await self.commit_if_due()
                self._update_lag(consumer)
        finally:
            try:
                await self._within_shutdown(self.commit(), "last offset commit")
            finally:
                await self._within_shutdown(consumer.stop(), "leaving the group")
                self._consumer = None

    async def _within_shutdown(self, step: Coroutine[Any, Any, None], what: str) -> None:
        """A shutdown step the broker must answer in time; given up after that (offsets
        not committed are redelivered, and the inbox drops what was handled)."""
        try:
            await asyncio.wait_for(step, timeout=self.config.shutdown_timeout)
        except TimeoutError:
            log.warning(
                "broker did not answer at shutdown; gave up",
                extra={"consumer": self.name, "step": what},
            )

    async def commit_if_due(self) -> None:
        """Commit if ``commit_interval_seconds`` have passed since the last commit."""
        now = time.monotonic()
        if self._pending and now - self._last_commit >= self.config.commit_interval_seconds:
            self._last_commit = now
            await self.commit()

    async def commit(self) -> None:
        """Commit the offsets of everything processed so far.

        A failed commit (the group rebalanced, the broker is unreachable) is not fatal:
        the offsets are kept for the next commit, and whatever another member re-reads
        meanwhile is dropped by the inbox.
        """
        if self._consumer is None or not self._pending:
            return
        offsets, self._pending = self._pending, {}
        assigned = self._consumer.assignment()
        offsets = {tp: off for tp, off in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (KafkaError, IllegalStateError) as exc:
            for tp, offset in offsets.items():
                self._pending.setdefault(tp, offset)
            log.warning(
                "offset commit failed; will retry",
                extra={"consumer": self.name, "error_type": type(exc).__name__},
            )

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = self._positions.get(tp, high)
            LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(0, high - position))

    # ---- processing ------------------------------------------------------------------

    async def process_poll(
        self, batches: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]
    ) -> None:
        """Handle one poll's records: in one pass when the poll is small (one transaction
        when nothing fails; a poll brings a few records from each of many partitions, and
        a transaction per partition cost more than the records did), else in concurrent
        lanes of whole partition groups (``ConsumerConfig.lanes``, ``lane_groups``)."""
        lanes = split_into_lanes(
            batches,
            self.config.lanes,
            self.config.records_per_lane,
            lane_groups(self._partition_counts),
        )
        if len(lanes) <= 1:
            await self.process_records(lanes[0] if lanes else [])
            return
        LANES.labels(self.name).inc(len(lanes))
        results = await asyncio.gather(
            *(self.process_records(lane) for lane in lanes), return_exceptions=True
        )
        stopped = False
        for result in results:
            if isinstance(result, _Stopped):
                stopped = True
            elif isinstance(result, BaseException):
                raise result
        if stopped:  # every lane stops at its next pause: the runner is shutting down
            raise _Stopped

    async def process_records(
        self, records: Sequence[ConsumerRecord[Any, Any]], *, track_offsets: bool = True
    ) -> None:
        """Handle records in order (those of each partition in their partition's order),
        then mark their offsets for commit.

        ``track_offsets=False`` is for records that did not come from this runner's
        subscription (dead-letter replay): their offsets must not be committed.

        Consecutive events share one transaction, each handled in its own savepoint;
        at the first failure what came before it is committed and the failing event
        takes the per-event path (retries, then the dead-letter topic), so order holds.
        """
        done = self._done if track_offsets else _ignore
        decoded = [(record, *self._decode(record)) for record in records]
        i = 0
        while i < len(decoded):
            record, envelope, event, failure = decoded[i]
            if failure is None and envelope is not None and envelope.type in self.batch_handlers:
                j = i + 1
                while j < len(decoded) and decoded[j][3] is None:
                    env = decoded[j][1]
                    # events this consumer ignores do not end the batch: on a topic that
                    # interleaves types, a batch would otherwise never be more than one
                    if env is None or (env.type != envelope.type and self._handles(env.type)):
                        break
                    j += 1
                group = [
                    (ev, env, rec)
                    for rec, env, ev, _ in decoded[i:j]
                    if env is not None and env.type == envelope.type
                ]
                if not await self._handle_batch(group):
                    for ev, env, rec in group:
                        await self._process_one(rec, env, ev, None)
                for record in records[i:j]:
                    done(record)
                i = j
                continue
            if failure is None:
                j = i
                while j < len(decoded) and decoded[j][3] is None:
                    env = decoded[j][1]
                    if env is None or env.type in self.batch_handlers:
                        break
                    j += 1
                handled, handler_failed = await self._handle_run(decoded[i:j])
                if handled:
                    for record in records[i : i + handled]:
                        done(record)
                    i += handled
                if i == j:
                    continue
                # the event at i failed in the shared transaction: give it its own path
                record, envelope, event, failure = decoded[i]
                await self._process_one(record, envelope, event, None, int(handler_failed))
                done(record)
                i += 1
                continue
            await self._process_one(record, envelope, event, failure)
            done(record)
            i += 1

    async def _handle_run(
        self, run: Sequence[tuple[Any, Envelope | None, Any, Any]]
    ) -> tuple[int, bool]:
        """Handle a run of events in one transaction.

        Returns how many events were committed and whether the next one's handler
        failed (as opposed to the transaction itself).

        The inbox claims of the whole run are one statement. If the handler of the k-th
        event fails, the transaction is rolled back and the k events before it are
        handled again and committed without it (handlers must not act outside their
        transaction, which retries require anyway). If the commit itself fails for the
        events' own reason (a write gathered for the commit), the first half of the run is
        tried again, and so on: a bad event costs a few transactions, not one per event
        before it. A conflict or a lost connection aborts the transaction itself: then the
        first event takes the per-event path.
        """
        items = [(envelope, event) for _, envelope, event, _ in run if envelope is not None]
        upto, handler_failed = len(items), False
        while upto > 0:
            try:
                return await self._commit_run(items[:upto]), handler_failed
            except _RunFailedAt as failed:
                upto, handler_failed = failed.index, True
            except _CommitFailed:
                upto, handler_failed = upto // 2, False
            except Exception as exc:  # the transaction itself failed: nothing was committed
                if is_transaction_conflict(exc):
                    CONFLICTS.labels(self.name).inc()
                log.info(
                    "shared transaction failed; handling events one by one",
                    extra={"consumer": self.name, "error_type": type(exc).__name__},
                )
                return 0, False
        return 0, handler_failed

    async def _commit_run(self, items: Sequence[tuple[Envelope, Any]]) -> int:
        counts: dict[str, int] = {}
        async with UnitOfWork(self.sessions, source=self.source, clock=self.clock) as uow:
            fresh = await self._claim(uow, [env for env, _ in items if env.type in self.handlers])
            for index, (envelope, event) in enumerate(items):
                handler = self.handlers.get(envelope.type)
                if handler is None:
                    continue
                if envelope.id not in fresh:
                    DUPLICATES.labels(self.name).inc()
                    continue
                fresh.discard(envelope.id)  # a second copy later in the same run is a duplicate
                uow.cause = envelope
                try:
                    with self._span(envelope), HANDLE_SECONDS.labels(self.name).time():
                        await handler(event, envelope, uow)
                except Exception as exc:
                    if is_infrastructure_error(exc) or is_transaction_conflict(exc):
                        raise  # the transaction itself is gone: nothing can be committed
                    raise _RunFailedAt(index) from exc
                counts[envelope.type] = counts.get(envelope.type, 0) + 1
            try:
                await uow.commit()
            except Exception as exc:
                if is_infrastructure_error(exc) or is_transaction_conflict(exc):
                    raise
                raise _CommitFailed from exc
        for event_type, count in counts.items():
            PROCESSED.labels(self.name, event_type).inc(count)
        return len(items)

    async def _claim(self, uow: UnitOfWork, envelopes: Sequence[Envelope]) -> set[Any]:
        """Record the events in the inbox; return the ids not seen before."""
        if not envelopes:
            return set()
        claimed = await uow.session.execute(
            _INBOX_CLAIM,
            {
                "consumer": self.name,
                "event_ids": [env.id for env in envelopes],
                "types": [env.type for env in envelopes],
            },
        )
        return {row[0] for row in claimed}

    async def replay(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Handle dead-lettered records again (see ``dlq.replay_dead_letters``)."""
        await self.process_records(records, track_offsets=False)

    def _done(self, record: ConsumerRecord[Any, Any]) -> None:
        tp = TopicPartition(record.topic, record.partition)
        self._pending[tp] = self._positions[tp] = record.offset + 1

    def _handles(self, event_type: str) -> bool:
        """Whether this consumer does anything with events of ``event_type``."""
        return event_type in self.handlers or event_type in self.batch_handlers

    def _decode(
        self, record: ConsumerRecord[Any, Any]
    ) -> tuple[Envelope | None, Any, _Failure | None]:
        try:
            envelope = parse_record(record.topic, record.key, record.value, record.headers)
        except Exception as exc:  # EnvelopeError, or worse (RecursionError on deep JSON)
            return None, None, _Failure("unparseable", exc, 0)
        if not self._handles(envelope.type):
            return envelope, None, None
        try:
            return envelope, envelope.decode(self.registry), None
        except Exception as exc:  # ValidationError, UnknownEventError, a validator's bug
            return envelope, None, _Failure("invalid_payload", exc, 0)

    async def _process_one(
        self,
        record: ConsumerRecord[Any, Any],
        envelope: Envelope | None,
        event: Event | None,
        failure: _Failure | None,
        attempts_made: int = 0,
    ) -> None:
        if failure is None and envelope is not None and event is not None:
            failure = await self._handle_with_retries(event, envelope, attempts_made)
        elif failure is None:
            return  # an event type this consumer does not handle
        if failure is not None:
            await self._dead_letter(record, failure)

    async def _handle_with_retries(
        self, event: Event, envelope: Envelope, attempts_made: int = 0
    ) -> _Failure | None:
        try:
            return await self._retry_loop(event, envelope, attempts_made)
        finally:
            # whatever happened, this event waits no more (another lane's may)
            self._waiting.discard(envelope.id)
            WAITING.labels(self.name).set(1 if self._waiting else 0)

    async def _retry_loop(
        self, event: Event, envelope: Envelope, attempts_made: int
    ) -> _Failure | None:
        handler = self.handlers.get(envelope.type)
        attempt = attempts_made
        backoff = self.config.backoff_initial
        infra_backoff = self.config.backoff_initial
        conflicts = 0
        waiting_since: float | None = None
        while True:
            try:
                if handler is None:  # a batch-only type handled on its own
                    with self._span(envelope):
                        await self._handle_batch([(event, envelope, None)], raise_errors=True)
                else:
                    await self._handle_alone(event, envelope)
                return None
            except PermanentError as exc:
                return _Failure("permanent_error", exc, attempt + 1)
            except NotReady as exc:
                waited = time.monotonic() - (waiting_since or time.monotonic())
                if waited >= self.config.not_ready_max_seconds:
                    return _Failure("not_ready", exc, attempt + 1)
                waiting_since = waiting_since or time.monotonic()
                self._waiting.add(envelope.id)
                WAITING.labels(self.name).set(1)
                log.warning(
                    "event not ready; waiting",
                    extra={"consumer": self.name, "event_type": envelope.type},
                )
                await self._pause(infra_backoff)
                infra_backoff = min(infra_backoff * 2, self.config.infrastructure_backoff_max)
                continue
            except Exception as exc:
                if is_infrastructure_error(exc):
                    log.warning(
                        "database unavailable; waiting",
                        extra={"consumer": self.name, "error_type": type(exc).__name__},
                    )
                    await self._pause(infra_backoff)
                    infra_backoff = min(infra_backoff * 2, self.config.infrastructure_backoff_max)
                    continue
                if is_transaction_conflict(exc):
                    conflicts += 1
                    CONFLICTS.labels(self.name).inc()
                    if conflicts > self.config.max_conflicts:
                        return _Failure("transaction_conflict", exc, attempt + 1)
                    log.info(
                        "transaction aborted by a conflict; running it again",
                        extra={"consumer": self.name, "event_type": envelope.type},
                    )
                    # jittered (by _pause), so the transactions that collided do not meet again
                    await self._pause(
                        min(
                            self.config.backoff_initial * 2 ** min(conflicts - 1, 16),
                            self.config.conflict_backoff_max,
                        )
                    )
                    continue
                attempt += 1
                RETRIED.labels(self.name).inc()
                if attempt >= self.config.max_attempts:
                    return _Failure("handler_error", exc, attempt)
                log.warning(
                    "handler failed; retrying",
                    extra={
                        "consumer": self.name,
                        "event_type": envelope.type,
                        "event_id": str(envelope.id),
                        "attempt": attempt,
                        "error_type": type(exc).__name__,
                    },
                )
                await self._pause(backoff)
                backoff = min(backoff * 2, self.config.backoff_max)

    async def _handle_alone(self, event: Event, envelope: Envelope) -> None:
        """Handle one event in its own transaction: a run of one, raising the handler's error."""
        try:
            await self._commit_run([(envelope, event)])
        except (_RunFailedAt, _CommitFailed) as failed:
            cause = failed.__cause__
            raise cause if isinstance(cause, Exception) else failed from None

    def _span(self, envelope: Envelope) -> Any:
        """A consumer span continuing the producer's trace."""
        return tracer.start_as_current_span(
            f"consume {envelope.type}",
            context=context_from_headers(dict(envelope.trace_headers)),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": envelope.topic,
                "messaging.consumer.group.name": self.name,
                "messaging.message.id": str(envelope.id),
            },
        )

    async def _handle_batch(
        self,
        group: Sequence[tuple[Any, Envelope, ConsumerRecord[Any, Any] | None]],
        *,
        raise_errors: bool = False,
    ) -> bool:
        """Handle same-type events in one transaction; False means "fall back to singles"."""
        event_type = group[0][1].type
        handler = self.batch_handlers[event_type]
        try:
            async with UnitOfWork(self.sessions, source=self.source, clock=self.clock) as uow:
                fresh = await self._claim(uow, [env for _, env, _ in group])
                todo = []
                for ev, env, _ in group:
                    if env.id in fresh:
                        fresh.discard(env.id)  # later copies in the same batch are duplicates
                        todo.append((ev, env))
                DUPLICATES.labels(self.name).inc(len(group) - len(todo))
                if todo:
                    await handler(todo, uow)
                await uow.commit()
            PROCESSED.labels(self.name, event_type).inc(len(todo))
            return True
        except Exception as exc:
            if raise_errors:
                raise
            if is_transaction_conflict(exc):
                CONFLICTS.labels(self.name).inc()
            log.info("batch failed; handling its events one by one", extra={"consumer": self.name})
            return False

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], failure: _Failure) -> None:
        DEAD_LETTERED.labels(self.name, failure.reason).inc()
        log.error(
            "event dead-lettered",
            extra={
                "consumer": self.name,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": failure.reason,
                "error_type": type(failure.error).__name__,
            },
        )
        backoff = self.config.backoff_initial
        while True:
            try:
                await self.dead_letters.publish(
                    record,
                    consumer=self.name,
                    reason=failure.reason,
                    error=failure.error,
                    attempts=failure.attempts,
                    failed_at=self.clock.now(),
                )
                return
            except Exception as exc:
                log.warning(
                    "dead-letter publish failed; retrying",
                    extra={"consumer": self.name, "error_type": type(exc).__name__},
                )
                await self._pause(backoff)
                backoff = min(backoff * 2, self.config.infrastructure_backoff_max)

    async def _pause(self, seconds: float) -> None:
        """Back off before the next attempt; raise ``_Stopped`` when shutting down, so a
        record is never dead-lettered (nor committed) because retries were cut short.
        What was handled before is committed first if due: a wait can last minutes."""
        try:
            await self.commit_if_due()
        except Exception as exc:  # the commit is retried later; the wait must not fail
            log.warning(
                "offset commit before a wait failed",
                extra={"consumer": self.name, "error_type": type(exc).__name__},
            )
        await sleep_unless_stopped(self._stop, seconds)
        if self._stop.is_set():
            raise _Stopped


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits processed offsets before partitions move to another member."""

    def __init__(self, runner: ConsumerRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        try:
            await self.runner.commit()
        except Exception:
            log.warning("offset commit on revoke failed", extra={"consumer": self.runner.name})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


async def inbox_count(sessions: async_sessionmaker[AsyncSession], consumer: str) -> int:
    """Return how many events ``consumer`` has recorded (for tests and diagnostics)."""
    async with sessions() as session:
        value = await session.scalar(
            sa.select(sa.func.count())
            .select_from(inbox_table)
            .where(inbox_table.c.consumer == consumer)
        )
    return int(value or 0)
