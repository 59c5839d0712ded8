"""Group commit: concurrent requests share one transaction, and one commit.

Under load most of a short write request's database cost is the transaction around it
(BEGIN, the outbox insert, COMMIT and its WAL flush), not its own statements. A
``GroupCommitter`` runs the work of requests that arrive while a transaction is busy in
the next transaction together: each piece of work runs in turn, in its caller's context
(so its events carry its caller's trace), on the shared unit of work; one outbox insert
and one commit follow. A lone request runs at once, alone: nothing waits for company.
A ``BatchCommitter`` does the same for items rather than work: one function applies the
whole group's items at once, so it can lock rows in one order across callers and write
them in one statement (notification-svc's provider callbacks).

All or nothing stays per request:
- if any work in a group raises, the group is rolled back and every piece of work is run
  again alone, in its own unit of work, so each caller gets exactly the result or the
  error it would have had alone (the others' effects never leak into it);
- if the commit itself fails, every caller gets that error, as a lone request would
  (whether an interrupted commit landed is unknowable; clients retry with their keys);
- work that ran alone on a connection the database had dropped (after a restart) runs
  once more on a fresh one, since none of it committed. The services' API engines do not
  ping each connection before use (a round trip and ~15 % of a busy API's CPU), so after
  a restart this is how a request is spared the stale connection; a group that meets one
  fails, is split, and its work runs alone on the pool's new connections.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Histogram
from sqlalchemy.exc import DBAPIError

from rn623_events.db import UnitOfWork

T = TypeVar("T")
ItemT = TypeVar("ItemT")

log = logging.getLogger(__name__)

GROUP_SIZE = Histogram(
    "rn623_group_commit_size",
    "Pieces of work committed together in one transaction.",
    ["group"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
GROUP_SPLITS = Counter(
    "rn623_group_commit_splits_total",
    "Groups rolled back because one piece of work failed, then run one by one.",
    ["group"],
)

STALE_RETRIES = Counter(
    "rn623_group_commit_stale_connection_retries_total",
    "Work run again because the database had dropped its connection before the commit.",
    ["group"],
)


@dataclass
class _Pending(Generic[T]):
    payload: Any  # a GroupCommitter's work, or a BatchCommitter's item
    future: asyncio.Future[T]
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class _WorkFailed(Exception):
    """A piece of work raised inside a group (the group must be split)."""


class _Committer:
    """The loop both committers share: take what is queued, run it together, commit; if
    the work of a group raises, run each caller's part again alone."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        *,
        name: str,
        max_group: int,
        concurrency: int,
    ) -> None:
        self._uow = uow
        self._name = name
        self._max_group = max_group
        self._concurrency = concurrency
        self._queue: asyncio.Queue[_Pending[Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def _submit(self, payload: Any) -> Any:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._loop(), name=f"group-commit-{self._name}-{i}")
                for i in range(self._concurrency)
            ]
        pending: _Pending[Any] = _Pending(payload, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        return await pending.future

    async def _apply(self, uow: UnitOfWork, group: list[_Pending[Any]]) -> list[Any]:
        """Run the group's work on ``uow`` (no commit); its results, in the group's order."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop the committers; callers still waiting get CancelledError."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()

    async def _loop(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < self._max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            group = [p for p in group if not p.future.done()]  # callers that gave up
            if group:
                try:
                    await self._run_group(group)
                except asyncio.CancelledError:
                    for pending in group:
                        pending.future.cancel()
                    raise
                except Exception:  # never let one group stop the committer
                    log.exception("group commit failed", extra={"group": self._name})

    async def _run_group(self, group: list[_Pending[Any]]) -> None:
        GROUP_SIZE.labels(self._name).observe(len(group))
        if len(group) == 1:
            await self._run_alone(group[0])
            return
        try:
            results = await self._together(group)
        except _WorkFailed:
            GROUP_SPLITS.labels(self._name).inc()
            for pending in group:
                await self._run_alone(pending)
        except BaseException as exc:
            for pending in group:
                _settle(pending, exc=exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for pending, result in zip(group, results, strict=True):
                _settle(pending, result=result)

    async def _together(self, group: list[_Pending[Any]]) -> list[Any]:
        """The group's work in one unit of work; raises _WorkFailed if the work raised."""
        async with self._uow() as uow:
            try:
                results = await self._apply(uow, group)
            except Exception as exc:
                raise _WorkFailed from exc
            await uow.commit()
        return results

    async def _run_alone(self, pending: _Pending[Any]) -> None:
        """One caller's work in its own unit of work, its outcome handed to it."""

        async def alone() -> Any:
            retried = False
            while True:
                async with self._uow() as uow:
                    try:
                        [result] = await self._apply(uow, [pending])
                    except DBAPIError as exc:
                        if retried or not exc.connection_invalidated:
                            raise
                        # The database dropped the connection (a restart, a failover)
                        # before the work could commit: none of it stayed, and the pool
                        # is replacing its connections, so it runs once more.
                        retried = True
                        STALE_RETRIES.labels(self._name).inc()
                        continue
                    await uow.commit()
                    return result

        try:
            result = await asyncio.get_running_loop().create_task(alone(), context=pending.context)
        except Exception as exc:
            _settle(pending, exc=exc)
        else:
            _settle(pending, result=result)


class GroupCommitter(_Committer):
    """Runs units of work for concurrent callers in shared transactions."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        *,
        name: str,
        max_group: int = 64,
        concurrency: int = 2,
    ) -> None:
        super().__init__(uow, name=name, max_group=max_group, concurrency=concurrency)

    async def run(self, work: Callable[[UnitOfWork], Coroutine[Any, Any, T]]) -> T:
        """Run ``work`` on a unit of work and commit; its result once committed.

        ``work`` must not commit, and must not keep anything of the unit of work beyond its
        own result: it may run twice (once in a group that is rolled back, then alone).
        """
        result: T = await self._submit(work)
        return result

    async def _apply(self, uow: UnitOfWork, group: list[_Pending[Any]]) -> list[Any]:
        """Each piece of work in turn, in its caller's context."""
        loop = asyncio.get_running_loop()
        return [
            await loop.create_task(pending.payload(uow), context=pending.context)
            for pending in group
        ]


class BatchCommitter(_Committer, Generic[ItemT, T]):
    """Applies the items of concurrent callers together: one call of ``apply`` on one
    unit of work, one commit. Unlike a ``GroupCommitter``, ``apply`` sees the whole group
    at once, so it can take its locks in one order and write its rows in one statement."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        apply: Callable[[UnitOfWork, list[ItemT]], Coroutine[Any, Any, list[T]]],
        *,
        name: str,
        max_group: int = 64,
        concurrency: int = 2,
    ) -> None:
        super().__init__(uow, name=name, max_group=max_group, concurrency=concurrency)
        self._batch = apply

    async def submit(self, item: ItemT) -> T:
        """Apply ``item`` with whatever else is queued and commit; its result once committed.

        ``apply`` must not commit, must return one result per item in their order, and
        may see an item twice (once in a group that is rolled back, then alone).
        """
        result: T = await self._submit(item)
        return result

    async def _apply(self, uow: UnitOfWork, group: list[_Pending[Any]]) -> list[Any]:
        results = await self._batch(uow, [pending.payload for pending in group])
        if len(results) != len(group):
            raise RuntimeError(f"{self._name}: {len(results)} results for {len(group)} items")
        return results


def _settle(
    pending: _Pending[Any], *, result: Any = None, exc: BaseException | None = None
) -> None:
    """Hand an outcome to a caller still waiting for it."""
    if pending.future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        pending.future.cancel()
    elif exc is not None:
        pending.future.set_exception(exc)
    else:
        pending.future.set_result(result)
