"""Receipts and answers through the real providers' APIs (the emulators), the SMTP sink and
the service's own webhook endpoint: fallback driven by delivery status, retries that
respect Retry-After, provider failover, nothing sent twice, nothing lost on a crash."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import secrets
import string
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa

from notification_svc import lifecycle, webhooks
from notification_svc.consumers import NotificationHandlers
from notification_svc.dispatcher import Dispatcher, FallbackTimer, Outcome
from notification_svc.models import callbacks, deliveries, delivery_events, messages, protocols
from notification_svc.provider_setup import build_providers
from notification_svc.providers.base import ProviderError, StatusUpdate
from notification_svc.runtime import Runtime
from notification_svc_testdata import (
    answered,
    demand,
    opened,
    operator,
    protocol_number,
    service_settings,
)
from rn623_devinfra.provider_emulators import (
    FaultMode,
    ProviderName,
    ReceivedMessage,
    RunningEmulators,
)
from rn623_devinfra.waiting import eventually
from rn623_events.clock import ManualClock
from rn623_events.consumer import NotReady
from rn623_events.contracts.protocols import DemandRegistered
from rn623_events.db import outbox_table
from rn623_events.envelope import make_envelope
from rn623_events.registry import Event

pytestmark = pytest.mark.integration

ANS = "345678"


@dataclass
class Harness:
    """The service's parts driven step by step, and the emulators' HTTP control API."""

    rt: Runtime
    clock: ManualClock
    emu: RunningEmulators

    async def handle(self, *events: Event) -> None:
        """Apply events as the consumer does (one transaction per run of events)."""
        handlers = NotificationHandlers(self.rt).handlers()
        async with self.rt.uow() as uow:
            for event in events:
                envelope = make_envelope(event, source="protocol-svc", time=self.clock.now())
                uow.cause = envelope
                await handlers[envelope.type](event, envelope, uow)
            await uow.commit()

    async def tick(self) -> int:
        """One dispatcher tick."""
        return await Dispatcher(self.rt).tick()

    def fault(self, provider: ProviderName, mode: FaultMode, **options: Any) -> None:
        """Inject a fault in the emulators."""
        self.emu.set_fault(provider, mode, **options)

    def received(self, number: str, **filters: Any) -> list[ReceivedMessage]:
        """What the emulators and the SMTP sink received about a protocol."""
        return [
            m
            for m in self.emu.messages(**filters)
            if number in " ".join(str(x) for x in (m.text, m.template, m.subject))
        ]

    async def message(self, number: str, purpose: str = "receipt") -> dict[str, Any]:
        """The one message of a protocol and purpose, with its deliveries."""
        async with self.rt.sessions() as session:
            rows = (
                (
                    await session.execute(
                        sa.select(messages).where(
                            messages.c.protocol_number == number, messages.c.purpose == purpose
                        )
                    )
                )
                .mappings()
                .all()
            )
            assert len(rows) == 1, rows
            found = dict(rows[0])
            found["deliveries"] = [
                dict(d)
                for d in (
                    await session.execute(
                        sa.select(deliveries)
                        .where(deliveries.c.message_id == found["id"])
                        .order_by(deliveries.c.position)
                    )
                ).mappings()
            ]
        return found

    async def receipt_subjects(self, number: str) -> list[str]:
        """The subject keys of a protocol's receipts, sorted ("" is the contact's own)."""
        async with self.rt.sessions() as session:
            return sorted(
                (
                    await session.execute(
                        sa.select(messages.c.subject_key).where(
                            messages.c.protocol_number == number, messages.c.purpose == "receipt"
                        )
                    )
                ).scalars()
            )

    async def timeline(self, delivery_id: uuid.UUID) -> list[str]:
        """The statuses of a delivery's timeline, in order."""
        async with self.rt.sessions() as session:
            return list(
                (
                    await session.execute(
                        sa.select(delivery_events.c.status)
                        .where(delivery_events.c.delivery_id == delivery_id)
                        .order_by(delivery_events.c.id)
                    )
                ).scalars()
            )

    async def events(self, number: str) -> list[tuple[str, dict[str, Any]]]:
        """The events staged in the outbox for a protocol, in order."""
        async with self.rt.sessions() as session:
            rows = (
                await session.execute(
                    sa.select(outbox_table.c.event_type, outbox_table.c.payload)
                    .where(outbox_table.c.key == number)
                    .order_by(outbox_table.c.id)
                )
            ).all()
        return [(row.event_type, row.payload) for row in rows]

    async def until_status(self, number: str, status: str, purpose: str = "receipt") -> None:
        """Wait for the message to reach ``status`` (callbacks arrive over HTTP)."""

        async def reached() -> bool:
            return (await self.message(number, purpose))["status"] == status

        await eventually(reached, max_seconds=15)

    async def until_delivery(self, number: str, position: int, status: str) -> None:
        """Wait for the delivery at ``position`` to reach ``status``."""

        async def reached() -> bool:
            found = await self.message(number)
            return (
                len(found["deliveries"]) > position
                and found["deliveries"][position]["status"] == status
            )

        await eventually(reached, max_seconds=15)


@pytest_asyncio.fixture(loop_scope="session")
async def h(
    runtime: Runtime, clock: ManualClock, emulators: RunningEmulators, api: httpx.AsyncClient
) -> AsyncIterator[Harness]:
    """A harness with the operator known and the emulators' faults cleared."""
    emulators.clear_faults()
    harness = Harness(runtime, clock, emulators)
    await harness.handle(operator(ANS, at=clock.now()))
    yield harness
    emulators.clear_faults()


async def test_one_receipt_names_the_demand_and_is_delivered_on_whatsapp(h: Harness) -> None:
    number = protocol_number()
    contact = opened(ANS, number, h.clock.now())
    first = demand(ANS, number, h.clock.now())
    await h.handle(contact, first)  # one commit at protocol-svc: one receipt

    assert await h.tick() == 1
    await h.until_status(number, "delivered")
    found = await h.message(number)
    assert found["delivered_channel"] == "whatsapp"
    assert [d["channel"] for d in found["deliveries"]] == ["whatsapp"]
    whatsapp = found["deliveries"][0]
    assert whatsapp["provider"] == "meta"
    assert await h.timeline(whatsapp["id"]) == ["queued", "sent", "delivered"]
    assert [demand_info["demand_id"] for demand_info in found["content"]["demands"]] == [
        str(first.demand_id)
    ]
    sent = h.received(number, provider="meta")
    assert len(sent) == 1
    assert sent[0].to in (["5511990000002"], ["+5511990000002"])
    types = [t for t, _ in await h.events(number)]
    assert types == ["notification.sent", "notification.delivered"]


async def test_a_later_demand_gets_its_own_receipt(h: Harness) -> None:
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()
    await h.until_status(number, "delivered")
    later = demand(ANS, number, h.clock.now(), demand_type="non_assistance", days=7)
    await h.handle(later)
    async with h.rt.sessions() as session:
        keys = (
            (
                await session.execute(
                    sa.select(messages.c.subject_key).where(messages.c.protocol_number == number)
                )
            )
            .scalars()
            .all()
        )
    assert sorted(keys) == ["", str(later.demand_id)]


async def test_redelivered_events_send_nothing_twice(h: Harness) -> None:
    number = protocol_number()
    contact = opened(ANS, number, h.clock.now())
    for _ in range(3):
        await h.handle(contact)
    await h.tick()
    await h.until_status(number, "delivered")
    assert await h.tick() == 0
    async with h.rt.sessions() as session:
        count = await session.scalar(
            sa.select(sa.func.count()).where(messages.c.protocol_number == number)
        )
    assert count == 1
    assert [t for t, _ in await h.events(number)].count("notification.sent") == 1
    assert len(h.received(number)) == 1


async def test_no_delivery_callback_falls_back_to_sms_after_the_timeout_and_only_then(
    h: Harness,
) -> None:
    h.fault(provider="meta", mode="no_callback")
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()
    await h.until_delivery(number, 0, "sent")

    h.clock.advance(timedelta(seconds=299))
    assert await FallbackTimer(h.rt).tick() == 0  # not yet: the channel still has time
    assert len((await h.message(number))["deliveries"]) == 1

    h.clock.advance(timedelta(seconds=2))
    assert await FallbackTimer(h.rt).tick() == 1
    found = await h.message(number)
    assert [d["channel"] for d in found["deliveries"]] == ["whatsapp", "sms"]
    await h.tick()
    await h.until_status(number, "delivered")
    found = await h.message(number)
    assert found["delivered_channel"] == "sms"
    assert found["deliveries"][1]["provider"] == "zenvia"
    assert "delivery_timeout" in await h.timeline(found["deliveries"][0]["id"])
    failed = [p for t, p in await h.events(number) if t == "notification.failed"]
    assert [(f["channel"], f["reason"], f["final"], f["next_channel"]) for f in failed] == [
        ("whatsapp", "delivery_timeout", False, "sms")
    ]


async def test_a_delivered_channel_never_falls_back(h: Harness) -> None:
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()
    await h.until_status(number, "delivered")
    h.clock.advance(timedelta(hours=1))
    assert await FallbackTimer(h.rt).tick() == 0
    assert len((await h.message(number))["deliveries"]) == 1


async def test_an_undelivered_callback_falls_back_at_once(h: Harness) -> None:
    h.fault(provider="meta", mode="undelivered", count=1)
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()
    await h.until_delivery(number, 0, "failed")
    await h.tick()
    await h.until_status(number, "delivered")
    assert (await h.message(number))["delivered_channel"] == "sms"


async def test_rate_limit_waits_for_retry_after(h: Harness) -> None:
    h.fault(provider="meta", mode="rate_limit", count=1, retry_after=30)
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()
    whatsapp = (await h.message(number))["deliveries"][0]
    assert whatsapp["status"] == "queued"
    assert whatsapp["attempts"] == 1
    wait = (whatsapp["next_attempt_at"] - h.clock.now()).total_seconds()
    assert 30 <= wait <= 33
    h.clock.advance(timedelta(seconds=10))
    assert await h.tick() == 0  # the provider asked for 30 s
    h.clock.advance(timedelta(seconds=25))
    assert await h.tick() == 1
    await h.until_status(number, "delivered")
    assert await h.timeline(whatsapp["id"]) == ["queued", "retrying", "sent", "delivered"]


async def test_a_provider_that_keeps_failing_fails_over_to_the_next(h: Harness) -> None:
    h.fault(provider="meta", mode="server_error")
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    for _ in range(3):  # provider_max_attempts
        await h.tick()
        h.clock.advance(timedelta(seconds=10))
    await h.tick()
    await h.until_status(number, "delivered")
    found = await h.message(number)
    assert found["delivered_channel"] == "whatsapp"
    assert found["deliveries"][0]["provider"] == "zenvia"
    timeline = await h.timeline(found["deliveries"][0]["id"])
    assert timeline == ["queued", "retrying", "retrying", "failover", "sent", "delivered"]


async def test_a_timeout_is_retried(h: Harness) -> None:
    h.fault(provider="meta", mode="timeout", count=1, seconds=5)
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()  # the 2 s provider timeout fires
    whatsapp = (await h.message(number))["deliveries"][0]
    assert (whatsapp["status"], whatsapp["last_error"]) == ("queued", "timeout")
    h.clock.advance(timedelta(seconds=10))
    await h.tick()
    await h.until_status(number, "delivered")
    # a timeout is ambiguous: the provider finished the first call too (ADR 0006)
    await h.emu.wait_for_messages(2, provider="meta")
    assert len(h.received(number, provider="meta")) == 2


async def test_a_rejected_number_goes_to_the_next_channel(h: Harness) -> None:
    h.fault(provider="meta", mode="reject")
    h.fault(provider="zenvia", mode="reject")
    h.fault(provider="twilio", mode="reject")
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()  # whatsapp rejected
    await h.tick()  # sms rejected
    await h.tick()  # e-mail through SMTP
    found = await h.message(number)
    assert [d["status"] for d in found["deliveries"]] == ["failed", "failed", "sent"]
    assert found["status"] == "sent"  # SMTP accepted: no delivery proof exists for e-mail
    assert len(h.received(number, channel="email")) == 1
    failed = [p for t, p in await h.events(number) if t == "notification.failed"]
    assert [(f["channel"], f["next_channel"], f["final"]) for f in failed] == [
        ("whatsapp", "sms", False),
        ("sms", "email", False),
    ]


async def test_every_channel_failing_is_a_final_failure(h: Harness) -> None:
    h.fault(provider="meta", mode="reject")
    h.fault(provider="zenvia", mode="reject")
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now(), email=None))
    await h.tick()
    await h.tick()
    found = await h.message(number)
    assert found["status"] == "failed"
    failed = [p for t, p in await h.events(number) if t == "notification.failed"]
    assert failed[-1]["final"] is True
    assert failed[-1]["next_channel"] is None


async def test_a_beneficiary_with_no_address_is_unreachable(h: Harness) -> None:
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now(), email=None, phone=None, whatsapp=None))
    found = await h.message(number)
    assert (found["status"], found["deliveries"]) == ("unreachable", [])
    assert await h.tick() == 0


async def test_unreachable_and_reachable_contacts_of_one_poll_each_get_their_own(
    h: Harness,
) -> None:
    """Receipts written together: the one with no address is kept unreachable with no
    delivery; each other one has one queued delivery, its timeline saying so."""
    reachable = [protocol_number(), protocol_number()]
    nowhere = protocol_number()
    await h.handle(
        opened(ANS, reachable[0], h.clock.now()),
        opened(ANS, nowhere, h.clock.now(), email=None, phone=None, whatsapp=None),
        opened(ANS, reachable[1], h.clock.now()),
    )
    found = await h.message(nowhere)
    assert (found["status"], found["deliveries"]) == ("unreachable", [])
    for number in reachable:
        found = await h.message(number)
        assert found["status"] == "pending"
        [delivery] = found["deliveries"]
        assert (delivery["status"], delivery["recipient"] is not None) == ("queued", True)
        assert await h.timeline(delivery["id"]) == ["queued"]
    assert await h.tick() == len(reachable)


async def test_preferred_email_goes_through_smtp_first(h: Harness) -> None:
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now(), preferred_channels=("email",)))
    await h.tick()
    found = await h.message(number)
    assert [(d["channel"], d["status"], d["provider"]) for d in found["deliveries"]] == [
        ("email", "sent", "smtp")
    ]
    assert found["deliveries"][0]["provider_message_id"]


async def test_a_crash_mid_send_loses_nothing(h: Harness) -> None:
    h.fault("meta", "timeout", count=1, seconds=5)
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    crashed = asyncio.create_task(h.tick())

    async def in_flight() -> bool:  # claimed, and the provider call hanging
        return (await h.message(number))["deliveries"][0]["status"] == "sending"

    await eventually(in_flight, max_seconds=15)
    crashed.cancel()  # the worker dies mid-send
    with pytest.raises(asyncio.CancelledError):
        await crashed
    assert (await h.message(number))["deliveries"][0]["status"] == "sending"

    assert await h.tick() == 0  # the lease still holds
    h.clock.advance(timedelta(seconds=61))
    assert await h.tick() == 1  # the lease ended: another worker sends it
    await h.until_status(number, "delivered")
    assert 1 <= len(h.received(number, provider="meta")) <= 2  # at least once


async def test_a_hanging_call_does_not_hold_up_the_record_of_the_others(h: Harness) -> None:
    """Outcomes are recorded as calls end: an e-mail accepted at once is recorded while a
    WhatsApp call of the same tick still hangs (its callbacks would otherwise beat it)."""
    h.fault("meta", "timeout", count=1, seconds=10)
    slow, fast = protocol_number(), protocol_number()
    await h.handle(
        opened(ANS, slow, h.clock.now()),
        opened(ANS, fast, h.clock.now(), preferred_channels=("email",)),
    )
    patient = h.rt.settings.model_copy(update={"provider_timeouts": {"meta": 8.0}})
    ticking = asyncio.create_task(Dispatcher(dataclasses.replace(h.rt, settings=patient)).tick())
    await h.until_delivery(fast, 0, "sent")
    assert not ticking.done()
    assert (await h.message(slow))["deliveries"][0]["status"] == "sending"
    assert await ticking == 2


async def test_an_outcome_that_cannot_be_recorded_does_not_stop_the_others(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record that raises (a bug) is counted and logged; the calls still running are
    recorded when they end, not cancelled."""
    h.fault("meta", "timeout", count=1, seconds=1)  # WhatsApp ends a second later
    broken, fine = protocol_number(), protocol_number()
    await h.handle(
        opened(ANS, broken, h.clock.now(), preferred_channels=("email",)),
        opened(ANS, fine, h.clock.now()),
    )
    record = Dispatcher._record
    failed: list[int] = []

    async def first_record_fails(self: Dispatcher, outcomes: Any) -> None:
        if not failed:
            failed.append(len(outcomes))
            raise RuntimeError("a bug in the record")
        await record(self, outcomes)

    monkeypatch.setattr(Dispatcher, "_record", first_record_fails)
    assert await h.tick() == 2
    assert failed == [1]  # the e-mail's outcome
    assert (await h.message(broken))["deliveries"][0]["status"] == "sending"  # resent later
    assert (await h.message(fine))["deliveries"][0]["status"] in ("sent", "delivered")


async def test_the_answer_copy_of_a_denial(h: Harness) -> None:
    number = protocol_number()
    first = demand(ANS, number, h.clock.now())
    await h.handle(opened(ANS, number, h.clock.now()), first)
    await h.tick()
    await h.handle(answered(ANS, number, first.demand_id, h.clock.now()))
    await h.tick()
    await h.until_status(number, "delivered", purpose="answer")
    found = await h.message(number, purpose="answer")
    assert found["content"]["answer"]["legal_basis"] == "Cláusula 12.3 do contrato"
    assert found["content"]["answer"]["reanalysis_business_days"] == 7
    assert found["content"]["answer"]["demand_type"] == "assistance"


async def test_a_late_failure_of_a_timed_out_channel_does_not_skip_a_channel(
    h: Harness,
) -> None:
    h.fault("meta", "late_callback", count=1, seconds=600)
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()
    await h.until_delivery(number, 0, "sent")
    h.clock.advance(timedelta(seconds=301))
    assert await FallbackTimer(h.rt).tick() == 1  # WhatsApp gave no proof: SMS is next
    whatsapp = (await h.message(number))["deliveries"][0]
    async with h.rt.uow() as uow:
        row = await lifecycle.delivery_for_update(uow, whatsapp["id"])
        assert row is not None
        policy = await h.rt.policy(uow, ANS)
        await lifecycle.apply_status(
            uow,
            row,
            StatusUpdate(whatsapp["provider_message_id"], "failed"),
            source="webhook",
            policy=policy,
        )
        await uow.commit()
    found = await h.message(number)
    assert [d["channel"] for d in found["deliveries"]] == ["whatsapp", "sms"]  # no e-mail yet
    assert found["status"] == "pending"


async def test_a_callback_stored_before_the_send_was_recorded_is_applied(h: Harness) -> None:
    h.fault("meta", "no_callback", count=1)
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()
    whatsapp = (await h.message(number))["deliveries"][0]
    # the provider's "delivered" reached the webhook while the send's record was open
    async with h.rt.uow() as uow:
        await uow.session.execute(
            callbacks.insert().values(
                provider="meta",
                provider_message_id=whatsapp["provider_message_id"],
                status="delivered",
                received_at=h.clock.now(),
            )
        )
        await uow.commit()
    assert await FallbackTimer(h.rt).tick() == 0
    found = await h.message(number)
    assert (found["status"], found["delivered_channel"]) == ("delivered", "whatsapp")
    h.clock.advance(timedelta(seconds=301))
    assert await FallbackTimer(h.rt).tick() == 0  # proven: no fallback
    assert len((await h.message(number))["deliveries"]) == 1


async def test_callbacks_that_beat_the_record_of_their_sends_are_applied_by_it(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The providers' callbacks reached the webhook before the sends were recorded (the
    webhook stores them): the record applies them, for every send of its chunk at once,
    each in order ("delivered" then "read" both count), and nothing is left to sweep."""
    h.fault("meta", "no_callback", count=3)
    numbers = [protocol_number() for _ in range(3)]
    for number in numbers:
        await h.handle(opened(ANS, number, h.clock.now()))
    dispatcher = Dispatcher(h.rt)
    record = dispatcher._record
    made: list[Outcome] = []

    async def hold(outcomes: Sequence[Outcome]) -> None:
        made.extend(outcomes)

    monkeypatch.setattr(dispatcher, "_record", hold)
    assert await dispatcher.tick() == 3  # the calls are made; their record waits
    early: dict[str, list[str]] = {}
    for index, outcome in enumerate(made):
        statuses = ["sent", "delivered"] + (["read"] if index % 2 == 0 else [])
        early[outcome.provider_message_id or ""] = statuses
        updates = [StatusUpdate(outcome.provider_message_id or "", s) for s in statuses]
        assert await webhooks.apply_callbacks(h.rt, "meta", updates) == 0  # stored
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "callbacks" in statement:
            statements.append(statement.split()[0])

    engine = h.rt.sessions.kw["bind"].sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        await record(made)  # one chunk
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert statements == ["SELECT", "UPDATE"]
    for number in numbers:
        found = await h.message(number)
        whatsapp = found["deliveries"][0]
        assert (found["status"], found["delivered_channel"]) == ("delivered", "whatsapp")
        expected = "read" if "read" in early[whatsapp["provider_message_id"]] else "delivered"
        assert whatsapp["status"] == expected
        assert await h.timeline(whatsapp["id"]) == [
            "queued",
            "sent",
            *early[whatsapp["provider_message_id"]][1:],
        ]
    async with h.rt.sessions() as session:
        unapplied = await session.scalar(
            sa.select(sa.func.count())
            .select_from(callbacks)
            .where(
                callbacks.c.provider_message_id.in_(list(early)), callbacks.c.applied_at.is_(None)
            )
        )
    assert unapplied == 0
    assert await FallbackTimer(h.rt).sweep_callbacks() == 0


async def whatsapp_unproven_sms_queued(h: Harness) -> str:
    """A receipt whose WhatsApp send gave no proof in time, so its SMS fallback is queued
    (not sent yet); its protocol number."""
    h.fault("meta", "no_callback", count=1)
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()
    await h.until_delivery(number, 0, "sent")
    h.clock.advance(timedelta(seconds=301))
    assert await FallbackTimer(h.rt).tick() == 1
    return number


async def test_a_proof_during_an_in_flight_send_cancels_it(h: Harness) -> None:
    number = await whatsapp_unproven_sms_queued(h)
    h.fault("zenvia", "timeout", count=1, seconds=3)
    sending = asyncio.create_task(h.tick())  # the SMS call hangs, then times out
    await h.until_delivery(number, 1, "sending")
    whatsapp = (await h.message(number))["deliveries"][0]
    await webhooks.apply_callbacks(
        h.rt, "meta", [StatusUpdate(whatsapp["provider_message_id"], "delivered")]
    )  # the late proof
    await sending
    found = await h.message(number)
    assert (found["status"], found["delivered_channel"]) == ("delivered", "whatsapp")
    assert found["deliveries"][1]["status"] == "cancelled"  # not queued for a retry
    assert await h.tick() == 0


async def test_a_late_proof_cancels_the_fallback_still_queued(h: Harness) -> None:
    """WhatsApp proves delivery after the SMS fallback was queued but before it was sent:
    the message is delivered on WhatsApp, the SMS cancelled (with its timeline entry) and
    nothing waits for a proof any more."""
    number = await whatsapp_unproven_sms_queued(h)
    whatsapp, sms = (await h.message(number))["deliveries"]
    assert (whatsapp["status"], sms["status"]) == ("sent", "queued")
    assert (
        await webhooks.apply_callbacks(
            h.rt, "meta", [StatusUpdate(whatsapp["provider_message_id"], "delivered")]
        )
        == 1
    )
    found = await h.message(number)
    assert (found["status"], found["delivered_channel"]) == ("delivered", "whatsapp")
    whatsapp, sms = found["deliveries"]
    assert (whatsapp["status"], sms["status"]) == ("delivered", "cancelled")
    assert (whatsapp["fallback_at"], sms["fallback_at"], sms["next_attempt_at"]) == (
        None,
        None,
        None,
    )
    assert (await h.timeline(whatsapp["id"]))[-1] == "delivered"
    assert (await h.timeline(sms["id"])) == ["queued", "cancelled"]
    delivered = [p for t, p in await h.events(number) if t == "notification.delivered"]
    assert [d["channel"] for d in delivered] == ["whatsapp"]
    assert await h.tick() == 0
    assert h.received(number, provider="zenvia") == []
    # a later "read" adds to WhatsApp's timeline and changes nothing else
    assert (
        await webhooks.apply_callbacks(
            h.rt, "meta", [StatusUpdate(whatsapp["provider_message_id"], "read")]
        )
        == 1
    )
    found = await h.message(number)
    assert [d["status"] for d in found["deliveries"]] == ["read", "cancelled"]
    assert len([t for t, _ in await h.events(number) if t == "notification.delivered"]) == 1


async def test_a_proof_waiting_on_a_claim_does_not_cancel_the_claimed_send(h: Harness) -> None:
    """The proof's update waits for the dispatcher's claim of the queued SMS to commit;
    it then finds the SMS "sending" under a live lease and leaves it to its sender."""
    number = await whatsapp_unproven_sms_queued(h)
    whatsapp, sms = (await h.message(number))["deliveries"]
    async with h.rt.sessions() as claim:  # the dispatcher's claim, not yet committed
        await claim.execute(
            sa.update(deliveries)
            .where(deliveries.c.id == sms["id"])
            .values(status="sending", lease_until=h.clock.now() + timedelta(seconds=60))
        )
        proof = asyncio.create_task(
            webhooks.apply_callbacks(
                h.rt, "meta", [StatusUpdate(whatsapp["provider_message_id"], "delivered")]
            )
        )
        await asyncio.sleep(0.5)
        assert not proof.done()  # waiting for the claim's row lock
        await claim.commit()
    assert await proof == 1
    found = await h.message(number)
    assert found["status"] == "delivered"
    assert found["deliveries"][1]["status"] == "sending"
    assert "cancelled" not in await h.timeline(sms["id"])


async def test_an_outcome_from_an_expired_claim_is_ignored(h: Harness) -> None:
    h.fault("meta", "timeout", count=1, seconds=5)
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now()))
    crashed = asyncio.create_task(h.tick())
    await h.until_delivery(number, 0, "sending")
    async with h.rt.sessions() as session:
        old_token = await session.scalar(
            sa.select(deliveries.c.lease_token).where(deliveries.c.protocol_number == number)
        )
    crashed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await crashed
    h.clock.advance(timedelta(seconds=Dispatcher(h.rt).lease_seconds + 1))
    assert await h.tick() == 1
    await h.until_status(number, "delivered")
    whatsapp = (await h.message(number))["deliveries"][0]
    stale = Outcome(
        whatsapp["id"],
        whatsapp["message_id"],
        old_token,
        "meta",
        error=ProviderError("http_500", retryable=True),
    )
    await Dispatcher(h.rt)._record([stale])  # the first worker, back from the dead
    assert (await h.message(number))["deliveries"][0]["status"] == "delivered"


async def test_the_last_channel_timing_out_ends_sent_then_failed_on_a_late_failure(
    h: Harness,
) -> None:
    h.fault("meta", "no_callback", count=1)
    number = protocol_number()
    await h.handle(opened(ANS, number, h.clock.now(), email=None, phone=None))
    await h.tick()
    await h.until_delivery(number, 0, "sent")
    h.clock.advance(timedelta(seconds=301))
    assert await FallbackTimer(h.rt).tick() == 1
    found = await h.message(number)
    assert found["status"] == "sent"  # accepted, never proven, nothing left to try
    failed = [p for t, p in await h.events(number) if t == "notification.failed"]
    assert [(f["final"], f["reason"]) for f in failed] == [(True, "delivery_timeout")]
    await webhooks.apply_callbacks(
        h.rt, "meta", [StatusUpdate(found["deliveries"][0]["provider_message_id"], "failed")]
    )
    assert (await h.message(number))["status"] == "failed"


async def test_refused_credentials_fail_over_to_the_next_provider_at_once(
    h: Harness, migrated_database: str, api_port: int
) -> None:
    settings = service_settings(
        migrated_database, h.emu, api_port, meta_access_token="revoked-token"
    )
    providers = build_providers(settings)
    rt = Runtime(sessions=h.rt.sessions, clock=h.clock, settings=settings, providers=providers)
    try:
        number = protocol_number()
        await h.handle(opened(ANS, number, h.clock.now()))
        await Dispatcher(rt).tick()  # Meta answers 401
        whatsapp = (await h.message(number))["deliveries"][0]
        assert (whatsapp["status"], whatsapp["provider_index"]) == ("queued", 1)
        await Dispatcher(rt).tick()
        await h.until_status(number, "delivered")
        assert (await h.message(number))["deliveries"][0]["provider"] == "zenvia"
    finally:
        await providers.aclose()


async def test_landlines_get_no_sms_and_old_mobiles_get_their_ninth_digit(h: Harness) -> None:
    landline = protocol_number()
    await h.handle(opened(ANS, landline, h.clock.now(), phone="+551132345678", whatsapp=None))
    assert (await h.message(landline))["channels"] == ["email"]

    old_mobile = protocol_number()
    await h.handle(opened(ANS, old_mobile, h.clock.now(), phone=None, whatsapp="+551181234567"))
    await h.tick()
    await h.until_status(old_mobile, "delivered")
    (sent,) = h.received(old_mobile, provider="meta")
    assert sent.to in (["5511981234567"], ["+5511981234567"])


async def test_a_chunk_records_each_outcome_and_skips_only_the_one_it_cannot_record(
    h: Harness,
) -> None:
    """Accepted calls are recorded together; one whose record fails (a provider id with a
    NUL, which PostgreSQL refuses) is left to its lease alone, and the rest still land:
    WhatsApp sent with its fallback timer, e-mail final, a retryable failure retried."""
    numbers = [protocol_number() for _ in range(4)]
    await h.handle(
        opened(ANS, numbers[0], h.clock.now()),
        opened(ANS, numbers[1], h.clock.now(), preferred_channels=("email",)),
        opened(ANS, numbers[2], h.clock.now()),
        opened(ANS, numbers[3], h.clock.now()),
    )
    token = uuid.uuid4()
    async with h.rt.uow() as uow:
        await uow.session.execute(
            deliveries.update()
            .where(deliveries.c.protocol_number.in_(numbers))
            .values(status="sending", lease_token=token, lease_until=h.clock.now())
        )
        await uow.commit()
    rows = {n: (await h.message(n))["deliveries"][0] for n in numbers}

    def outcome(number: str, provider: str, **result: Any) -> Outcome:
        row = rows[number]
        return Outcome(row["id"], row["message_id"], token, provider, **result)

    await Dispatcher(h.rt)._record(
        [
            outcome(numbers[0], "meta", provider_message_id="wamid.ok"),
            outcome(numbers[1], "smtp", provider_message_id="<ok@example>"),
            outcome(numbers[2], "meta", provider_message_id="bad\x00id"),
            outcome(numbers[3], "meta", error=ProviderError("http_503", retryable=True)),
        ]
    )
    found = {n: await h.message(n) for n in numbers}
    whatsapp, email, unrecorded, retried = (found[n]["deliveries"][0] for n in numbers)
    assert (whatsapp["status"], whatsapp["provider_message_id"]) == ("sent", "wamid.ok")
    assert whatsapp["fallback_at"] is not None
    assert whatsapp["lease_until"] is None
    assert found[numbers[0]]["status"] == "pending"  # waiting for the proof of delivery
    assert (email["status"], email["fallback_at"]) == ("sent", None)
    assert found[numbers[1]]["status"] == "sent"  # SMTP acceptance is final
    assert (unrecorded["status"], unrecorded["lease_token"]) == ("sending", token)
    assert (retried["status"], retried["attempts"], retried["last_error"]) == (
        "queued",
        1,
        "http_503",
    )
    assert (await h.timeline(whatsapp["id"]))[-1] == "sent"
    assert (await h.timeline(email["id"]))[-1] == "sent"
    assert (await h.timeline(unrecorded["id"]))[-1] == "queued"
    assert (await h.timeline(retried["id"]))[-1] == "retrying"
    sent_events = {
        n: [t for t, _ in await h.events(n) if t == "notification.sent"] for n in numbers
    }
    assert {n: len(e) for n, e in sent_events.items()} == dict(
        zip(numbers, (1, 1, 0, 0), strict=True)
    )


async def test_a_consumer_commit_wakes_the_dispatcher_at_once(h: Harness) -> None:
    """A receipt created in the worker's process is sent at once, not at the
    dispatcher's next poll (here a minute away)."""
    slow_poll = h.rt.settings.model_copy(update={"dispatch_interval_seconds": 60.0})
    rt = dataclasses.replace(h.rt, settings=slow_poll)
    stop = asyncio.Event()
    running = asyncio.create_task(Dispatcher(rt).run(stop))
    try:
        await asyncio.sleep(0.5)  # its first tick found nothing: it polls in 30-60 s
        number = protocol_number()
        await h.handle(opened(ANS, number, h.clock.now()))

        async def sent() -> bool:
            return bool(h.received(number))

        await eventually(sent, max_seconds=15)
    finally:
        stop.set()
        await running


async def test_demands_before_the_first_send_fold_into_the_contacts_receipt(h: Harness) -> None:
    """In the receipt's own transaction (kept in memory, a repeat folded once) and in a
    later one (read back, locked), until a channel has tried it."""
    number = protocol_number()
    first = demand(ANS, number, h.clock.now())
    await h.handle(opened(ANS, number, h.clock.now()), first, first)
    second = demand(ANS, number, h.clock.now(), demand_type="non_assistance", days=7)
    await h.handle(second)
    found = await h.message(number)
    assert [d["demand_id"] for d in found["content"]["demands"]] == [
        str(first.demand_id),
        str(second.demand_id),
    ]
    assert found["demand_id"] == first.demand_id
    assert await h.tick() == 1
    await h.until_status(number, "delivered")
    assert len(h.received(number)) == 1


@contextlib.contextmanager
def tables_inserted_into(h: Harness) -> Iterator[list[str]]:
    """The table each statement run meanwhile inserts into, one entry per statement."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.extend(re.findall(r"INSERT INTO (\w+)", statement)[:1])

    engine = h.rt.sessions.kw["bind"].sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


async def test_the_contacts_of_a_poll_are_written_when_it_commits(h: Harness) -> None:
    """Addresses and operators in one round trip, demands in one, and the receipts, each
    naming its demands, in one; each receipt carries its own contact's trace."""
    numbers = [protocol_number() for _ in range(4)]
    events: list[Event] = []
    demands_of: dict[str, DemandRegistered] = {}
    for number in numbers:
        demands_of[number] = demand(ANS, number, h.clock.now())
        events += [opened(ANS, number, h.clock.now()), demands_of[number]]
    handlers = NotificationHandlers(h.rt).handlers()
    traces: dict[str, dict[str, str]] = {}
    async with h.rt.uow() as uow:
        for event in events:
            envelope = make_envelope(event, source="protocol-svc", time=h.clock.now())
            if event.event_type == "protocol.opened":
                trace = {"traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"}
                envelope = envelope.with_trace(trace)
                traces[envelope.subject] = trace
            uow.cause = envelope
            await handlers[envelope.type](event, envelope, uow)
        with tables_inserted_into(h) as statements:
            await uow.commit()
    assert [s for s in statements if s != "outbox"] == ["protocols", "demands", "messages"]
    for number in numbers:
        found = await h.message(number)
        assert [d["demand_id"] for d in found["content"]["demands"]] == [
            str(demands_of[number].demand_id)
        ]
        assert found["demand_id"] == demands_of[number].demand_id
        assert found["trace_headers"] == traces[number]
    assert await h.tick() == len(numbers)
    for number in numbers:
        await h.until_status(number, "delivered")
        assert len(h.received(number)) == 1


async def test_a_copy_of_a_stored_contact_with_a_new_demand_still_names_it(h: Harness) -> None:
    """The contact again under another event id, with a new demand, in a later poll: its
    receipt is not created twice, and the demand is folded into it while no channel has
    tried it, else gets a receipt of its own."""
    sent = protocol_number()
    await h.handle(opened(ANS, sent, h.clock.now()))
    assert await h.tick() == 1
    await h.until_status(sent, "delivered")
    later = protocol_number()
    await h.handle(opened(ANS, later, h.clock.now()))  # stored, not tried yet
    folded, own = demand(ANS, later, h.clock.now()), demand(ANS, sent, h.clock.now())
    await h.handle(opened(ANS, later, h.clock.now()), folded)
    await h.handle(opened(ANS, sent, h.clock.now()), own)
    found = await h.message(later)
    assert [d["demand_id"] for d in found["content"]["demands"]] == [str(folded.demand_id)]
    assert await h.receipt_subjects(sent) == ["", str(own.demand_id)]


async def test_a_poll_of_new_contacts_and_a_stored_one_gives_each_its_receipt(
    h: Harness,
) -> None:
    """New contacts and a copy of a stored one, with a new demand, in one poll: the new
    ones get their receipts (written together), the copy gets no second receipt, and its
    new demand gets a receipt of its own (its first was sent)."""
    stored = protocol_number()
    await h.handle(opened(ANS, stored, h.clock.now()))
    assert await h.tick() == 1
    await h.until_status(stored, "delivered")
    new = [protocol_number() for _ in range(3)]
    own = demand(ANS, stored, h.clock.now())
    await h.handle(
        opened(ANS, new[0], h.clock.now()),
        opened(ANS, stored, h.clock.now()),
        own,
        *(opened(ANS, number, h.clock.now()) for number in new[1:]),
    )
    for number in new:
        assert (await h.message(number))["status"] == "pending"
    assert await h.receipt_subjects(stored) == ["", str(own.demand_id)]
    assert await h.tick() == len(new) + 1


async def test_a_contact_before_its_operator_waits_and_keeps_nothing(h: Harness) -> None:
    """The operator's registration has not arrived: the commit raises ``NotReady``
    (which the consumer runner waits out) and stores nothing; once the operator is known,
    the same contact gets its receipt."""
    ans = "".join(secrets.choice(string.digits) for _ in range(6))
    number = protocol_number()
    with pytest.raises(NotReady):
        await h.handle(opened(ans, number, h.clock.now()))
    async with h.rt.sessions() as session:
        stored = await session.scalar(
            sa.select(sa.func.count())
            .select_from(protocols)
            .where(protocols.c.protocol_number == number)
        )
    assert stored == 0
    await h.handle(operator(ans, at=h.clock.now()))
    await h.handle(opened(ans, number, h.clock.now()))
    assert (await h.message(number))["status"] == "pending"


async def test_callbacks_of_concurrent_requests_are_applied_as_one_batch(h: Harness) -> None:
    """The API's batch: every request's updates applied and stored in one transaction
    (the callbacks in one statement, in the order they came), each request told how many
    deliveries it changed."""
    h.fault("meta", "no_callback", count=2)
    numbers = [protocol_number(), protocol_number()]
    for number in numbers:
        await h.handle(opened(ANS, number, h.clock.now()))
    await h.tick()
    ids = []
    for number in numbers:
        await h.until_delivery(number, 0, "sent")
        ids.append((await h.message(number))["deliveries"][0]["provider_message_id"])
    stranger = f"SM{uuid.uuid4().hex}"
    batch: list[webhooks.CallbackBatch] = [
        ("meta", [StatusUpdate(ids[1], "sent"), StatusUpdate(ids[1], "delivered")]),
        ("twilio", [StatusUpdate(stranger, "delivered")]),  # a message we never sent
        ("meta", [StatusUpdate(ids[0], "read")]),
    ]
    with tables_inserted_into(h) as statements:
        async with h.rt.uow() as uow:
            assert await webhooks.apply_batch(h.rt, uow, batch) == [1, 0, 1]
            await uow.commit()
    assert statements.count("callbacks") == 1
    for number, status in zip(numbers, ("read", "delivered"), strict=True):
        found = await h.message(number)
        assert (found["status"], found["deliveries"][0]["status"]) == ("delivered", status)
    async with h.rt.sessions() as session:
        stored = (
            await session.execute(
                sa.select(
                    callbacks.c.provider, callbacks.c.status, callbacks.c.applied_at.isnot(None)
                ).where(callbacks.c.provider_message_id.in_([*ids, stranger]))
            )
        ).all()
    assert sorted(stored) == sorted(
        [
            ("meta", "sent", True),
            ("meta", "delivered", True),
            ("meta", "read", True),
            ("twilio", "delivered", False),  # kept for a record that will never come
        ]
    )
    async with h.rt.sessions() as session:
        in_order = (
            await session.scalars(
                sa.select(callbacks.c.status)
                .where(callbacks.c.provider_message_id == ids[1])
                .order_by(callbacks.c.id)
            )
        ).all()
    assert in_order == ["sent", "delivered"]


async def whatsapp_then_sms_both_unproven(h: Harness) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A receipt sent on WhatsApp, then on SMS after WhatsApp's timeout, neither proven,
    the WhatsApp delivery sorting first (by id); its number and both deliveries."""
    for _ in range(20):
        number = await whatsapp_unproven_sms_queued(h)
        h.fault("zenvia", "no_callback", count=1)
        await h.tick()  # the SMS (and whatever an earlier try left due)
        await h.until_delivery(number, 1, "sent")
        whatsapp, sms = (await h.message(number))["deliveries"]
        if whatsapp["id"] < sms["id"]:
            return number, whatsapp, sms
        # not this one: prove its SMS, so that no fallback of it falls due in the next try
        await webhooks.apply_callbacks(
            h.rt, "zenvia", [StatusUpdate(sms["provider_message_id"], "delivered")]
        )
    pytest.fail("no WhatsApp delivery sorted first in 20 tries")


async def test_a_batch_with_a_proof_then_a_failure_of_one_message_sends_nothing_more(
    h: Harness,
) -> None:
    """WhatsApp's proof and SMS's failure of one message in one batch, the proof applied
    first (the batch goes in delivery id order): the failure sees the message delivered
    and queues no e-mail, as it would have in a transaction of its own."""
    number, whatsapp, sms = await whatsapp_then_sms_both_unproven(h)
    batch: list[webhooks.CallbackBatch] = [
        ("zenvia", [StatusUpdate(sms["provider_message_id"], "failed", error_code="E1")]),
        ("meta", [StatusUpdate(whatsapp["provider_message_id"], "delivered")]),
    ]
    async with h.rt.uow() as uow:
        await webhooks.apply_batch(h.rt, uow, batch)
        await uow.commit()
    found = await h.message(number)
    assert (found["status"], found["delivered_channel"]) == ("delivered", "whatsapp")
    assert [d["channel"] for d in found["deliveries"]] == ["whatsapp", "sms"]  # no e-mail
    sms_failed = [
        p for t, p in await h.events(number) if t == "notification.failed" and p["channel"] == "sms"
    ]
    assert not any(f.get("next_channel") for f in sms_failed)
    assert await h.tick() == 0


async def test_a_sweep_judges_each_callback_on_its_message_as_the_previous_left_it(
    h: Harness,
) -> None:
    """Stored callbacks of two deliveries of one message in one sweep: WhatsApp's proof
    first, then the SMS's failure, which sees the message delivered and queues no
    e-mail (it would have, judged on the message as it was before the proof)."""
    number, whatsapp, sms = await whatsapp_then_sms_both_unproven(h)
    async with h.rt.uow() as uow:  # as if both arrived while their records were open
        await uow.session.execute(
            callbacks.insert(),
            [
                {
                    "provider": "meta",
                    "provider_message_id": whatsapp["provider_message_id"],
                    "status": "delivered",
                    "received_at": h.clock.now(),
                },
                {
                    "provider": "zenvia",
                    "provider_message_id": sms["provider_message_id"],
                    "status": "failed",
                    "error_code": "E1",
                    "received_at": h.clock.now(),
                },
            ],
        )
        await uow.commit()
    assert await FallbackTimer(h.rt).sweep_callbacks() == 2
    found = await h.message(number)
    assert (found["status"], found["delivered_channel"]) == ("delivered", "whatsapp")
    assert [d["channel"] for d in found["deliveries"]] == ["whatsapp", "sms"]  # no e-mail
    assert await h.tick() == 0


async def test_an_early_sent_callback_needs_no_applying_and_an_early_proof_waits(
    h: Harness,
) -> None:
    """Callbacks for a send not yet recorded: "sent" says nothing the record will not,
    so it is stored as applied; "delivered" waits for the record to apply it."""
    early = f"wamid.early-{uuid.uuid4()}"
    await webhooks.apply_callbacks(
        h.rt, "meta", [StatusUpdate(early, "sent"), StatusUpdate(early, "delivered")]
    )
    async with h.rt.sessions() as session:
        stored = dict(
            (
                await session.execute(
                    sa.select(callbacks.c.status, callbacks.c.applied_at.isnot(None)).where(
                        callbacks.c.provider_message_id == early
                    )
                )
            ).all()
        )
    assert stored == {"sent": True, "delivered": False}
