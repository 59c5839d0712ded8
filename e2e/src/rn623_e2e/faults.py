"""Faults under load, each checked by counting effects afterwards: nothing lost, nothing doubled.

Each fault gets its own operator and its own load of protocols (each with a demand, every
fifth with a NIP complaint), opened over HTTP the way a contact center does it: a call that
fails is retried with the same ``Idempotency-Key``. When the fault is over, the effects are
counted in every service's own database and at the provider emulators:

- protocol-svc: one protocol per accepted call;
- deadline-svc: one deadline per demand;
- notification-svc: one receipt per protocol, delivered or sent, and exactly one message
  accepted by a provider for it;
- retention-svc: every protocol scheduled;
- igr-svc: the NIP complaints counted once each.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from rn623_e2e.platform import Platform, protocols_named
from rn623_e2e.report import Report
from rn623_e2e.traffic import Beneficiary, Operator, cpf, eventually, expect_ok
from rn623_events.contracts.inbound import (
    ContactOpened,
    FirstDemand,
    InboundInteractionRecorded,
    RawBeneficiary,
)
from rn623_events.envelope import make_envelope

SETTLE_SECONDS = 180.0
RETRY_FOR_SECONDS = 120.0


@dataclass
class Load:
    """Protocols opened under a fault, and how the calls went."""

    operator: Operator
    numbers: list[str] = field(default_factory=list)
    nip: int = 0
    retried_calls: int = 0
    gave_up: int = 0
    accepted_at: list[float] = field(default_factory=list)  # monotonic instants of 2xx


class Faults:
    """The fault part of the suite; one method per fault."""

    section = "faults"

    def __init__(self, platform: Platform, report: Report, *, load: int, seed: int) -> None:
        self.platform = platform
        self.report = report
        self.load_size = load
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
        self.client = httpx.AsyncClient(timeout=10.0, headers=platform.headers())
        self.personal: list[str] = []
        self.next_operator = self.rng.randrange(400000, 499000)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    # --- load and counting ----------------------------------------------------------------

    async def new_operator(self, name: str) -> Operator:
        """A fresh operator for one fault, known to deadline-svc before the load starts."""
        self.next_operator += 1
        op = Operator(str(self.next_operator), f"Operadora {name}", "medical", "medical", "MG",
                      "3106200", 50_000)  # fmt: skip
        url = f"{self.platform.url('protocol-svc')}/v1/operators/{op.ans}"
        expect_ok(await self.client.put(url, json=op.body()), "PUT operator")
        self.report.figures.events_sent += 1

        async def known() -> bool:
            response = await self.client.get(
                f"{self.platform.url('deadline-svc')}/v1/calendar/add-business-days",
                params={"start": "2026-01-05", "days": 1, "operator": op.ans},
            )
            return response.status_code == 200

        await eventually(known, within=60)
        return op

    def beneficiary(self, preferred: str) -> Beneficiary:
        """A beneficiary reachable on every channel, preferring ``preferred``."""
        who = Beneficiary(
            cpf(self.rng),
            f"Beneficiária Falha {uuid.uuid4().hex[:6].upper()}",
            f"falha.{uuid.uuid4().hex[:10]}@example.com",
            f"(31) 9{self.rng.randrange(1000, 9999)}-{self.rng.randrange(1000, 9999)}",
            [preferred],
        )
        self.personal += who.personal_data()
        return who

    async def open_one(self, load: Load, n: int, preferred: str) -> None:
        """Open one protocol like a contact center: retry with the same key until accepted."""
        body = {
            "operator": load.operator.ans,
            "channel": "phone",
            "beneficiary": self.beneficiary(preferred).body(),
            "demand": {"demand_type": "assistance", "description": "Autorização de exame."},
        }
        headers = {"Idempotency-Key": f"fault-{uuid.uuid4()}"}
        url = f"{self.platform.url('protocol-svc')}/v1/protocols"
        number = await self._until_accepted(load, url, body, headers)
        if number is None:
            return
        load.numbers.append(number)
        if n % 5 == 0:
            complaint = {"operator": load.operator.ans, "source": "nip", "protocol_number": number}
            complaint_url = f"{self.platform.url('protocol-svc')}/v1/complaints"
            key = {"Idempotency-Key": f"fault-nip-{uuid.uuid4()}"}
            if await self._until_accepted(load, complaint_url, complaint, key) is not None:
                load.nip += 1

    async def _until_accepted(
        self, load: Load, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> str | None:
        """POST until a 2xx (the protocol number) or RETRY_FOR_SECONDS pass (None)."""
        self.report.figures.events_sent += 1
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        while time.monotonic() < deadline:
            try:
                response = await self.client.post(url, json=body, headers=headers)
                if response.is_success:
                    load.accepted_at.append(time.monotonic())
                    return str(response.json()["protocol_number"])
                if response.status_code < 500 and response.status_code != 409:
                    raise AssertionError(f"POST refused: {response.status_code} {response.text}")
            except httpx.TransportError:
                pass
            load.retried_calls += 1
            await asyncio.sleep(0.5)
        load.gave_up += 1
        return None

    async def run_load(
        self,
        load: Load,
        seconds: float,
        *,
        preferred: str = "sms",
        during: Callable[[], Coroutine[Any, Any, None]] | None = None,
        at_fraction: float = 0.3,
    ) -> None:
        """Open ``load_size`` protocols spread over ``seconds``; start ``during`` part-way."""
        gap = seconds / self.load_size
        jobs: list[asyncio.Task[None]] = []
        fault: asyncio.Task[None] | None = None
        for n in range(self.load_size):
            if during is not None and fault is None and n >= self.load_size * at_fraction:
                fault = asyncio.create_task(during())
            jobs.append(asyncio.create_task(self.open_one(load, n, preferred)))
            await asyncio.sleep(gap)
        await asyncio.gather(*jobs)
        if fault is not None:
            await fault

    async def count_effects(self, fault: str, load: Load) -> None:
        """Count every effect of ``load`` until they are all there (or time runs out)."""
        self.report.count(
            self.section, f"{fault}: calls accepted (retried with the same key)",
            expected=self.load_size, observed=len(load.numbers),
        )  # fmt: skip
        expected = self.expected(load)
        counted = await eventually(
            lambda: self._complete(load, expected), within=SETTLE_SECONDS, interval=2.0
        )
        found = counted or await self.effects(load)
        for name, value in expected.items():
            self.report.count(
                self.section, f"{fault}: {name}", expected=value, observed=found[name]
            )
        self.report.count(
            self.section, f"{fault}: protocols with more provider calls than receipts",
            expected=0, observed=found["protocols called more often than they have receipts"],
        )  # fmt: skip

    def expected(self, load: Load) -> dict[str, int]:
        """What ``load`` must have caused, effect by effect.

        Every protocol of a load has one demand. Its receipt names the demand, or, when the
        demand's event came after the contact's receipt was already tried (a relay killed
        between the two), the demand gets a receipt of its own. Either way each demand is in
        exactly one receipt, and each receipt reaches a provider once.
        """
        n = len(load.numbers)
        return {
            "protocols in protocol-svc": n,
            "deadlines in deadline-svc": n,
            "contact receipts in notification-svc": n,
            "demands in exactly one receipt": n,
            "contact receipts delivered or sent": n,
            "demands whose receipt was delivered or sent": n,
            "protocols with one provider call per receipt": n,
            "protocols scheduled in retention-svc": n,
            "NIP complaints counted by igr-svc": load.nip,
        }

    async def _complete(self, load: Load, expected: dict[str, int]) -> dict[str, int] | None:
        found = await self.effects(load)
        return found if all(found[k] == v for k, v in expected.items()) else None

    async def effects(self, load: Load) -> dict[str, int]:
        """The effects of ``load`` as each service's database and the emulators hold them."""
        numbers, ans = load.numbers, load.operator.ans

        async def scalar(service: str, query: str, *args: Any) -> int:
            conn = await asyncpg.connect(self.platform.database_url(service))
            try:
                return int(await conn.fetchval(query, *args) or 0)
            finally:
                await conn.close()

        calls = await self.provider_calls()
        conn = await asyncpg.connect(self.platform.database_url("notification-svc"))
        try:
            receipts = Counter(
                {
                    row[0]: row[1]
                    for row in await conn.fetch(
                        "SELECT protocol_number, count(*) FROM messages "
                        "WHERE purpose = 'receipt' AND protocol_number = ANY($1) GROUP BY 1",
                        numbers,
                    )
                }
            )
        finally:
            await conn.close()
        return {
            "protocols in protocol-svc": await scalar(
                "protocol-svc", "SELECT count(*) FROM protocols WHERE number = ANY($1)", numbers
            ),
            "deadlines in deadline-svc": await scalar(
                "deadline-svc",
                "SELECT count(*) FROM deadlines WHERE protocol_number = ANY($1)",
                numbers,
            ),
            "contact receipts in notification-svc": await scalar(
                "notification-svc",
                "SELECT count(*) FROM messages WHERE purpose = 'receipt' AND subject_key = '' "
                "AND protocol_number = ANY($1)",
                numbers,
            ),
            "demands in exactly one receipt": await scalar(
                "notification-svc",
                "SELECT count(*) FROM (SELECT demand_id FROM messages WHERE purpose = 'receipt' "
                "AND demand_id IS NOT NULL AND protocol_number = ANY($1) "
                "GROUP BY demand_id HAVING count(*) = 1) AS once",
                numbers,
            ),
            "contact receipts delivered or sent": await scalar(
                "notification-svc",
                "SELECT count(*) FROM messages WHERE purpose = 'receipt' AND subject_key = '' "
                "AND status IN ('delivered', 'sent') AND protocol_number = ANY($1)",
                numbers,
            ),
            "demands whose receipt was delivered or sent": await scalar(
                "notification-svc",
                "SELECT count(DISTINCT demand_id) FROM messages WHERE purpose = 'receipt' "
                "AND status IN ('delivered', 'sent') AND protocol_number = ANY($1)",
                numbers,
            ),
            "protocols with one provider call per receipt": sum(
                1 for n in numbers if calls[n] == receipts[n]
            ),
            "protocols called more often than they have receipts": sum(
                1 for n in numbers if calls[n] > receipts[n]
            ),
            "protocols scheduled in retention-svc": await scalar(
                "retention-svc",
                "SELECT count(*) FROM protocols WHERE protocol_number = ANY($1)",
                numbers,
            ),
            "NIP complaints counted by igr-svc": await scalar(
                "igr-svc",
                "SELECT coalesce(sum(complaints), 0) FROM complaint_counts WHERE ans_registry = $1",
                ans,
            ),
        }

    async def provider_calls(self) -> Counter[str]:
        """How many accepted provider messages name each protocol number."""
        calls: Counter[str] = Counter()
        for message in await self.platform.provider_messages():
            calls.update(protocols_named(message))
        return calls

    def injected(self, name: str, ok: bool, detail: str = "") -> None:
        """Count a fault as injected and record whether the injection itself worked."""
        self.report.figures.faults_injected += 1
        self.report.check(self.section, f"{name}: injected", ok, detail=detail)

    # --- the faults -----------------------------------------------------------------------

    async def broker_frozen(self, seconds: float) -> None:
        """The broker stops answering for ``seconds`` while contacts keep coming."""
        load = Load(await self.new_operator("Broker Congelado"))
        window: list[float] = []

        async def freeze() -> None:
            self.platform.freeze_broker()
            window.append(time.monotonic())
            await asyncio.sleep(seconds)
            window.append(time.monotonic())
            self.platform.thaw_broker()

        await self.run_load(load, seconds * 2, during=freeze, at_fraction=0.25)
        self.injected("broker frozen", len(window) == 2, f"{seconds:.0f} s")
        during = [t for t in load.accepted_at if window and window[0] <= t <= window[-1]]
        self.report.check(
            self.section, "broker frozen: protocols still issued while it was frozen",
            bool(during), observed=len(during),
        )  # fmt: skip
        await self.count_effects("broker frozen", load)

    async def workers_killed(self) -> None:
        """Every worker but notification-svc's is SIGKILLed mid-batch and started again.

        notification-svc's is left out on purpose: a worker killed between the provider's
        acceptance and its own commit sends that message twice (ADR 0006), and no provider
        API offers an idempotency key to prevent it; this fault counts exact effects.
        """
        load = Load(await self.new_operator("Worker Morto"))
        victims = ["protocol-svc", "deadline-svc", "retention-svc", "igr-svc"]

        async def kill() -> None:
            for service in victims:
                self.platform.kill_worker(service)
            await asyncio.sleep(1.0)
            for service in victims:
                self.platform.start_worker(service)

        await self.run_load(load, 10.0, during=kill, at_fraction=0.5)
        self.injected("workers killed", True, ", ".join(victims))
        await self.count_effects("workers killed", load)

    async def postgres_restarted(self) -> None:
        """PostgreSQL stops and starts again under load."""
        load = Load(await self.new_operator("Banco Reiniciado"))

        async def restart() -> None:
            await asyncio.to_thread(self.platform.restart_postgres)

        await self.run_load(load, 10.0, during=restart, at_fraction=0.3)
        self.injected("PostgreSQL restarted", True, f"{load.retried_calls} calls retried")
        await self.count_effects("PostgreSQL restarted", load)

    async def provider_outage(self, seconds: float) -> None:
        """The WhatsApp provider (Meta) answers 5xx for ``seconds``; receipts fail over."""
        load = Load(await self.new_operator("Provedor Fora"))

        async def outage() -> None:
            emulators = self.platform.emulators_client()
            try:
                await emulators.set_fault("meta", "server_error", seconds=seconds)
            finally:
                await emulators.aclose()

        await self.run_load(load, max(seconds / 2, 5.0), preferred="whatsapp", during=outage,
                            at_fraction=0.0)  # fmt: skip
        self.injected("provider outage", True, f"Meta 5xx for {seconds:.0f} s")
        await self.count_effects("provider outage", load)

    async def redelivered_and_out_of_order(self) -> None:
        """The same contact.opened three times, interleaved, and a record ahead of its contact."""
        op = await self.new_operator("Eventos Repetidos")
        assert self.platform.broker is not None
        producer = AIOKafkaProducer(bootstrap_servers=self.platform.broker.bootstrap_servers)
        await producer.start()
        contacts = [(f"cc-dup-{uuid.uuid4().hex}", self.beneficiary("email")) for _ in range(5)]
        envelopes = [
            make_envelope(
                ContactOpened(
                    ans_registry=op.ans, contact_id=contact, channel="chat", direction="inbound",
                    occurred_at=self.platform.now(), beneficiary=RawBeneficiary(**who.body()),
                    demand=FirstDemand(demand_type="non_assistance"),
                ),
                source="cc-e2e", time=self.platform.now(),
            )
            for contact, who in contacts
        ]  # fmt: skip
        orphan_contact = f"cc-orphan-{uuid.uuid4().hex}"
        orphan = make_envelope(
            InboundInteractionRecorded(
                ans_registry=op.ans, contact_id=orphan_contact, kind="note",
                content="Retorno agendado.", occurred_at=self.platform.now(),
            ),
            source="cc-e2e", time=self.platform.now(),
        )  # fmt: skip
        # Three deliveries of each, out of order: 0 1 0 2 1 0 3 2 1 4 3 2 4 3 4, and the
        # interaction of a contact whose contact.opened never came.
        order = [i - k for i in range(len(envelopes) + 2) for k in range(3) if 0 <= i - k < 5]
        try:
            await producer.send_and_wait(orphan.topic, key=orphan.key, value=orphan.value(),
                                         headers=orphan.headers())  # fmt: skip
            for i in order:
                e = envelopes[i]
                await producer.send_and_wait(
                    e.topic, key=e.key, value=e.value(), headers=e.headers()
                )
        finally:
            await producer.stop()
        self.report.figures.events_sent += len(order) + 1
        self.injected("redelivery", len(order) == 3 * len(envelopes), f"{len(order)} records")

        async def issued() -> list[str] | None:
            url = f"{self.platform.url('protocol-svc')}/v1/protocols"
            page = expect_ok(
                await self.client.get(url, params={"operator": op.ans, "limit": 200}), "list"
            )
            numbers = [p["protocol_number"] for p in page["items"]]
            return numbers if len(numbers) >= len(contacts) else None

        await eventually(issued, within=60)
        await asyncio.sleep(3.0)  # late duplicates, if any, would show up now
        numbers = await issued() or []
        self.report.count(
            self.section, "redelivery: one protocol per contact delivered three times",
            expected=len(contacts), observed=len(numbers),
        )  # fmt: skip
        letters = await self.dead_letters("protocol-svc.dlq", {orphan_contact})
        reasons = [h.get("dlq_error", "") for h in letters]
        self.report.count(
            self.section, "out of order: a record ahead of its contact is dead-lettered",
            expected=1, observed=len(letters),
        )  # fmt: skip
        self.report.check(
            self.section, "out of order: the dead letter's reason names contact_id",
            any("contact_id" in r for r in reasons), observed=reasons,
        )  # fmt: skip
        load = Load(op, numbers=numbers)
        saved, self.load_size = self.load_size, len(numbers)
        try:
            await self.count_effects("redelivery", load)
        finally:
            self.load_size = saved
        await self.late_contact_then_replay(op, orphan_contact)

    async def late_contact_then_replay(self, op: Operator, contact: str) -> None:
        """The orphan's contact arrives at last; an operator replays protocol-svc's dead
        letters and the record takes effect, once."""
        assert self.platform.broker is not None
        late = make_envelope(
            ContactOpened(
                ans_registry=op.ans, contact_id=contact, channel="chat", direction="inbound",
                occurred_at=self.platform.now(),
                beneficiary=RawBeneficiary(**self.beneficiary("email").body()),
            ),
            source="cc-e2e", time=self.platform.now(),
        )  # fmt: skip
        producer = AIOKafkaProducer(bootstrap_servers=self.platform.broker.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(
                late.topic, key=late.key, value=late.value(), headers=late.headers()
            )
        finally:
            await producer.stop()
        self.report.figures.events_sent += 1
        url = f"{self.platform.url('protocol-svc')}/v1/protocols"

        async def notes() -> tuple[list[Any]] | None:
            """The protocol's notes (in a tuple: none yet is an answer), None before it exists."""
            page = expect_ok(
                await self.client.get(url, params={"operator": op.ans, "limit": 200}), "list"
            )
            for item in page["items"]:
                detail = expect_ok(
                    await self.client.get(f"{url}/{item['protocol_number']}"), "protocol"
                )
                if detail.get("contact_id") == contact:
                    return ([i for i in detail["interactions"] if i["kind"] == "note"],)
            return None

        before = await eventually(notes, within=60)
        self.report.check(
            self.section, "dead-letter replay: the late contact opens its protocol, no note yet",
            before == ([],), observed=before,
        )  # fmt: skip
        printed = await self.platform.replay_dead_letters("protocol-svc")
        counts = [int(n) for n in re.findall(r": (\d+) dead letters replayed", printed)]
        self.report.check(
            self.section, "dead-letter replay: the operator command reports what it replayed",
            sum(counts) >= 1, observed=[ln for ln in printed.splitlines() if "replayed" in ln],
        )  # fmt: skip

        async def noted() -> tuple[list[Any]] | None:
            found = await notes()
            return found if found and found[0] else None

        await eventually(noted, within=30)
        await asyncio.sleep(2.0)  # a second copy, if any, would show up now
        replayed = await notes()
        self.report.count(
            self.section, "dead-letter replay: the record ahead of its contact takes effect once",
            expected=1, observed=len(replayed[0]) if replayed else 0,
        )  # fmt: skip

    async def poison(self) -> None:
        """Poison records on the inbound and the protocol topics go to the dead-letter topics
        with a reason and without the personal data they carried; consumers go on."""
        assert self.platform.broker is not None
        secret_cpf = cpf(self.rng)
        self.personal.append(secret_cpf)
        key = f"poison-{uuid.uuid4().hex}"
        good = make_envelope(
            ContactOpened(
                ans_registry="999999", contact_id=key, channel="chat", direction="inbound",
                occurred_at=self.platform.now(),
                beneficiary=RawBeneficiary(cpf=secret_cpf, name="Nome Que Não Pode Vazar"),
            ),
            source="cc-e2e", time=self.platform.now(),
        )  # fmt: skip
        self.personal.append("Nome Que Não Pode Vazar")
        payloads = {
            "not JSON": b"\xff\xfe not json",
            "missing field": json.dumps({"ans_registry": "123456", "contact_id": key}).encode(),
            "unknown operator": good.value(),
        }
        producer = AIOKafkaProducer(bootstrap_servers=self.platform.broker.bootstrap_servers)
        await producer.start()
        try:
            for value in payloads.values():
                await producer.send_and_wait(good.topic, key=key.encode(), value=value,
                                             headers=good.headers())  # fmt: skip
            for topic in ("protocol.events",):
                await producer.send_and_wait(topic, key=key.encode(), value=b"{not an event",
                                             headers=[("ce_type", b"protocol.opened")])  # fmt: skip
        finally:
            await producer.stop()
        self.report.figures.events_sent += len(payloads) + 1
        self.report.figures.bad_inputs_tried += len(payloads) + 1
        self.injected("poison messages", True, f"{len(payloads) + 1} records")
        inbound = await self.dead_letters("protocol-svc.dlq", {key}, want=len(payloads))
        self.report.count(
            self.section, "poison: inbound records dead-lettered with a reason",
            expected=len(payloads), observed=sum(1 for h in inbound if h.get("dlq_reason")),
        )  # fmt: skip
        consumers = ("deadline-svc", "notification-svc", "retention-svc", "igr-svc")
        for service in consumers:
            letters = await self.dead_letters(f"{service}.dlq", {key})
            self.report.count(
                self.section, f"poison: {service} dead-letters the broken protocol event",
                expected=1, observed=len(letters),
            )  # fmt: skip
        texts = json.dumps(inbound)
        self.report.check(
            self.section, "poison: dead-letter headers carry no personal data",
            secret_cpf not in texts and "".join(c for c in secret_cpf if c.isdigit()) not in texts
            and "Vazar" not in texts,
        )  # fmt: skip

    async def dead_letters(
        self, topic: str, keys: set[str], *, want: int = 1, within: float = 60.0
    ) -> list[dict[str, str]]:
        """Headers of the records on ``topic`` whose key is in ``keys`` (waits for ``want``)."""
        assert self.platform.broker is not None
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.platform.broker.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=f"e2e-{uuid.uuid4().hex}",
        )
        await consumer.start()
        found: list[dict[str, str]] = []
        deadline = time.monotonic() + within
        try:
            while time.monotonic() < deadline and len(found) < want:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        if record.key is not None and record.key.decode(errors="replace") in keys:
                            found.append(
                                {k: v.decode(errors="replace") for k, v in record.headers or ()}
                            )
        finally:
            await consumer.stop()
        return found

    async def run(self, broker_freeze: float, provider_outage: float) -> None:
        """Every fault, one after the other."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("broker frozen", lambda: self.broker_frozen(broker_freeze)),
            ("workers killed", self.workers_killed),
            ("PostgreSQL restarted", self.postgres_restarted),
            ("provider outage", lambda: self.provider_outage(provider_outage)),
            ("redelivery", self.redelivered_and_out_of_order),
            ("poison", self.poison),
        ]
        for name, step in steps:
            began = time.monotonic()
            try:
                await step()
            except Exception as exc:
                self.report.check(
                    self.section, f"{name}: ran to the end", False, detail=repr(exc)[:500]
                )
            self.report.durations[f"fault: {name}"] = time.monotonic() - began
