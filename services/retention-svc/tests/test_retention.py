"""retention-svc's handlers and purge runner on the real database (no broker): schedules,
confirmations, certificates, holds, grouping by owner, dry run, batches."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from retention_svc import domain
from retention_svc import repository as repo
from retention_svc.consumers import RetentionHandlers
from retention_svc.purger import PurgeRunner
from retention_svc.runtime import Runtime
from rn623_events.clock import ManualClock
from rn623_events.consumer import PermanentError
from rn623_events.contracts.protocols import (
    Beneficiary,
    ComplaintRegistered,
    DemandAnswered,
    DemandRegistered,
    ProtocolOpened,
    RecordsPurged,
)
from rn623_events.envelope import make_envelope
from rn623_events.registry import Event

pytestmark = pytest.mark.integration

CPF = "52998224725"
SAO_PAULO = ZoneInfo("America/Sao_Paulo")


def operator() -> str:
    """An operator of one test only."""
    return f"{secrets.randbelow(900_000) + 100_000}"


_sequence = iter(range(1, 1_000_000))


def opened(ans: str, at: datetime, *, cpf: str | None = CPF) -> ProtocolOpened:
    """A protocol.opened of operator ``ans`` at ``at``."""
    return ProtocolOpened(
        protocol_number=f"{ans}20251121{next(_sequence):06d}",
        ans_registry=ans,
        layout_id="ans-default-20",
        channel="phone",
        direction="inbound",
        opened_at=at.astimezone(SAO_PAULO),
        timezone="America/Sao_Paulo",
        beneficiary=Beneficiary(cpf=cpf, card_number="0001"),
    )


def registered(protocol: ProtocolOpened, at: datetime) -> DemandRegistered:
    """An assistance demand on ``protocol``."""
    return DemandRegistered(
        protocol_number=protocol.protocol_number,
        ans_registry=protocol.ans_registry,
        demand_id=uuid.uuid4(),
        demand_type="assistance",
        requested_at=at,
        registered_at=at,
        due_at=at + timedelta(days=7),
        immediate=False,
        deadline_rule_id="rn623.deadline.assistance",
        deadline_legal_basis="RN 623/2024",
        deadline_unit="business_days",
        deadline_amount=5,
        ruleset_id="rn623-2025",
    )


def answered(demand: DemandRegistered, at: datetime) -> DemandAnswered:
    """The answer to ``demand``."""
    return DemandAnswered(
        protocol_number=demand.protocol_number,
        ans_registry=demand.ans_registry,
        demand_id=demand.demand_id,
        outcome="authorized",
        text="Procedimento autorizado.",
        answered_at=at,
        reanalysis_allowed=False,
    )


async def handle(rt: Runtime, event: Event) -> list[str]:
    """Run the event's handler in one unit of work; return the types it published."""
    handler = RetentionHandlers(rt).handlers()[event.event_type]
    envelope = make_envelope(event, source="protocol-svc", time=rt.clock.now())
    async with rt.uow() as uow:
        uow.cause = envelope
        await handler(event, envelope, uow)
        await uow.commit()
    return [e.type for e in uow.published]


async def schedule(rt: Runtime, number: str) -> dict[str, Any]:
    """retain_until by record class."""
    async with rt.sessions() as session:
        rows = await repo.schedule_of(session, number)
    return {c: r["retain_until"] for c, r in rows.items()}


async def test_the_schedule_follows_contact_demands_answers_and_complaints(
    runtime: Runtime, clock: ManualClock
) -> None:
    now = clock.now()
    protocol = opened(operator(), now)
    assert await handle(runtime, protocol) == ["retention.scheduled"]
    assert await handle(runtime, protocol) == []  # redelivered: nothing new
    two_years = now.replace(year=now.year + 2)
    # a contact without demands was resolved in the contact itself
    assert await schedule(runtime, protocol.protocol_number) == {
        "recording": now + timedelta(days=90),
        "interaction_record": two_years,
        "protocol_record": two_years,
        "notification": two_years,
    }
    demand = registered(protocol, now)
    assert await handle(runtime, demand) == ["retention.scheduled"]
    ends = await schedule(runtime, protocol.protocol_number)
    assert ends["recording"] == now + timedelta(days=90)
    assert ends["protocol_record"] is None  # open demand: the 2 years have not started
    later = now + timedelta(days=3)
    assert await handle(runtime, answered(demand, later)) == ["retention.scheduled"]
    assert await handle(runtime, answered(demand, later + timedelta(days=1))) == []
    assert (await schedule(runtime, protocol.protocol_number))["notification"] == later.replace(
        year=later.year + 2
    )
    complaint = ComplaintRegistered(
        protocol_number=protocol.protocol_number,
        ans_registry=protocol.ans_registry,
        complaint_id=uuid.uuid4(),
        source="nip",
        received_at=later + timedelta(days=10),
        registered_at=later + timedelta(days=10),
    )
    assert await handle(runtime, complaint) == ["retention.scheduled"]
    five_years = (later + timedelta(days=10)).replace(year=later.year + 5)
    assert set((await schedule(runtime, protocol.protocol_number)).values()) == {five_years}


async def handle_together(rt: Runtime, *events: Event) -> list[str]:
    """Run the events' handlers in one unit of work, as one poll of the consumer does;
    return the types they published."""
    handlers = RetentionHandlers(rt).handlers()
    async with rt.uow() as uow:
        for event in events:
            envelope = make_envelope(event, source="protocol-svc", time=rt.clock.now())
            uow.cause = envelope
            await handlers[event.event_type](event, envelope, uow)
        await uow.commit()
    return [e.type for e in uow.published]


async def test_a_contact_and_its_events_in_one_transaction_schedule_as_one_by_one(
    runtime: Runtime, clock: ManualClock
) -> None:
    """A contact and its demands in one poll are written and announced once, when the
    transaction commits (reason ``contact``, the demands counted); an answer in the same
    poll reads them back; the schedule ends as if each event was handled apart."""
    now = clock.now()
    together, apart = opened(operator(), now), opened(operator(), now)
    later = now + timedelta(days=3)
    first, second = registered(together, now), registered(together, now)
    published = await handle_together(
        runtime, together, first, second, answered(first, later), registered(together, later)
    )
    # the contact with its demands; with another demand open nothing else moves
    assert published == ["retention.scheduled"]
    a_first, a_second = registered(apart, now), registered(apart, now)
    published_apart = []
    for event in (apart, a_first, a_second, answered(a_first, later), registered(apart, later)):
        published_apart += await handle(runtime, event)
    assert published_apart == ["retention.scheduled"] * 2  # the contact, then a demand
    assert await schedule(runtime, together.protocol_number) == await schedule(
        runtime, apart.protocol_number
    )
    ends = await schedule(runtime, together.protocol_number)
    assert ends["recording"] == now + timedelta(days=90)
    assert ends["protocol_record"] is None  # two demands still open


async def test_the_contacts_of_a_poll_are_written_in_three_statements(
    runtime: Runtime, clock: ManualClock
) -> None:
    """Protocols, demands and schedules of every contact opened in a transaction go in one
    statement each; each contact's announcement names its own contact as its cause."""
    now = clock.now()
    contacts = [opened(operator(), now) for _ in range(6)]
    events: list[Event] = []
    for contact in contacts:
        events += [contact, registered(contact, now)]
    handlers = RetentionHandlers(runtime).handlers()
    statements: list[str] = []
    envelopes = {}

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.extend(re.findall(r"INSERT INTO (\w+)", statement))

    async with runtime.uow() as uow:
        for event in events:
            envelope = make_envelope(event, source="protocol-svc", time=clock.now())
            envelopes[event.event_type, getattr(event, "protocol_number", "")] = envelope
            uow.cause = envelope
            await handlers[event.event_type](event, envelope, uow)
        assert uow.published == []  # nothing written or announced before the commit
        engine = uow.session.bind.sync_engine  # type: ignore[union-attr]
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            await uow.commit()
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
    assert statements == ["protocols", "demands", "schedules", "outbox"]
    assert len(uow.published) == len(contacts)
    for envelope in uow.published:
        cause = envelopes["protocol.opened", envelope.subject]
        assert envelope.data["reason"] == "contact"
        assert envelope.causation_id == str(cause.id)
    for contact in contacts:
        assert (await schedule(runtime, contact.protocol_number))["protocol_record"] is None


async def test_a_contact_known_already_keeps_its_schedule_and_counts_new_demands(
    runtime: Runtime, clock: ManualClock
) -> None:
    """The contact redelivered under another event id, with a new demand, in one poll: the
    protocol is not written again; the demand moves the stored schedule."""
    now = clock.now()
    contact = opened(operator(), now)
    assert await handle(runtime, contact) == ["retention.scheduled"]
    assert (await schedule(runtime, contact.protocol_number))["protocol_record"] is not None
    handlers = RetentionHandlers(runtime).handlers()
    new_demand = registered(contact, now)
    async with runtime.uow() as uow:
        for event in (contact, new_demand):
            envelope = make_envelope(event, source="protocol-svc", time=clock.now())
            uow.cause = envelope
            await handlers[event.event_type](event, envelope, uow)
        await uow.commit()
    assert [(e.type, e.data["reason"]) for e in uow.published] == [
        ("retention.scheduled", "demand_registered")
    ]
    assert uow.published[0].causation_id == str(envelope.id)  # the demand's event
    assert (await schedule(runtime, contact.protocol_number))["protocol_record"] is None


async def test_events_of_an_unknown_protocol_are_refused(
    runtime: Runtime, clock: ManualClock
) -> None:
    stray = registered(opened(operator(), clock.now()), clock.now())
    with pytest.raises(PermanentError, match="protocol_number"):
        await handle(runtime, stray)


async def _due_protocol(rt: Runtime, clock: ManualClock, ans: str, *, cpf: str = CPF) -> str:
    """A protocol whose recording is past retention (contact 91 days ago)."""
    protocol = opened(ans, clock.now() - timedelta(days=91), cpf=cpf)
    await handle(rt, protocol)
    await handle(rt, registered(protocol, protocol.opened_at))  # keeps the rest retained
    return protocol.protocol_number


def recording_purged(number: str, ans: str, request_id: uuid.UUID, at: datetime) -> RecordsPurged:
    """protocol-svc's confirmation that it purged a protocol's recording."""
    return RecordsPurged(
        protocol_number=number,
        ans_registry=ans,
        purge_request_id=request_id,
        record_classes=("recording",),
        purged_at=at,
        owner="protocol-svc",
        anonymized=False,
    )


async def _requests(rt: Runtime, number: str) -> list[Any]:
    async with rt.sessions() as session:
        rows = await session.execute(
            sa.text("SELECT * FROM purge_requests WHERE protocol_number = :n"), {"n": number}
        )
        return list(rows.mappings())


async def test_confirmations_certify_once_every_owner_confirmed(
    runtime: Runtime, clock: ManualClock
) -> None:
    ans = operator()
    number = await _due_protocol(runtime, clock, ans)
    assert await PurgeRunner(runtime).tick() >= 1
    [request] = await _requests(runtime, number)
    assert list(request["record_classes"]) == ["recording"]
    assert list(request["owners"]) == ["protocol-svc"]

    def purged(owner: str, request_id: uuid.UUID = request["id"]) -> RecordsPurged:
        return RecordsPurged(
            protocol_number=number,
            ans_registry=ans,
            purge_request_id=request_id,
            record_classes=("recording",),
            purged_at=clock.now(),
            owner=owner,
            anonymized=False,
        )

    with pytest.raises(PermanentError, match="purge_request_id"):
        await handle(runtime, purged("protocol-svc", uuid.uuid4()))
    with pytest.raises(PermanentError, match="owner"):
        await handle(runtime, purged("notification-svc"))
    assert await handle(runtime, purged("protocol-svc")) == ["retention.disposed"]
    assert await handle(runtime, purged("protocol-svc")) == []  # redelivered
    async with runtime.sessions() as session:
        chain = await repo.chain_of(session, ans, 0, 10)
    assert [c["purge_request_id"] for c in chain] == [request["id"]]
    assert domain.verify_chain(chain).valid
    assert (await schedule(runtime, number))["recording"] is not None
    async with runtime.sessions() as session:
        statuses = await repo.schedule_of(session, number)
    assert statuses["recording"]["status"] == domain.DISPOSED


async def _hold(rt: Runtime, ans: str, scope: str, **target: Any) -> uuid.UUID:
    hold_id = uuid.uuid4()
    async with rt.sessions() as session:
        await session.execute(
            sa.text(
                "INSERT INTO legal_holds (id, ans_registry, scope, protocol_number,"
                " beneficiary_key, reason, placed_by, placed_at) VALUES (:id, :a, :s, :n, :b,"
                " 'Processo judicial', 'juridico', :at)"
            ),
            {
                "id": hold_id,
                "a": ans,
                "s": scope,
                "n": target.get("protocol_number"),
                "b": target.get("beneficiary_key"),
                "at": rt.clock.now(),
            },
        )
        await session.commit()
    return hold_id


async def _release(rt: Runtime, hold_id: uuid.UUID) -> None:
    async with rt.sessions() as session:
        await session.execute(
            sa.text("UPDATE legal_holds SET released_at = now() WHERE id = :id"), {"id": hold_id}
        )
        await session.commit()


@pytest.mark.parametrize("scope", ["protocol", "beneficiary", "operator"])
async def test_a_hold_blocks_the_purges_it_covers_until_released(
    runtime: Runtime, clock: ManualClock, scope: str
) -> None:
    ans = operator()
    held = await _due_protocol(runtime, clock, ans)
    other_cpf = "11144477735"
    free = await _due_protocol(runtime, clock, ans, cpf=other_cpf)
    key = domain.beneficiary_key(runtime.beneficiary_secret, ans, cpf=CPF, card_number=None)
    hold_id = await _hold(runtime, ans, scope, protocol_number=held, beneficiary_key=key)
    await PurgeRunner(runtime).tick()
    assert await _requests(runtime, held) == []
    assert len(await _requests(runtime, free)) == (0 if scope == "operator" else 1)
    await _release(runtime, hold_id)
    await PurgeRunner(runtime).tick()
    assert len(await _requests(runtime, held)) == 1


async def test_due_classes_are_grouped_by_owner_in_batches_and_dry_run_sends_nothing(
    runtime: Runtime, clock: ManualClock
) -> None:
    ans = operator()
    numbers = []
    for _ in range(7):
        protocol = opened(ans, clock.now() - timedelta(days=6 * 365))
        await handle(runtime, protocol)  # no demand: every class is due after 2 years
        numbers.append(protocol.protocol_number)
    dry = PurgeRunner(runtime, dry_run=True)
    assert await dry.tick() == 0
    assert await _requests(runtime, numbers[0]) == []
    runner = PurgeRunner(runtime, batch_size=3)
    assert await runner.tick() >= 7 * 4
    requests = 0
    for number in numbers:
        requests += len(await _requests(runtime, number))
        groups: dict[tuple[str, ...], list[str]] = {}
        for request in await _requests(runtime, number):  # batches may split a protocol
            groups.setdefault(tuple(request["owners"]), []).extend(request["record_classes"])
        assert {owners: sorted(classes) for owners, classes in groups.items()} == {
            ("notification-svc",): ["notification"],
            ("protocol-svc",): ["interaction_record", "protocol_record", "recording"],
        }
    async with runtime.sessions() as session:
        sent = await session.scalar(
            sa.text(
                "SELECT count(*) FROM outbox WHERE event_type = 'retention.purge_requested'"
                " AND key = ANY(:n)"
            ),
            {"n": numbers},
        )
    assert sent == requests  # one retention.purge_requested per request


def test_the_certificate_chain_detects_tampering() -> None:
    at = datetime(2026, 1, 5, 12, tzinfo=UTC)
    chain: list[dict[str, Any]] = []
    previous = domain.GENESIS_HASH
    for sequence in (1, 2, 3):
        certificate: dict[str, Any] = {
            "id": uuid.uuid4(),
            "ans_registry": "123456",
            "sequence": sequence,
            "purge_request_id": uuid.uuid4(),
            "protocol_number": f"12345620251121{sequence:06d}",
            "record_classes": ["recording"],
            "confirmations": [{"owner": "protocol-svc", "purged_at": at.isoformat()}],
            "requested_at": at,
            "disposed_at": at,
            "previous_hash": previous,
        }
        certificate["hash"] = previous = domain.certificate_hash(certificate)
        chain.append(certificate)
    assert domain.verify_chain(chain) == domain.ChainCheck(3, True)
    # columns outside the hashed fields (added to the table later) do not matter
    assert domain.verify_chain([{**c, "note": "x"} for c in chain]).valid
    chain[1]["record_classes"] = ["recording", "protocol_record"]
    assert domain.verify_chain(chain) == domain.ChainCheck(2, False, 2, "hash_mismatch")
    chain[1]["record_classes"] = ["recording"]
    del chain[1]
    check = domain.verify_chain(chain)
    assert (check.valid, check.problem) == (False, "sequence_gap")


def test_beneficiary_pseudonyms_are_keyed_and_scoped() -> None:
    secret = b"k" * 32
    one = domain.beneficiary_key(secret, "123456", cpf=CPF, card_number="9")
    assert one == domain.beneficiary_key(secret, "654321", cpf=CPF, card_number=None)
    assert one != domain.beneficiary_key(b"x" * 32, "123456", cpf=CPF, card_number=None)
    assert CPF not in (one or "")
    assert domain.beneficiary_key(secret, "123456", cpf=None, card_number="9") != (
        domain.beneficiary_key(secret, "654321", cpf=None, card_number="9")
    )
    assert domain.beneficiary_key(secret, "123456", cpf=None, card_number=None) is None


async def test_the_gauges_count_access_requests_open_due_soon_and_overdue(
    runtime: Runtime, clock: ManualClock
) -> None:
    from prometheus_client import REGISTRY

    ans = operator()
    now = clock.now()
    async with runtime.sessions() as session:
        for due, status in (
            (now + timedelta(hours=10), "open"),  # due within 24 h
            (now + timedelta(hours=60), "open"),
            (now - timedelta(hours=1), "open"),  # overdue
            (now - timedelta(hours=1), "fulfilled"),
        ):
            await session.execute(
                sa.text(
                    "INSERT INTO access_requests (id, ans_registry, protocol_number, scope,"
                    " requested_by, requested_at, due_at, rule_id, legal_basis, ruleset_id,"
                    " status) VALUES (:id, :a, :n, 'protocol', 'ouvidoria', :at, :due,"
                    " 'rn623.deadline.records_access', 'RN 623/2024', 'rn623-2025', :s)"
                ),
                {
                    "id": uuid.uuid4(),
                    "a": ans,
                    "n": f"{ans}20251121000001",
                    "at": due - timedelta(hours=72),
                    "due": due,
                    "s": status,
                },
            )
        await session.commit()
    await PurgeRunner(runtime).refresh_gauges()
    labels = {"operator": ans}
    assert REGISTRY.get_sample_value("retention_access_requests_open", labels) == 3
    assert REGISTRY.get_sample_value("retention_access_requests_due_within_24h", labels) == 1
    assert REGISTRY.get_sample_value("retention_access_requests_overdue", labels) == 1


async def _access_request(rt: Runtime, ans: str, number: str) -> uuid.UUID:
    request_id = uuid.uuid4()
    now = rt.clock.now()
    async with rt.sessions() as session:
        await session.execute(
            sa.text(
                "INSERT INTO access_requests (id, ans_registry, protocol_number, scope,"
                " requested_by, requested_at, due_at, rule_id, legal_basis, ruleset_id, status,"
                " next_attempt_at) VALUES (:id, :a, :n, 'beneficiary', 'ouvidoria', :at, :due,"
                " 'rn623.deadline.records_access', 'RN 623/2024', 'rn623-2025', 'open', :at)"
            ),
            {"id": request_id, "a": ans, "n": number, "at": now, "due": now + timedelta(hours=72)},
        )
        await session.commit()
    return request_id


async def test_an_access_request_never_collects_another_operators_protocol(
    runtime: Runtime, clock: ManualClock
) -> None:
    import httpx

    from retention_svc.collector import AccessCollector

    theirs = opened(operator(), clock.now())
    await handle(runtime, theirs)
    mine = operator()
    request_id = await _access_request(runtime, mine, theirs.protocol_number)
    async with httpx.AsyncClient() as http:  # never called: nothing may be collected
        collector = AccessCollector(
            runtime, protocol_svc_url="http://127.0.0.1:1", token_for=lambda _: "t", http=http
        )
        assert await collector.tick() == 0
    async with runtime.sessions() as session:
        row = (
            await session.execute(
                sa.text("SELECT status, last_error, bundle FROM access_requests WHERE id = :i"),
                {"i": request_id},
            )
        ).one()
    assert tuple(row) == ("rejected", "protocol_of_another_operator", None)


async def test_a_disposal_removes_the_bundles_that_copied_the_records(
    runtime: Runtime, clock: ManualClock
) -> None:
    ans = operator()
    number = await _due_protocol(runtime, clock, ans)
    request_id = await _access_request(runtime, ans, number)
    bundle = {"protocols": [{"protocol_number": number, "record": {"demands": []}}]}
    async with runtime.sessions() as session:
        await session.execute(
            sa.text(
                "UPDATE access_requests SET status = 'fulfilled', bundle = CAST(:b AS jsonb)"
                " WHERE id = :i"
            ),
            {"b": json.dumps(bundle), "i": request_id},
        )
        await session.commit()
    await PurgeRunner(runtime).tick()
    [request] = await _requests(runtime, number)
    await handle(runtime, recording_purged(number, ans, request["id"], clock.now()))
    async with runtime.sessions() as session:
        row = (
            await session.execute(
                sa.text("SELECT bundle, bundle_removed_at FROM access_requests WHERE id = :i"),
                {"i": request_id},
            )
        ).one()
    assert row.bundle is None
    assert row.bundle_removed_at is not None


async def test_new_facts_put_a_requested_purge_back_under_retention(
    runtime: Runtime, clock: ManualClock
) -> None:
    ans = operator()
    number = await _due_protocol(runtime, clock, ans)  # recording due, a demand open
    await PurgeRunner(runtime).tick()
    [request] = await _requests(runtime, number)
    # a complaint reaches retention-svc after the purge was requested; the owner, who saw
    # it first, refuses the purge: the recording is retained 5 years more
    complaint = ComplaintRegistered(
        protocol_number=number,
        ans_registry=ans,
        complaint_id=uuid.uuid4(),
        source="nip",
        received_at=clock.now(),
        registered_at=clock.now(),
    )
    assert await handle(runtime, complaint) == ["retention.scheduled"]
    async with runtime.sessions() as session:
        entries = await repo.schedule_of(session, number)
    assert entries["recording"]["status"] == domain.RETAINED
    assert entries["recording"]["retain_until"] is None  # the demand is still open
    [request] = await _requests(runtime, number)
    assert request["cancelled_at"] is not None
    await PurgeRunner(runtime).tick()
    assert len(await _requests(runtime, number)) == 1  # not requested again


async def test_lanes_certifying_for_two_operators_in_opposite_orders_keep_both_chains(
    runtime: Runtime, clock: ManualClock
) -> None:
    """Two lanes each certify disposals of operators X and Y, one X first, the other Y
    first, so each would hold one chain head while asking for the other. Certifications
    of one process take turns (``UnitOfWork.hold``): no deadlock, both chains whole,
    every disposal certified once, nothing dead-lettered."""
    from aiokafka import TopicPartition
    from aiokafka.structs import ConsumerRecord
    from prometheus_client import REGISTRY

    from retention_svc.consumers import event_consumer
    from rn623_events.consumer import ConsumerConfig
    from rn623_events.dlq import DeadLetterPublisher
    from rn623_events.settings import KafkaSettings

    x, y = operator(), operator()
    numbers = {ans: [await _due_protocol(runtime, clock, ans) for _ in range(6)] for ans in (x, y)}
    await PurgeRunner(runtime).tick()

    def confirmation(ans: str, i: int, offset: int, partition: int) -> ConsumerRecord[Any, Any]:
        number = numbers[ans][i]
        [request] = requests[number]
        event = recording_purged(number, ans, request["id"], clock.now())
        envelope = make_envelope(event, source="protocol-svc", time=clock.now())
        value = envelope.value()
        return ConsumerRecord(
            "protocol.events", partition, offset, 0, 0, number.encode(), value,
            None, len(number), len(value), envelope.headers(),
        )  # fmt: skip

    requests = {n: await _requests(runtime, n) for ns in numbers.values() for n in ns}
    # lane one alternates X, Y, X...; lane two Y, X, Y...
    lane_one = [confirmation((x, y)[i % 2], i // 2, i, 0) for i in range(6)]
    lane_two = [confirmation((y, x)[i % 2], 3 + i // 2, i, 1) for i in range(6)]
    unreachable = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    runner = event_consumer(
        runtime,
        unreachable,
        DeadLetterPublisher(unreachable, "retention-svc.dlq"),  # a dead letter would hang
        name="retention-lanes-test",
        config=ConsumerConfig(records_per_lane=1, backoff_initial=0.01),
    )
    runner._partition_counts = {"protocol.events": 2, "notification.events": 2}
    polled = {
        TopicPartition("protocol.events", 0): lane_one,
        TopicPartition("protocol.events", 1): lane_two,
    }
    # Both heads are held while the lanes start: lane one waits for X's, lane two for
    # Y's (without the turns); freed together, each lane would then ask for the other's
    async with runtime.sessions() as session:  # both heads exist: the lanes queue on row locks
        for ans in (x, y):
            await repo.lock_chain_head(session, ans)
        await session.commit()
    async with runtime.sessions() as blocker:
        for ans in (x, y):
            await repo.lock_chain_head(blocker, ans)
        lanes = asyncio.create_task(runner.process_poll(polled))
        await asyncio.sleep(1.0)
        await blocker.commit()
    await asyncio.wait_for(lanes, 60)

    assert runner._pending == {
        TopicPartition("protocol.events", 0): 6,
        TopicPartition("protocol.events", 1): 6,
    }
    for ans in (x, y):
        async with runtime.sessions() as session:
            chain = await repo.chain_of(session, ans, 0, 100)
        assert [c["sequence"] for c in chain] == list(range(1, 7))
        assert {c["protocol_number"] for c in chain} == set(numbers[ans])
        assert domain.verify_chain(chain).valid
    labels = {"consumer": "retention-lanes-test"}
    assert REGISTRY.get_sample_value("consumer_conflicts_total", labels) is None  # no deadlock
    assert REGISTRY.get_sample_value("consumer_retried_total", labels) is None
