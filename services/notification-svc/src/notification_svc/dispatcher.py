"""The dispatcher: hands queued deliveries to their providers; and the fallback timer.

A tick claims due deliveries (``FOR UPDATE SKIP LOCKED``, so replicas share the work)
and marks them ``sending`` with a lease, in a short transaction. The provider calls then
run concurrently, outside any transaction, each with its own timeout. Their outcomes are
recorded in one more transaction, each in its own savepoint. A worker that dies between
the call and the record leaves the delivery ``sending``: when its lease ends another
tick sends it again. That window (a crash after the provider accepted and before the
commit) is the only way a channel can carry a message twice; e-mails resent that way
keep the same Message-ID.
"""

from __future__ import annotations

import asyncio
import logging
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
from notification_svc.models import deliveries, messages
from notification_svc.policy import Policy
from notification_svc.providers.base import OutboundMessage, ProviderError
from notification_svc.rendering import render
from notification_svc.runtime import Runtime
from rn623_events.db import UnitOfWork, is_infrastructure_error
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
# Statuses that mean the provider's account or configuration is wrong, not the message:
# another provider of the same channel may well succeed.
_FAILOVER_CODES = frozenset({"http_401", "http_403", "provider_unavailable"})

_CLAIM = sa.text(
    """
    WITH queued AS (
        SELECT id FROM deliveries
        WHERE status = 'queued' AND next_attempt_at <= :now
        ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED
    ), abandoned AS (
        SELECT id FROM deliveries
        WHERE status = 'sending' AND lease_until < :now
        LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    UPDATE deliveries d SET status = 'sending', lease_until = :lease
    WHERE d.id IN (SELECT id FROM queued UNION ALL SELECT id FROM abandoned)
    RETURNING d.id
    """
)


@dataclass
class Outcome:
    """What one provider call gave."""

    delivery_id: uuid.UUID
    provider: str
    provider_message_id: str | None = None
    error: ProviderError | None = None


class Dispatcher:
    """Sends what is due, records what happened."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self._slots = asyncio.Semaphore(self.settings.dispatch_concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop``; a full batch is followed at once by the next."""
        while not stop.is_set():
            try:
                handled = await self.tick()
            except Exception as exc:
                log.warning("dispatch tick failed", extra={"error_type": type(exc).__name__})
                handled = 0
            if handled < self.settings.dispatch_batch_size:
                await sleep_unless_stopped(stop, self.settings.dispatch_interval_seconds)

    async def tick(self) -> int:
        """Claim due deliveries, call their providers, record the outcomes."""
        now = self.rt.clock.now()
        lease = now + timedelta(seconds=self.settings.dispatch_lease_seconds)
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
        outcomes = await asyncio.gather(
            *(self._send(row, policies[row["ans_registry"]]) for row in rows)
        )
        await self._record(outcomes)
        return len(rows)

    async def _send(self, row: Any, policy: Policy) -> Outcome:
        providers = list(row["providers"])
        index = row["provider_index"]
        name = providers[index] if index < len(providers) else ""
        provider = self.rt.providers.get(name)
        if provider is None or not row["recipient"]:
            return Outcome(
                row["id"], name, error=ProviderError("provider_unavailable", retryable=False)
            )
        rendered = render(MessageContent.model_validate(row["content"]))
        channel = row["channel"]
        message = OutboundMessage(
            delivery_id=row["id"],
            channel=channel,
            to=row["recipient"],
            sender=policy.sender(channel, name),
            text=rendered.text if channel == "email" else rendered.short_text,
            subject=rendered.subject if channel == "email" else None,
            html=rendered.html if channel == "email" else None,
            template=rendered.whatsapp_template if channel == "whatsapp" else None,
            reply_to=policy.reply_to if channel == "email" else None,
        )
        async with self._slots:
            QUEUE_TO_CALL.labels(channel).observe(
                max(0.0, (self.rt.clock.now() - row["next_attempt_at"]).total_seconds())
                if row["attempts"] == 0 and row["next_attempt_at"] is not None
                else 0.0
            )
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(
                    provider.send(message), self.settings.timeout_of(name)
                )
            except ProviderError as exc:
                outcome = Outcome(row["id"], name, error=exc)
            except TimeoutError:
                outcome = Outcome(row["id"], name, error=ProviderError("timeout", retryable=True))
            except Exception as exc:  # an adapter bug must not stop the other sends
                log.warning(
                    "provider call raised",
                    extra={"provider": name, "error_type": type(exc).__name__},
                )
                outcome = Outcome(
                    row["id"], name, error=ProviderError(type(exc).__name__, retryable=True)
                )
            else:
                outcome = Outcome(row["id"], name, provider_message_id=result.provider_message_id)
            PROVIDER_SECONDS.labels(name).observe(time.perf_counter() - started)
        PROVIDER_CALLS.labels(
            name, channel, "ok" if outcome.error is None else outcome.error.code[:40]
        ).inc()
        return outcome

    async def _record(self, outcomes: Sequence[Outcome]) -> None:
        """Record the outcomes; a database that is down is waited for, since the calls
        were made and forgetting them would send again."""
        delay = 0.2
        while True:
            try:
                async with self.rt.uow() as uow:
                    policies: dict[str, Policy] = {}
                    for outcome in outcomes:
                        async with uow.session.begin_nested():
                            await self._record_one(uow, outcome, policies)
                    await uow.commit()
                return
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                log.warning(
                    "cannot record provider outcomes; retrying",
                    extra={"error_type": type(exc).__name__},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _record_one(
        self, uow: UnitOfWork, outcome: Outcome, policies: dict[str, Policy]
    ) -> None:
        row = await lifecycle.delivery_for_update(uow, outcome.delivery_id)
        if row is None or row["status"] != "sending":
            return  # purged, or cancelled meanwhile by another channel's proof
        ans = row["ans_registry"]
        if ans not in policies:
            policies[ans] = await self.rt.policy(uow, ans)
        policy = policies[ans]
        if outcome.error is None and outcome.provider_message_id is not None:
            await lifecycle.record_sent(
                uow,
                row,
                provider=outcome.provider,
                provider_message_id=outcome.provider_message_id,
                fallback_after=policy.timeout(row["channel"]),
                policy=policy,
            )
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
        elif more_providers and (error.retryable or error.code in _FAILOVER_CODES):
            await lifecycle.record_failover(uow, row, provider=outcome.provider, code=code)
        else:
            reason = "retries_exhausted" if error.retryable else "provider_rejected"
            await lifecycle.give_up_channel(
                uow, row, reason=safe_reason(f"{reason}:{code}"), policy=policy
            )


class FallbackTimer:
    """Gives up channels that gave no proof of delivery before their ``fallback_at``."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def tick(self, limit: int = 500) -> int:
        """Fall back from every channel past its timeout; return how many."""
        async with self.rt.uow() as uow:
            ids = (
                (
                    await uow.session.execute(
                        sa.select(deliveries.c.id)
                        .where(
                            deliveries.c.status == "sent",
                            deliveries.c.fallback_at.isnot(None),
                            deliveries.c.fallback_at <= uow.clock.now(),
                        )
                        .order_by(deliveries.c.fallback_at)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            policies: dict[str, Policy] = {}
            for delivery_id in ids:
                row = await lifecycle.delivery_for_update(uow, delivery_id)
                if row is None:
                    continue
                ans = row["ans_registry"]
                if ans not in policies:
                    policies[ans] = await self.rt.policy(uow, ans)
                await lifecycle.give_up_channel(
                    uow, row, reason="delivery_timeout", policy=policies[ans], timed_out=True
                )
            await uow.commit()
        return len(ids)
