"""Database plumbing shared by services: engine, the outbox/inbox tables and the unit of work."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from rn623_events.clock import Clock
from rn623_events.envelope import Envelope, make_envelope
from rn623_events.registry import Event
from rn623_events.tracecontext import current_trace_headers

# Committing events notifies this channel so the relay wakes at once instead of polling;
# NOTIFY is per database, and every service has its own.
OUTBOX_CHANNEL = "rn623_outbox"

# Services add this metadata to Alembic's target_metadata (a list) so that their
# migrations create the outbox and inbox tables next to their own.
EVENTS_METADATA = sa.MetaData()

outbox_table = sa.Table(
    "outbox",
    EVENTS_METADATA,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("headers", JSONB, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # set when the producer refused the event outright (too large…): kept for inspection
    sa.Column("parked_at", sa.DateTime(timezone=True)),
    sa.Index(
        "ix_outbox_unpublished",
        "id",
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    ),
    sa.Index("ix_outbox_published_at", "published_at"),
)

inbox_table = sa.Table(
    "inbox",
    EVENTS_METADATA,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column(
        "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("ix_inbox_processed_at", "processed_at"),
)


def create_engine(
    url: str, *, pool_size: int = 10, pre_ping: bool = True, **kwargs: Any
) -> AsyncEngine:
    """Create the service's async engine (asyncpg) with sane pool settings.

    ``pre_ping`` tests each connection as it leaves the pool (three round trips per
    checkout with asyncpg: BEGIN, an empty query, ROLLBACK). Request paths that must be
    fast turn it off: after a database restart, the first statement on a stale connection
    fails and the pool replaces all its connections. Work run through a group committer
    then runs again on a fresh connection (``rn623_events.group_commit``); any other
    request answers 503 once, and the client retries.
    """
    # hide_parameters: database errors must not quote row values (personal data)
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        hide_parameters=True,
        **kwargs,
    )


def create_worker_engine(url: str, *, pool_size: int) -> AsyncEngine:
    """The engine of a worker process: no ping per checkout.

    A worker runs many short transactions (one per consumed run, relay batch or timer
    tick), so a ping per checkout cost 9-16 % of a busy worker's CPU. Everything a worker
    does already survives a failed transaction: consumers retry infrastructure errors, the
    relay and the timers try again on their next pass. After a database restart, the
    first statement on each stale connection fails once, and the pool replaces them all.
    """
    return create_engine(url, pool_size=pool_size, pre_ping=False)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the session factory units of work draw from."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


def insert_params(table: sa.Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as the parameters of an insert into ``table`` built once.

    Executed with parameters, SQLAlchemy ignores a key that is not a column, where
    ``insert(table).values(**values)`` raised: a misspelt key would store NULL. So any
    such key is refused here."""
    unknown = values.keys() - table.c.keys()
    if unknown:
        raise ValueError(f"not columns of {table.name}: {', '.join(sorted(unknown))}")
    return dict(values)


def rows_from_arrays(table: sa.Table, columns: Sequence[str]) -> sa.Subquery:
    """A subquery of any number of rows of ``table``'s ``columns``, from parallel array
    parameters ``v_<column>`` (see ``array_params``): one round trip and one statement
    shape for a batch of any size, so it is prepared once."""
    return sa.select(
        *(
            sa.func.unnest(sa.cast(sa.bindparam(f"v_{name}"), ARRAY(table.c[name].type))).label(
                name
            )
            for name in columns
        )
    ).subquery()


def array_params(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The parameters of ``rows_from_arrays`` for ``rows`` (each holding every column)."""
    return {f"v_{name}": [row[name] for row in rows] for name in columns}


def outbox_row(envelope: Envelope) -> dict[str, Any]:
    """Return the outbox row that will publish ``envelope``."""
    return {
        "event_id": envelope.id,
        "topic": envelope.topic,
        "key": envelope.subject,
        "event_type": envelope.type,
        "headers": {k: v.decode() for k, v in envelope.headers()},
        "payload": dict(envelope.data),
    }


# The rows of a commit and the relay's wake-up call in one round trip. One statement for
# any number of rows (arrays, unnested), so it is prepared once per connection; a
# multi-row VALUES insert is never cached by SQLAlchemy and is compiled on every commit.
_OUTBOX_INSERT = sa.text(
    """
    WITH inserted AS (
        INSERT INTO outbox (event_id, topic, key, event_type, headers, payload)
        SELECT e, t, k, y, h::jsonb, p::jsonb
        FROM unnest(
            CAST(:event_ids AS uuid[]), CAST(:topics AS text[]), CAST(:keys AS text[]),
            CAST(:types AS text[]), CAST(:headers AS text[]), CAST(:payloads AS text[])
        ) WITH ORDINALITY AS rows (e, t, k, y, h, p, n)
        ORDER BY n  -- ids follow the publish order, which the relay keeps
        RETURNING id
    )
    SELECT pg_notify(:channel, '') FROM inserted LIMIT 1
    """
)


def _outbox_params(envelopes: Sequence[Envelope]) -> dict[str, Any]:
    """The array parameters of ``_OUTBOX_INSERT`` for ``envelopes``."""
    rows = [outbox_row(e) for e in envelopes]
    return {
        "channel": OUTBOX_CHANNEL,
        "event_ids": [r["event_id"] for r in rows],
        "topics": [r["topic"] for r in rows],
        "keys": [r["key"] for r in rows],
        "types": [r["event_type"] for r in rows],
        "headers": [json.dumps(r["headers"]) for r in rows],
        "payloads": [json.dumps(r["payload"]) for r in rows],
    }


class UnitOfWork:
    """One database transaction with the events it publishes; the only place that commits.

    Leaving the ``async with`` block without ``commit()`` rolls everything back, events
    included, so a state change and its events are stored together or not at all.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        source: str,
        clock: Clock,
        cause: Envelope | None = None,
        correlation_id: str | None = None,
    ) -> None:
        self._sessions = sessions
        self.source = source
        self.clock = clock
        self.cause = cause
        self.correlation_id = correlation_id
        self._session: AsyncSession | None = None
        self.published: list[Envelope] = []
        self._after_commit: list[Callable[[], None]] = []
        self._before_commit: list[Callable[[], Awaitable[None]]] = []
        self._held: list[asyncio.Lock] = []

    @property
    def session(self) -> AsyncSession:
        """The open session (only inside ``async with``)."""
        if self._session is None:
            raise RuntimeError("unit of work is not open")
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._sessions()
        await self._session.begin()
        self.published = []
        self._after_commit = []
        self._before_commit = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self.session, None
        try:
            if session.in_transaction():
                await session.rollback()
        finally:
            try:
                await session.close()
            finally:
                held, self._held = self._held, []
                for lock in reversed(held):
                    lock.release()

    async def hold(self, lock: asyncio.Lock) -> None:
        """Hold ``lock`` until this unit ends, committed or not (at once if it already does).

        For work that locks rows shared by many aggregates, such as a hash chain's head:
        two transactions of one process taking them in opposite orders would deadlock;
        taking them under one lock, held to the end of the transaction, they never do."""
        if lock in self._held:
            return
        await lock.acquire()
        self._held.append(lock)

    def publish(self, event: Event, *, trace_headers: Mapping[str, str] | None = None) -> Envelope:
        """Stage ``event`` in the outbox; it is published only if the unit commits."""
        now = self.clock.now()
        if self.cause is not None:
            envelope = self.cause.caused(event, source=self.source, time=now)
        else:
            envelope = make_envelope(
                event,
                source=self.source,
                time=now,
                correlation_id=self.correlation_id,
                trace_headers=trace_headers
                if trace_headers is not None
                else current_trace_headers(),
            )
        self.published.append(envelope)
        return envelope

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A savepoint: if the block raises, its changes are rolled back and the events
        and after-commit actions it staged are dropped with them."""
        published, actions = len(self.published), len(self._after_commit)
        try:
            async with self.session.begin_nested():
                yield
        except BaseException:
            del self.published[published:]
            del self._after_commit[actions:]
            raise

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the unit commits (never if it rolls back), e.g. to count a
        business metric exactly once when a handler is retried."""
        self._after_commit.append(action)

    def before_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Await ``action`` in the transaction when it commits, before its events are
        written (it may publish more): for writes a handler gathers across the events of
        one transaction, to make them in one statement. A failing action fails the commit
        (the consumer runner then narrows the run down to the event at fault). A savepoint
        rolled back does not drop an action, nor undo what it wrote early: never write
        gathered work inside a savepoint."""
        self._before_commit.append(action)

    async def commit(self) -> None:
        """Run the ``before_commit`` actions, write the staged events to the outbox and
        commit the transaction."""
        while self._before_commit:
            await self._before_commit.pop(0)()
        if self.published:
            await self.session.execute(_OUTBOX_INSERT, _outbox_params(self.published))
        await self.session.commit()
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            action()


T = TypeVar("T")


class GatheredWrites(Generic[T]):
    """What a consumer's handlers gather in each unit of work, by key, to write it in a
    few statements when the unit commits (``UnitOfWork.before_commit``), or sooner when
    a handler must read it back (``write``)."""

    def __init__(self, write: Callable[[UnitOfWork, dict[str, T]], Awaitable[None]]) -> None:
        self._write = write
        self._pending: WeakKeyDictionary[UnitOfWork, dict[str, T]] = WeakKeyDictionary()

    def pending(self, uow: UnitOfWork) -> dict[str, T]:
        """The unit's gathered items, to add to; written when it commits."""
        items = self._pending.get(uow)
        if items is None:
            items = self._pending[uow] = {}
            uow.before_commit(partial(self.write, uow))
        return items

    def get(self, uow: UnitOfWork, key: str) -> T | None:
        """The item gathered under ``key`` in this unit and not written yet, if any."""
        return self._pending.get(uow, {}).get(key)

    async def write(self, uow: UnitOfWork) -> None:
        """Write what the unit gathered and has not written yet (nothing if nothing)."""
        items = self._pending.pop(uow, None)
        if items:
            await self._write(uow, items)


CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
# Text PostgreSQL cannot store: a NUL character in a text column (22021) or in jsonb (22P05).
UNSTORABLE_TEXT_SQLSTATES = frozenset({"22021", "22P05"})
# The server is going away or not there yet: shut down by an operator (57P01), crashed
# (57P02), starting up or shutting down (57P03), out of connection slots (53300). A
# restart raises these, not a network error, for the connections it meets midway.
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
CONNECTION_SQLSTATE_CLASS = "08"  # connection exception


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, raised through SQLAlchemy or by asyncpg, else None."""
    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_transaction_conflict(exc: BaseException) -> bool:
    """True when PostgreSQL aborted the transaction to resolve a conflict (a deadlock or a
    serialization failure): running it again is the remedy."""
    return _sqlstate(exc) in CONFLICT_SQLSTATES


def is_unstorable_text(exc: BaseException) -> bool:
    """True when PostgreSQL refused a value because text holds a character it cannot store
    (NUL): the request's data is at fault, not the database."""
    return _sqlstate(exc) in UNSTORABLE_TEXT_SQLSTATES


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for failures of the database connection itself (not of the message)."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    sqlstate = _sqlstate(exc)
    if sqlstate in UNAVAILABLE_SQLSTATES or (sqlstate or "").startswith(CONNECTION_SQLSTATE_CLASS):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(
        exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError
    ):
        return False  # a file of the service itself: a bug or a bad deployment, not the network
    return isinstance(exc, ConnectionError | OSError | TimeoutError)
