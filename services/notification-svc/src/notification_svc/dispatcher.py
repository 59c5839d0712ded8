"""The dispatcher: hands queued deliveries to their providers; and the fallback timer.

A tick claims due deliveries of messages still pending (``FOR UPDATE SKIP LOCKED``, so
replicas share the work) and marks them ``sending`` with a lease and a lease token, in a
short transaction. The provider calls then run concurrently, outside any transaction,
each with its own timeout. Their outcomes are recorded as the calls end (each record
takes every call that ended meanwhile), in transactions of ``RECORD_CHUNK``, the accepted
ones of a chunk in one statement, and only under the claim that made the call (the
token).

The lease outlasts the longest a tick can take. A worker that dies between the call and
the record leaves the delivery ``sending``: when its lease ends another tick sends it
again. A timed-out call is ambiguous too, since the provider may have accepted it, so a
retry after a timeout can also carry the message twice. Both are at-least-once by design
(see ADR 0006); e-mails resent that way keep the same Message-ID.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter, Histogram

from notification_svc import domain, lifecycle
from notification_svc.content import MessageContent
from notification_svc.lifecycle import safe_reason
from notification_svc.models import callbacks, deliveries, messages
from notification_svc.policy import Policy
from notification_svc.providers.base import OutboundMessage, ProviderError
from notification_svc.rendering import render
from notification_svc.runtime import Runtime
from rn623_events.db import UnitOfWork, is_infrastructure_error, is_transaction_conflict
from rn623_events.worker import sleep_unless_stopped

log = logging.getLogger(__name__)

PROVIDER_CALLS = Counter(
    "notification_provider_calls_total", "Provider calls", ["provider", "channel", "outcome"]
)
PROVIDER_SECONDS = Histogram(
    "notification_provider_call_seconds", "Duration of a provider call", ["provider"]
)
QUEUE_TO_CALL = Histogram(
    "notification_queue_to_call_seconds",
    "From a delivery being queued to its provider call",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
UNRECORDED = Counter(
    "notification_outcomes_unrecorded_total",
    "Provider outcomes that could not be recorded (the delivery is sent again after its lease)",
)
LEASE_MARGIN_SECONDS = 30.0
RECORD_CHUNK = 25  # outcomes per transaction
SWEEP_CHUNK = 50  # deliveries whose stored callbacks are applied per transaction
SWEEP_ROUNDS = 20  # sweep transactions per timer tick at most

_CLAIM = sa.text(
    """
    WITH queued AS (
        SELECT d.id FROM deliveries d
        WHERE d.status = 'queued' AND d.next_attempt_at <= :now
          AND EXISTS (SELECT 1 FROM messages m WHERE m.id = d.message_id AND m.status = 'pending')
        ORDER BY d.next_attempt_at LIMIT :limit FOR UPDATE OF d SKIP LOCKED
    ), abandoned AS (
        SELECT d.id FROM deliveries d
        WHERE d.status = 'sending' AND d.lease_until < :now
          AND EXISTS (SELECT 1 FROM messages m WHERE m.id = d.message_id AND m.status = 'pending')
        LIMIT :limit FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE deliveries d
    SET status = 'sending', lease_until = :lease, lease_token = gen_random_uuid()
    WHERE d.id IN (SELECT id FROM queued UNION ALL SELECT id FROM abandoned)
    RETURNING d.id
    """
)


@dataclass
class Outcome:
    """What one provider call gave, under which claim."""

    delivery_id: uuid.UUID
    message_id: uuid.UUID
    lease_token: uuid.UUID | None
    provider: str
    provider_message_id: str | None = None
    error: ProviderError | None = None


class Dispatcher:
    """Sends what is due, records what happened."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self._slots = asyncio.Semaphore(self.settings.dispatch_concurrency)
        self.lease_seconds = self._lease_seconds()

    def _lease_seconds(self) -> float:
        """The configured lease, stretched to outlast the slowest possible tick (every
        wave of calls hitting the longest timeout), so no live send loses its claim."""
        settings = self.settings
        waves = math.ceil(settings.dispatch_batch_size / settings.dispatch_concurrency)
        longest = max(
            (settings.timeout_of(name) for name in self.rt.providers),
            default=settings.provider_timeout_seconds,
        )
        return max(settings.dispatch_lease_seconds, waves * longest + LEASE_MARGIN_SECONDS)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop``; a full batch is followed at once by the next, and so is a
        commit of this process that queued deliveries (``Runtime.wake_dispatcher``)."""
        while not stop.is_set():
            self.rt.deliveries_queued.clear()  # what is queued from here on wakes it again
            try:
                handled = await self.tick()
            except Exception as exc:
                log.warning("dispatch tick failed", extra={"error_type": type(exc).__name__})
                handled = 0
            if handled < self.settings.dispatch_batch_size:
                await sleep_unless_stopped(
                    stop, self.settings.dispatch_interval_seconds, self.rt.deliveries_queued
                )

    async def tick(self) -> int:
        """Claim due deliveries, call their providers, record the outcomes."""
        now = self.rt.clock.now()
        lease = now + timedelta(seconds=self.lease_seconds)
        async with self.rt.uow() as uow:
            claimed = (
                (
                    await uow.session.execute(
                        _CLAIM,
                        {"now": now, "lease": lease, "limit": self.settings.dispatch_batch_size},
                    )
                )
                .scalars()
                .all()
            )
            if not claimed:
                return 0
            rows = (
                (
                    await uow.session.execute(
                        sa.select(deliveries, messages.c.content)
                        .join(messages, messages.c.id == deliveries.c.message_id)
                        .where(deliveries.c.id.in_(claimed))
                    )
                )
                .mappings()
                .all()
            )
            policies = {
                ans: await self.rt.policy(uow, ans) for ans in {r["ans_registry"] for r in rows}
            }
            await uow.commit()
        calls = [
            asyncio.ensure_future(self._send(row, policies[row["ans_registry"]])) for row in rows
        ]
        await self._record_as_they_end(calls)
        return len(rows)

    async def _record_as_they_end(self, calls: Sequence[asyncio.Future[Outcome]]) -> None:
        """Record the calls' outcomes while the others still run: each record takes every
        call that ended meanwhile. Waiting for the slowest call of the tick let most
        providers' callbacks beat the record of their send (they were then stored, and
        applied by the record or the fallback timer, a few statements each)."""
        running = set(calls)
        try:
            while running:
                ended, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                outcomes = [call.result() for call in ended]
                try:
                    await self._record(outcomes)
                except Exception as exc:  # a bug: the other calls' outcomes still count
                    UNRECORDED.inc(len(outcomes))
                    log.error(
                        "provider outcomes not recorded",
                        extra={"outcomes": len(outcomes), "error_type": type(exc).__name__},
                    )
        finally:
            for call in running:  # cancelled (the worker is killed): resent after their lease
                call.cancel()

    async def _send(self, row: Any, policy: Policy) -> Outcome:
        """Call the delivery's current provider; never raises (an adapter bug included)."""
        providers = list(row["providers"])
        index = row["provider_index"]
        name = providers[index] if index < len(providers) else ""
        outcome = Outcome(row["id"], row["message_id"], row["lease_token"], name)
        provider = self.rt.providers.get(name)
        if provider is None or not row["recipient"]:
            outcome.error = ProviderError("provider_unavailable", retryable=False)
            return outcome
        channel = row["channel"]
        async with self._slots:
            started = time.perf_counter()
            try:
                message = self._message(row, policy, name)
                QUEUE_TO_CALL.labels(channel).observe(
                    max(0.0, (self.rt.clock.now() - row["next_attempt_at"]).total_seconds())
                    if row["attempts"] == 0 and row["next_attempt_at"] is not None
                    else 0.0
                )
                result = await asyncio.wait_for(
                    provider.send(message), self.settings.timeout_of(name)
                )
            except ProviderError as exc:
                outcome.error = exc
            except TimeoutError:
                outcome.error = ProviderError("timeout", retryable=True)
            except Exception as exc:  # an adapter or template bug must not stop the others
                log.warning(
                    "provider call raised",
                    extra={"provider": name, "error_type": type(exc).__name__},
                )
                outcome.error = ProviderError(type(exc).__name__, retryable=True)
            else:
                outcome.provider_message_id = result.provider_message_id
            PROVIDER_SECONDS.labels(name).observe(time.perf_counter() - started)
        PROVIDER_CALLS.labels(
            name, channel, "ok" if outcome.error is None else outcome.error.code[:40]
        ).inc()
        return outcome

    @staticmethod
    def _message(row: Any, policy: Policy, provider: str) -> OutboundMessage:
        """The message to hand to ``provider``, rendered from the stored content."""
        rendered = render(MessageContent.model_validate(row["content"]))
        channel = row["channel"]
        email = channel == "email"
        return OutboundMessage(
            delivery_id=row["id"],
            channel=channel,
            to=row["recipient"],
            sender=policy.sender(channel, provider),
            text=rendered.text if email else rendered.short_text,
            subject=rendered.subject if email else None,
            html=rendered.html if email else None,
            template=rendered.whatsapp_template if channel == "whatsapp" else None,
            reply_to=policy.reply_to if email else None,
        )

    async def _record(self, outcomes: Sequence[Outcome]) -> None:
        """Record the outcomes, in message order (the lock order of every transition).

        Outcomes go in transactions of ``RECORD_CHUNK`` (short, so webhooks never queue
        long behind the message locks they hold). Should one outcome fail to record, its
        chunk is recorded again with a savepoint per outcome, and that one is skipped
        alone: its delivery is sent again when its lease ends. A database that is down,
        or a transaction PostgreSQL aborted to break a conflict, is retried: the calls
        were made, and forgetting them would send again.
        """
        ordered = sorted(outcomes, key=lambda o: (o.message_id, o.delivery_id))
        for start in range(0, len(ordered), RECORD_CHUNK):
            await self._record_chunk(ordered[start : start + RECORD_CHUNK])

    async def _record_chunk(self, ordered: Sequence[Outcome]) -> None:
        guarded = False
        delay = 0.2
        while True:
            try:
                await self._record_batch(ordered, guarded=guarded)
                return
            except Exception as exc:
                if not (is_infrastructure_error(exc) or is_transaction_conflict(exc)):
                    if guarded:
                        raise
                    guarded = True  # find the culprit, record the rest
                    continue
                log.warning(
                    "cannot record provider outcomes; retrying",
                    extra={"error_type": type(exc).__name__},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _record_batch(self, ordered: Sequence[Outcome], *, guarded: bool) -> None:
        async with self.rt.uow() as uow:
            await lifecycle.lock_messages(uow, [o.message_id for o in ordered])
            policies: dict[str, Policy] = {}
            if guarded:
                for outcome in ordered:
                    await self._record_guarded(uow, outcome, policies)
            else:
                await self._record_accepted(uow, ordered, policies)
                for outcome in ordered:
                    if not _accepted(outcome):
                        await self._record_one(uow, outcome, policies)
            await uow.commit()

    async def _record_accepted(
        self,
        uow: UnitOfWork,
        ordered: Sequence[Outcome],
        policies: dict[str, Policy],
    ) -> None:
        """Record every accepted call of a chunk at once (the common case), then apply
        the callbacks that beat the record."""
        accepted = [o for o in ordered if _accepted(o)]
        rows = await lifecycle.deliveries_for_update(uow, [o.delivery_id for o in accepted])
        recorded: list[tuple[lifecycle.Accepted, Policy]] = []
        for outcome in accepted:
            row = rows.get(outcome.delivery_id)
            if row is None or outcome.provider_message_id is None:
                continue  # purged meanwhile (an accepted call always has its id)
            if not _still_claimed(row, outcome):
                continue  # claimed again by another worker after this one's lease ended
            policy = await _policy(self.rt, uow, row["ans_registry"], policies)
            item = lifecycle.Accepted(
                row, outcome.provider, outcome.provider_message_id, policy.timeout(row["channel"])
            )
            recorded.append((item, policy))
        await lifecycle.record_sent(uow, [item for item, _ in recorded])
        stored = await lifecycle.stored_callbacks(
            uow, [(item.provider, item.provider_message_id) for item, _ in recorded]
        )
        beaten = [
            (item, policy)
            for item, policy in recorded
            if (item.provider, item.provider_message_id) in stored
        ]
        if beaten:  # as the record left them
            now = await lifecycle.deliveries_for_update(uow, [i.row["id"] for i, _ in beaten])
            await lifecycle.apply_stored_callbacks(
                uow,
                [
                    (now.get(item.row["id"]), stored[item.provider, item.provider_message_id], p)
                    for item, p in beaten
                ],
            )

    async def _record_guarded(
        self,
        uow: UnitOfWork,
        outcome: Outcome,
        policies: dict[str, Policy],
    ) -> None:
        try:
            async with uow.savepoint():
                if _accepted(outcome):
                    await self._record_accepted(uow, [outcome], policies)
                else:
                    await self._record_one(uow, outcome, policies)
        except Exception as exc:
            if is_infrastructure_error(exc) or is_transaction_conflict(exc):
                raise
            UNRECORDED.inc()
            log.error(
                "provider outcome not recorded",
                extra={"delivery_id": str(outcome.delivery_id), "error_type": type(exc).__name__},
            )

    async def _record_one(
        self, uow: UnitOfWork, outcome: Outcome, policies: dict[str, Policy]
    ) -> None:
        """Record a call that was not accepted: retry, fail over, or give the channel up."""
        row = await lifecycle.delivery_for_update(uow, outcome.delivery_id, message_locked=True)
        if row is None or not _still_claimed(row, outcome):
            return  # purged, or claimed again by another worker
        policy = await _policy(self.rt, uow, row["ans_registry"], policies)
        if row["message_status"] != "pending":
            # another channel proved delivery (or the message closed) meanwhile
            await lifecycle.cancel_delivery(uow, row, detail="message_settled")
            return
        error = outcome.error or ProviderError("no_message_id", retryable=False)
        code = safe_reason(error.code)
        more_providers = row["provider_index"] + 1 < len(row["providers"])
        if error.retryable and row["attempts"] + 1 < self.settings.provider_max_attempts:
            delay = domain.retry_delay(
                row["attempts"] + 1,
                initial=self.settings.retry_backoff_initial_seconds,
                maximum=self.settings.retry_backoff_max_seconds,
                retry_after=error.retry_after,
            )
            await lifecycle.record_retry(
                uow, row, provider=outcome.provider, code=code, delay=delay
            )
        elif more_providers and (
            error.retryable or error.account_refused or error.code == "provider_unavailable"
        ):
            await lifecycle.record_failover(uow, row, provider=outcome.provider, code=code)
        else:
            reason = "retries_exhausted" if error.retryable else "provider_rejected"
            await lifecycle.give_up_channel(
                uow, row, reason=safe_reason(f"{reason}:{code}"), policy=policy
            )


async def _policy(rt: Runtime, uow: UnitOfWork, ans: str, policies: dict[str, Policy]) -> Policy:
    """The operator's policy, read once per transaction (``policies``)."""
    if ans not in policies:
        policies[ans] = await rt.policy(uow, ans)
    return policies[ans]


def _accepted(outcome: Outcome) -> bool:
    """Whether the provider accepted the call (and said under which id)."""
    return outcome.error is None and outcome.provider_message_id is not None


def _still_claimed(row: dict[str, Any], outcome: Outcome) -> bool:
    """Whether the delivery is still under the claim that made the call (not claimed
    again by another worker after this one's lease ended)."""
    return bool(row["status"] == "sending" and row["lease_token"] == outcome.lease_token)


class FallbackTimer:
    """Applies callbacks that arrived before their send was recorded, then gives up the
    channels that gave no proof of delivery before their ``fallback_at``."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def tick(self, limit: int = 500) -> int:
        """Sweep stored callbacks, then fall back from every channel past its timeout;
        return how many channels were given up."""
        for _ in range(SWEEP_ROUNDS):  # bounded: a locked callback is found again
            if await self.sweep_callbacks(SWEEP_CHUNK) < SWEEP_CHUNK:
                break
        async with self.rt.uow() as uow:
            due = (
                await uow.session.execute(
                    sa.select(deliveries.c.id, deliveries.c.message_id)
                    .where(
                        deliveries.c.status == "sent",
                        deliveries.c.fallback_at.isnot(None),
                        deliveries.c.fallback_at <= uow.clock.now(),
                    )
                    .order_by(deliveries.c.fallback_at)
                    .limit(limit)
                )
            ).all()
            given_up = 0
            policies: dict[str, Policy] = {}
            for delivery_id, _ in sorted(due, key=lambda d: (d.message_id, d.id)):
                row = await lifecycle.delivery_for_update(uow, delivery_id)
                if row is None or row["status"] != "sent" or row["fallback_at"] is None:
                    continue  # proven or given up by someone else meanwhile
                if row["fallback_at"] > uow.clock.now():
                    continue
                policy = await _policy(self.rt, uow, row["ans_registry"], policies)
                await lifecycle.give_up_channel(
                    uow, row, reason="delivery_timeout", policy=policy, timed_out=True
                )
                given_up += 1
            await uow.commit()
        return given_up

    async def sweep_callbacks(self, limit: int = SWEEP_CHUNK) -> int:
        """Apply stored callbacks whose delivery became known after they arrived (the
        webhook and the send's record committed at the same time); return how many
        deliveries were looked at (``limit`` at most, in one short transaction)."""
        async with self.rt.uow() as uow:
            found = (
                await uow.session.execute(
                    sa.select(
                        deliveries.c.id,
                        deliveries.c.message_id,
                        deliveries.c.ans_registry,
                        callbacks.c.provider,
                        callbacks.c.provider_message_id,
                    )
                    .distinct()
                    .join(
                        deliveries,
                        (deliveries.c.provider == callbacks.c.provider)
                        & (deliveries.c.provider_message_id == callbacks.c.provider_message_id),
                    )
                    .where(
                        callbacks.c.applied_at.is_(None),
                        callbacks.c.received_at >= uow.clock.now() - timedelta(days=1),
                    )
                    .limit(limit)
                )
            ).all()
            policies: dict[str, Policy] = {}
            locked: list[tuple[dict[str, Any], tuple[str, str], Policy]] = []
            for found_row in sorted(found, key=lambda f: (f.message_id, f.id)):
                row = await lifecycle.delivery_for_update(uow, found_row.id)
                if row is not None:
                    policy = await _policy(self.rt, uow, found_row.ans_registry, policies)
                    key = (found_row.provider, found_row.provider_message_id)
                    locked.append((row, key, policy))
            stored = await lifecycle.stored_callbacks(uow, [key for _, key, _ in locked])
            await lifecycle.apply_stored_callbacks(
                uow,
                [(row, stored[key], policy) for row, key, policy in locked if key in stored],
            )
            await uow.commit()
        return len(found)
