"""igr-svc's counting, quarters and goals on the real database, and its consumer through
the real broker: dental-only and both-coverage operators, goals at their boundaries,
closing a quarter, late complaints as revisions, redelivery and dead letters."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from igr_svc import closer, domain
from igr_svc import repository as repo
from igr_svc.consumers import IgrHandlers, event_consumer
from igr_svc.runtime import Runtime
from rn623_devinfra.waiting import eventually
from rn623_events.clock import ManualClock
from rn623_events.consumer import ConsumerConfig
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import ComplaintRegistered
from rn623_events.dlq import DeadLetterPublisher
from rn623_events.envelope import Envelope, make_envelope
from rn623_events.settings import KafkaSettings
from rn623_events.topics import dlq_topic, ensure_topics, topic

pytestmark = pytest.mark.integration

Q3 = ("2025-07", "2025-08", "2025-09")


def operator_event(ans: str, segment: str, clock: ManualClock) -> OperatorUpserted:
    """An operator of ``segment``."""
    return OperatorUpserted(
        ans_registry=ans,
        name=f"Operadora {ans}",
        segment=segment,
        modality="odontologia_de_grupo" if segment == "dental" else "medicina_de_grupo",
        beneficiaries=1_000_000,
        uf="SP",
        municipality_ibge="3550308",
        timezone="America/Sao_Paulo",
        protocol_layout="ans-default-20",
        revision=1,
        updated_at=clock.now(),
    )


def complaint(
    ans: str, month: str, coverage: str | None, *, source: str = "nip"
) -> ComplaintRegistered:
    """A complaint received mid-month (Brasília)."""
    first = domain.parse_month(month)
    received = datetime(first.year, first.month, 15, 9, tzinfo=domain.BRASILIA)
    return ComplaintRegistered(
        protocol_number=f"{ans}{first:%Y%m%d}{secrets.randbelow(999_999):06d}",
        ans_registry=ans,
        complaint_id=uuid.uuid4(),
        source=source,
        classification="cobertura",
        received_at=received,
        registered_at=received,
        coverage=coverage,
    )


async def seed(
    rt: Runtime,
    ans: str,
    segment: str,
    beneficiaries: dict[str, int],
    complaints: dict[tuple[str, str], int],
) -> None:
    """An operator, its beneficiary counts per coverage (every month of 2025Q3) and its
    complaints per (coverage, month), all through the real handlers and repository."""
    handlers = IgrHandlers(rt)
    async with rt.uow() as uow:
        await handlers.operator_upserted(operator_event(ans, segment, rt.clock), uow)  # type: ignore[arg-type]
        await repo.put_beneficiaries(
            uow.session,
            [
                {
                    "ans_registry": ans,
                    "coverage": coverage,
                    "month": domain.parse_month(month),
                    "count": count,
                    "source": "api",
                    "updated_at": rt.clock.now(),
                }
                for coverage, count in beneficiaries.items()
                for month in Q3
            ],
        )
        events = [
            complaint(ans, month, coverage)
            for (coverage, month), count in complaints.items()
            for _ in range(count)
        ]
        await handlers.complaints(_items(rt, events), uow)
        await uow.commit()


def _items(rt: Runtime, events: Sequence[Any]) -> list[tuple[Any, Envelope]]:
    return [(e, make_envelope(e, source="protocol-svc", time=rt.clock.now())) for e in events]


async def figures(rt: Runtime, ans: str, quarter: str = "2025Q3") -> dict[str, Any]:
    """The live figures of a quarter."""
    async with rt.sessions() as session:
        inputs = await repo.load_inputs(session, quarter, [ans])
    return domain.quarter_figures(inputs[ans], rt.method)


def new_operator() -> str:
    """An operator registration of one test only."""
    return f"{secrets.randbelow(900_000) + 100_000}"


@pytest.mark.parametrize(
    ("thirteens", "igr_medio", "met"),
    [((13, 13, 13), "1.30", True), ((13, 13, 14), "1.33", False)],
)
async def test_a_dental_operator_meets_excellence_up_to_the_reference_value(
    runtime: Runtime, thirteens: tuple[int, int, int], igr_medio: str, met: bool
) -> None:
    ans = new_operator()
    complaints = {("dental", m): n for m, n in zip(Q3, thirteens, strict=True)}
    await seed(runtime, ans, "dental", {"dental": 1_000_000}, complaints)
    async with runtime.uow() as uow:  # the IGR individual exactly at its reference value
        await uow.session.execute(
            sa.text("INSERT INTO individual_figures VALUES (:a, '2025Q3', 'dental', 0.70, now())"),
            {"a": ans},
        )
        await uow.commit()
    result = await figures(runtime, ans)
    [dental] = result["coverages"]
    assert [m["igr"] for m in dental["months"]] == [f"{Decimal(n) / 10:.2f}" for n in thirteens]
    assert (dental["igr_medio"], dental["igr_medio_max"]) == (igr_medio, "1.3")
    assert (result["excellence_met"], result["discount_pct"]) == (met, 80 if met else 0)


async def test_an_operator_with_both_coverages_must_meet_both(runtime: Runtime) -> None:
    ans = new_operator()
    complaints = {("medical", m): 609 for m in Q3} | {("dental", m): 14 for m in Q3}
    await seed(runtime, ans, "both", {"medical": 1_000_000, "dental": 1_000_000}, complaints)
    result = await figures(runtime, ans)
    by_coverage = {c["coverage"]: c for c in result["coverages"]}
    assert by_coverage["medical"]["igr_medio"] == "60.90"  # exactly at the limit
    assert by_coverage["dental"]["igr_medio"] == "1.40"
    assert by_coverage["medical"]["excellence_met"] is False  # no IGR individual supplied
    assert result["excellence_met"] is False
    assert any("IGR individual not provided" in reason for reason in result["reasons"])


async def test_only_nip_complaints_count_and_an_unknown_coverage_is_set_apart(
    runtime: Runtime,
) -> None:
    ans = new_operator()
    await seed(runtime, ans, "both", {"medical": 100_000, "dental": 50_000}, {})
    events = [
        complaint(ans, "2025-08", "medical"),
        complaint(ans, "2025-08", None),  # an operator with both: coverage unknown
        complaint(ans, "2025-08", "medical", source="procon"),
    ]
    async with runtime.uow() as uow:
        await IgrHandlers(runtime).complaints(_items(runtime, events), uow)
        await uow.commit()
    result = await figures(runtime, ans)
    august = {c["coverage"]: c["months"][1] for c in result["coverages"]}
    assert (august["medical"]["complaints"], august["medical"]["igr"]) == (1, "1.00")
    assert august["dental"]["complaints"] == 0
    async with runtime.sessions() as session:
        rows = await session.execute(
            sa.text("SELECT metric, count FROM indicators WHERE ans_registry = :a ORDER BY metric"),
            {"a": ans},
        )
        unassigned = await session.scalar(
            sa.text(
                "SELECT complaints FROM complaint_counts WHERE ans_registry = :a"
                " AND coverage = 'unassigned'"
            ),
            {"a": ans},
        )
    assert unassigned == 1
    assert dict(rows.all()) == {
        "complaints.classification.cobertura": 3,
        "complaints.source.nip": 2,
        "complaints.source.procon": 1,
    }


async def test_a_closed_quarter_is_frozen_and_late_complaints_make_revisions(
    runtime: Runtime, clock: ManualClock
) -> None:
    ans = new_operator()
    await seed(runtime, ans, "medical", {"medical": 200_000}, {("medical", m): 100 for m in Q3})
    operators = await closer.close_quarter(runtime, "2025Q3")
    assert operators is not None
    assert operators >= 1
    assert await closer.close_quarter(runtime, "2025Q3") is None  # closes once
    # a complaint of August registered after the quarter closed
    async with runtime.uow() as uow:
        await IgrHandlers(runtime).complaints(
            _items(runtime, [complaint(ans, "2025-08", "medical")]), uow
        )
        await uow.commit()
    assert await closer.publish_revisions(runtime) == 1
    assert await closer.publish_revisions(runtime) == 0
    async with runtime.sessions() as session:
        rows = await session.execute(
            sa.text(
                "SELECT revision, figures FROM quarter_results WHERE ans_registry = :a"
                " AND quarter = '2025Q3' ORDER BY revision"
            ),
            {"a": ans},
        )
        results = rows.all()
        published = await session.scalar(
            sa.text("SELECT count(*) FROM outbox WHERE event_type = 'igr.computed' AND key = :a"),
            {"a": ans},
        )
    assert [r.revision for r in results] == [0, 1]
    months = [[m["complaints"] for m in r.figures["coverages"][0]["months"]] for r in results]
    assert months == [[100, 100, 100], [100, 101, 100]]  # revision 0 never changed
    assert results[0].figures["coverages"][0]["igr_medio"] == "50.00"
    assert results[1].figures["coverages"][0]["igr_medio"] == "50.17"
    assert published == 2


def test_quarters_close_after_their_grace_days() -> None:
    now = datetime(2025, 10, 6, 12, tzinfo=domain.BRASILIA)
    assert closer.due_quarters(now, set(), 5, "2025Q3") == ["2025Q3"]
    assert closer.due_quarters(now - timedelta(days=1), set(), 5, "2025Q3") == []
    assert closer.due_quarters(now, {"2025Q3"}, 5, "2025Q3") == []
    assert domain.quarter_months("2025Q4") == (
        date(2025, 10, 1),
        date(2025, 11, 1),
        date(2025, 12, 1),
    )
    assert domain.previous_year("2025Q1") == "2024Q1"
    assert domain.next_quarter("2025Q4") == "2026Q1"
    with pytest.raises(ValueError, match="2025Q3"):
        domain.parse_quarter("2025-Q3")


def test_the_newest_month_divides_by_the_latest_known_count() -> None:
    counts = {date(2024, 4, 1): 45_826}
    assert domain.beneficiaries_for(date(2024, 5, 1), counts) == (45_826, date(2024, 4, 1))
    assert domain.beneficiaries_for(date(2024, 7, 1), counts) is None  # too old


async def test_the_consumer_counts_each_event_once_and_dead_letters_bad_ones(
    runtime: Runtime, kafka_bootstrap_servers: str, unique_suffix: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap_servers)
    dlq = dlq_topic("igr-svc")
    await ensure_topics(
        kafka,
        [topic("operator.events"), topic("protocol.events"), topic("deadline.events"), topic(dlq)],
    )
    ans = new_operator()
    good = complaint(ans, "2025-08", "medical")
    envelope = make_envelope(good, source="protocol-svc", time=runtime.clock.now())
    bad = make_envelope(
        complaint(ans, "2025-09", "medical"), source="protocol-svc", time=runtime.clock.now()
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
    await producer.start()
    try:
        operator = make_envelope(
            operator_event(ans, "medical", runtime.clock),
            source="protocol-svc",
            time=runtime.clock.now(),
        )
        for env, value in (
            (operator, operator.value()),
            (envelope, envelope.value()),
            (envelope, envelope.value()),  # redelivered
            (bad, b'{"source": "nip"}'),  # not a complaint.registered
        ):
            await producer.send_and_wait(env.topic, key=env.key, value=value, headers=env.headers())
    finally:
        await producer.stop()
    dead_letters = DeadLetterPublisher(kafka, dlq)
    consumer = event_consumer(
        runtime,
        kafka,
        dead_letters,
        name=f"igr-svc.{unique_suffix}",
        config=ConsumerConfig(session_timeout_ms=2000, heartbeat_interval_ms=500),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))

    async def counted() -> Any:
        async with runtime.sessions() as session:
            return await session.scalar(
                sa.text("SELECT sum(complaints) FROM complaint_counts WHERE ans_registry = :a"),
                {"a": ans},
            )

    try:
        await eventually(lambda: _equals(counted, 1))
        letters = await _dead_letters(kafka_bootstrap_servers, dlq, bad.key)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await dead_letters.close()
    assert await counted() == 1
    assert len(letters) == 1
    assert "received_at" in letters[0]["dlq_error"]


async def _equals(read: Any, expected: Any) -> bool:
    return bool(await read() == expected)


async def _dead_letters(bootstrap: str, dlq: str, key: bytes) -> list[dict[str, str]]:
    reader = AIOKafkaConsumer(
        dlq, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await reader.start()
    found: list[dict[str, str]] = []
    deadline = time.monotonic() + 30
    try:
        while not found and time.monotonic() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                found += [{k: v.decode() for k, v in r.headers} for r in records if r.key == key]
    finally:
        await reader.stop()
    return found


async def test_the_open_quarter_gauges_follow_the_counters(
    runtime: Runtime, clock: ManualClock
) -> None:
    from prometheus_client import REGISTRY

    from igr_svc.gauges import refresh_gauges

    ans = new_operator()  # the clock is in the middle of 2025Q4 (21 Nov)
    handlers = IgrHandlers(runtime)
    async with runtime.uow() as uow:
        await handlers.operator_upserted(operator_event(ans, "medical", clock), uow)  # type: ignore[arg-type]
        await repo.put_beneficiaries(
            uow.session,
            [
                {
                    "ans_registry": ans,
                    "coverage": "medical",
                    "month": domain.parse_month(month),
                    "count": 100_000,
                    "source": "api",
                    "updated_at": clock.now(),
                }
                for month in ("2025-10", "2025-11")
            ],
        )
        await handlers.complaints(
            _items(runtime, [complaint(ans, "2025-10", "medical") for _ in range(50)]), uow
        )
        await uow.commit()
    assert await refresh_gauges(runtime) >= 1
    labels = {"operator": ans, "coverage": "medical"}
    # October 50.00 and November 0.00 so far (December has not started)
    assert REGISTRY.get_sample_value("igr_medio_current", labels) == 25.0
    projected = REGISTRY.get_sample_value("igr_medio_projected", labels)
    assert projected is not None
    assert 25.0 < projected < 50.0  # 50 complaints in ~1.7 of 3 months, scaled up
