"""Scheduling, answers, warnings, breaches and recomputation against the real database."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from deadline_svc.consumers import DeadlineHandlers
from deadline_svc.runtime import Runtime
from deadline_svc.scheduler import Scheduler
from deadline_svc_testdata import OPERATOR_A
from rn623_events.clock import ManualClock
from rn623_events.consumer import NotReady
from rn623_events.contracts.operators import OperatorUpserted
from rn623_events.contracts.protocols import DemandAnswered, DemandRegistered
from rn623_events.contracts.retention import AccessRequestFulfilled, AccessRequestOpened
from rn623_events.db import create_engine, session_factory
from rn623_events.envelope import make_envelope
from rn623_rulebook import calendar_for, deadline_for, operator_calendar_spec

pytestmark = pytest.mark.integration

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
# Friday 14 Nov 2025, 10:00 in São Paulo: Thursday 20 Nov is a national holiday
# (Consciência Negra), so 5 business days end on Monday 24 Nov.
FRIDAY = datetime(2025, 11, 14, 10, 0, tzinfo=SAO_PAULO)


@pytest.fixture
def clock() -> ManualClock:
    """Service time: the Friday the test demands are registered."""
    return ManualClock(FRIDAY)


def operator(revision: int = 1, extra_holidays: tuple[str, ...] = ()) -> OperatorUpserted:
    """Operator A's registration (São Paulo)."""
    return OperatorUpserted(
        ans_registry=OPERATOR_A,
        name="Operadora Exemplo",
        segment="medical",
        modality="medicina_de_grupo",
        beneficiaries=150_000,
        uf="SP",
        municipality_ibge="3550308",
        timezone="America/Sao_Paulo",
        protocol_layout="ans-default-20",
        extra_holidays=tuple({"date": d, "name": "Feriado da operadora"} for d in extra_holidays),
        revision=revision,
        updated_at=FRIDAY,
    )


def registered(
    requested_at: datetime, demand_type: str = "assistance", number: int = 1
) -> DemandRegistered:
    """A demand registered as protocol-svc would publish it (due date from the rulebook)."""
    calendar = calendar_for(operator_calendar_spec(operator().model_dump(mode="json")))
    deadline = deadline_for(demand_type, None, requested_at, calendar)
    return DemandRegistered(
        protocol_number=f"{OPERATOR_A}20251114{number:06d}",
        ans_registry=OPERATOR_A,
        demand_id=uuid.uuid4(),
        demand_type=demand_type,
        requested_at=requested_at,
        registered_at=requested_at,
        due_at=deadline.due_at,
        immediate=deadline.immediate,
        deadline_rule_id=deadline.rule_id,
        deadline_legal_basis=deadline.legal_basis,
        deadline_unit=str(deadline.unit),
        deadline_amount=deadline.amount,
        ruleset_id=deadline.ruleset_id,
    )


def answer(demand: DemandRegistered, answered_at: datetime) -> DemandAnswered:
    """The demand's conclusive answer."""
    return DemandAnswered(
        protocol_number=demand.protocol_number,
        ans_registry=OPERATOR_A,
        demand_id=demand.demand_id,
        outcome="authorized",
        text="Procedimento autorizado; a guia foi enviada por e-mail.",
        answered_at=answered_at,
        reanalysis_allowed=False,
    )


async def handle(rt: Runtime, *events: Any) -> None:
    """Apply events through the consumer's handlers, each in its own unit of work."""
    handlers = DeadlineHandlers(rt)
    for event in events:
        async with rt.uow() as uow:
            if isinstance(event, DemandRegistered):
                envelope = make_envelope(event, source="protocol-svc", time=rt.clock.now())
                await handlers.demands_registered([(event, envelope)], uow)
            elif isinstance(event, OperatorUpserted):
                await handlers.operator_upserted(event, uow)
            elif isinstance(event, AccessRequestOpened):
                await handlers.access_request_opened(event, uow)
            elif isinstance(event, AccessRequestFulfilled):
                await handlers.access_request_fulfilled(event, uow)
            else:
                await handlers.demand_answered(event, uow)
            await uow.commit()


async def deadline_of(rt: Runtime, demand: DemandRegistered) -> Any:
    """The deadline row of a demand."""
    async with rt.sessions() as session:
        row = await session.execute(
            sa.text("SELECT * FROM deadlines WHERE demand_id = :d"), {"d": demand.demand_id}
        )
        return row.mappings().one()


async def events(rt: Runtime, event_type: str) -> list[dict[str, Any]]:
    """Payloads of one type staged in the outbox, in order."""
    async with rt.sessions() as session:
        rows = await session.execute(
            sa.text("SELECT payload FROM outbox WHERE event_type = :t ORDER BY id"),
            {"t": event_type},
        )
        return list(rows.scalars())


async def test_a_demand_on_the_friday_before_a_holiday(runtime: Runtime) -> None:
    demand = registered(FRIDAY)
    assert demand.due_at == datetime(2025, 11, 24, 23, 59, 59, 999999, tzinfo=SAO_PAULO)
    await handle(runtime, operator(), demand, demand)  # the registration redelivered
    row = await deadline_of(runtime, demand)
    assert row["due_at"] == demand.due_at
    assert (row["status"], row["kind"], row["rule_id"]) == (
        "open",
        "demand",
        "rn623.deadline.assistance",
    )
    # first look: 00:00 of Friday 21, the last business day before the due day
    assert row["next_check_at"] == datetime(2025, 11, 21, tzinfo=SAO_PAULO)
    [scheduled] = await events(runtime, "deadline.scheduled")
    assert datetime.fromisoformat(scheduled["due_at"]) == demand.due_at
    assert scheduled["legal_basis"] == demand.deadline_legal_basis


async def test_answers_before_and_after_the_due_instant(
    runtime: Runtime, clock: ManualClock
) -> None:
    on_time, late = registered(FRIDAY, number=1), registered(FRIDAY, number=2)
    await handle(runtime, operator(), on_time, late)
    await handle(runtime, answer(on_time, datetime(2025, 11, 19, 16, 0, tzinfo=SAO_PAULO)))
    clock.set(datetime(2025, 11, 25, 9, 0, tzinfo=SAO_PAULO))  # past the due instant
    await Scheduler(runtime).tick()
    await handle(runtime, answer(late, datetime(2025, 11, 25, 9, 30, tzinfo=SAO_PAULO)))

    met, met_late = await deadline_of(runtime, on_time), await deadline_of(runtime, late)
    assert (met["status"], met["elapsed_business_days"]) == ("met", 3)  # Mon, Tue, Wed
    assert (met_late["status"], met_late["elapsed_business_days"]) == ("met_late", 6)
    assert met_late["breached_at"] == clock.now()
    assert [e["deadline_id"] for e in await events(runtime, "deadline.breached")] == [
        str(met_late["id"])
    ]
    outcomes = {e["deadline_id"]: e["late"] for e in await events(runtime, "deadline.met")}
    assert outcomes == {str(met["id"]): False, str(met_late["id"]): True}


async def test_two_scheduler_replicas_warn_and_breach_exactly_once(
    runtime: Runtime, migrated_database: str, clock: ManualClock
) -> None:
    demands = [registered(FRIDAY, number=n) for n in range(300)]
    await handle(runtime, operator(), *demands)
    engines: list[AsyncEngine] = [create_engine(migrated_database, pool_size=2) for _ in range(2)]
    replicas = [
        Scheduler(
            Runtime(
                sessions=session_factory(engine),
                clock=clock,
                source="deadline-svc",
                checkpoints=runtime.checkpoints,
            ),
            batch_size=40,
        )
        for engine in engines
    ]
    try:
        for moment in (
            datetime(2025, 11, 21, 8, 0, tzinfo=SAO_PAULO),  # one business day left
            datetime(2025, 11, 24, 9, 0, tzinfo=SAO_PAULO),  # 80 % elapsed
            datetime(2025, 11, 24, 9, 0, 1, tzinfo=SAO_PAULO),  # nothing new
            datetime(2025, 11, 25, 0, 0, tzinfo=SAO_PAULO),  # due instant passed
        ):
            clock.set(moment)
            await asyncio.gather(*(r.tick() for r in replicas), *(r.tick() for r in replicas))
    finally:
        for engine in engines:
            await engine.dispose()
    warnings = Counter(
        (w["deadline_id"], w["checkpoint"]) for w in await events(runtime, "deadline.warning")
    )
    assert len(warnings) == 2 * len(demands)
    assert set(warnings.values()) == {1}
    days_left = {
        w["checkpoint"]: w["business_days_left"] for w in await events(runtime, "deadline.warning")
    }
    assert days_left == {"one_business_day_left": 1, "elapsed_80_percent": 0}
    breaches = Counter(b["deadline_id"] for b in await events(runtime, "deadline.breached"))
    assert len(breaches) == len(demands)
    assert set(breaches.values()) == {1}


async def test_a_holiday_added_recomputes_open_deadlines_only(runtime: Runtime) -> None:
    still_open, closed = registered(FRIDAY, number=1), registered(FRIDAY, number=2)
    await handle(runtime, operator(), still_open, closed)
    await handle(runtime, answer(closed, datetime(2025, 11, 17, 11, 0, tzinfo=SAO_PAULO)))
    # the operator declares Monday 17 Nov a holiday: the open count moves one day later
    await handle(runtime, operator(revision=2, extra_holidays=("2025-11-17",)))
    await handle(runtime, operator(revision=1))  # a stale revision changes nothing

    moved, untouched = await deadline_of(runtime, still_open), await deadline_of(runtime, closed)
    assert moved["due_at"] == datetime(2025, 11, 25, 23, 59, 59, 999999, tzinfo=SAO_PAULO)
    assert moved["recomputed_at"] is not None
    assert untouched["due_at"] == closed.due_at
    [recomputed] = await events(runtime, "deadline.recomputed")
    assert recomputed["deadline_id"] == str(moved["id"])
    assert datetime.fromisoformat(recomputed["previous_due_at"]) == still_open.due_at
    assert datetime.fromisoformat(recomputed["due_at"]) == moved["due_at"]
    assert recomputed["reason"] == "calendar_changed"


async def test_an_urgency_is_due_within_the_hour_and_warns_at_80_percent(
    runtime: Runtime, clock: ManualClock
) -> None:
    requested = datetime(2025, 11, 21, 10, 0, tzinfo=SAO_PAULO)
    urgency = registered(requested, demand_type="urgent_emergency")
    await handle(runtime, operator(), urgency)
    row = await deadline_of(runtime, urgency)
    assert row["immediate"] is True
    assert row["due_at"] == requested + timedelta(hours=1)
    assert row["next_check_at"] == requested + timedelta(minutes=48)
    clock.set(requested + timedelta(minutes=50))
    await Scheduler(runtime).tick()
    [warning] = await events(runtime, "deadline.warning")
    assert warning["checkpoint"] == "elapsed_80_percent"
    assert datetime.fromisoformat(warning["due_at"]) == urgency.due_at
    assert datetime.fromisoformat(warning["warned_at"]).astimezone(UTC) == clock.now()


def access_request_of(ans_registry: str) -> tuple[dict[str, Any], AccessRequestOpened]:
    """A records-access request opened on Friday, due 72 hours later, and the fields its
    ``access_request.*`` events share."""
    common: dict[str, Any] = {
        "request_id": uuid.uuid4(),
        "protocol_number": f"{ans_registry}20251114000001",
        "ans_registry": ans_registry,
    }
    opened = AccessRequestOpened(
        **common,
        requested_at=FRIDAY,
        due_at=FRIDAY + timedelta(hours=72),
        rule_id="rn623.deadline.records_access",
        legal_basis="RN 623/2024",
        ruleset_id="rn623-2025",
    )
    return common, opened


async def test_a_records_access_request_is_due_in_72_hours(
    runtime: Runtime, clock: ManualClock
) -> None:
    common, opened = access_request_of(OPERATOR_A)
    request_id = common["request_id"]
    await handle(runtime, operator(), opened, opened)  # redelivered: one deadline
    clock.set(FRIDAY + timedelta(hours=60))  # past 80 % of the window
    await Scheduler(runtime).tick()
    fulfilled_at = FRIDAY + timedelta(hours=70)
    await handle(runtime, AccessRequestFulfilled(**common, fulfilled_at=fulfilled_at))
    async with runtime.sessions() as session:
        row = (
            (
                await session.execute(
                    sa.text("SELECT * FROM deadlines WHERE access_request_id = :r"),
                    {"r": request_id},
                )
            )
            .mappings()
            .one()
        )
    assert (row["kind"], row["status"], row["demand_id"]) == ("records_access", "met", None)
    assert row["answered_at"] == fulfilled_at
    [scheduled] = await events(runtime, "deadline.scheduled")
    assert scheduled["access_request_id"] == str(request_id)
    [warning] = await events(runtime, "deadline.warning")
    assert (
        warning["checkpoint"] == "elapsed_80_percent"
    )  # the day before Monday 17 is the request day
    [met] = await events(runtime, "deadline.met")
    assert met["late"] is False


async def test_a_records_access_request_of_an_unknown_operator_never_waits(
    runtime: Runtime, clock: ManualClock
) -> None:
    """retention-svc accepts requests on protocols it has not seen, for operators this
    service may never learn: waiting for their calendar held every deadline behind it
    (found by the e2e security run)."""
    stranger = "990001"
    common, opened = access_request_of(stranger)
    request_id = common["request_id"]
    await handle(runtime, opened)  # no NotReady
    await handle(
        runtime, AccessRequestFulfilled(**common, fulfilled_at=FRIDAY + timedelta(hours=1))
    )
    async with runtime.sessions() as session:
        row = (
            (
                await session.execute(
                    sa.text("SELECT * FROM deadlines WHERE access_request_id = :r"),
                    {"r": request_id},
                )
            )
            .mappings()
            .one()
        )
    assert (row["ans_registry"], row["status"]) == (stranger, "met")
    assert row["due_at"] == FRIDAY + timedelta(hours=72)


async def test_a_rule_set_release_recomputes_open_deadlines_on_request(
    runtime: Runtime, app_client: httpx.AsyncClient, token: Callable[..., dict[str, str]]
) -> None:
    stale, closed = registered(FRIDAY, number=1), registered(FRIDAY, number=2)
    # as if an earlier rule set had given these demands one more day
    stale = stale.model_copy(update={"due_at": stale.due_at + timedelta(days=1)})
    closed = closed.model_copy(update={"due_at": closed.due_at + timedelta(days=1)})
    await handle(runtime, operator(), stale, closed)
    await handle(runtime, answer(closed, datetime(2025, 11, 17, 11, 0, tzinfo=SAO_PAULO)))
    url = f"/v1/operators/{OPERATOR_A}/recompute"

    reader = await app_client.post(url, headers=token(scopes=("deadlines:read",)))
    other = await app_client.post(url, headers=token(operators=("654321",)))
    response = await app_client.post(url, headers=token())

    assert (reader.status_code, other.status_code) == (403, 403)
    assert response.json() == {"operator": OPERATOR_A, "recomputed": 1}
    assert (await deadline_of(runtime, stale))["due_at"] == registered(FRIDAY).due_at
    assert (await deadline_of(runtime, closed))["due_at"] == closed.due_at
    [recomputed] = await events(runtime, "deadline.recomputed")
    assert recomputed["reason"] == "ruleset_changed"
    assert (
        await app_client.post("/v1/operators/999999/recompute", headers=token())
    ).status_code == 404


async def test_dashboards_get_open_due_soon_breaches_and_time_to_answer(
    runtime: Runtime, clock: ManualClock, app_client: httpx.AsyncClient
) -> None:
    answered_one, breached, still_open = (registered(FRIDAY, number=n) for n in (1, 2, 3))
    soon = registered(datetime(2025, 11, 25, 9, 0, tzinfo=SAO_PAULO), number=4)
    await handle(runtime, operator(), answered_one, breached, still_open)
    await handle(runtime, answer(answered_one, datetime(2025, 11, 19, 16, 0, tzinfo=SAO_PAULO)))
    clock.set(datetime(2025, 11, 25, 9, 0, tzinfo=SAO_PAULO))
    await handle(runtime, answer(still_open, clock.now()))  # late
    scheduler = Scheduler(runtime)
    await scheduler.tick()  # breaches the one left unanswered
    await handle(runtime, soon)
    clock.set(datetime(2025, 12, 2, 8, 0, tzinfo=SAO_PAULO))  # soon is due tonight
    await scheduler.refresh_gauges()

    text = (await app_client.get("/metrics")).text
    labels = f'kind="demand",operator="{OPERATOR_A}"'
    assert f"deadlines_open{{{labels}}} 1.0" in text
    assert f"deadlines_due_within_24h{{{labels}}} 1.0" in text
    assert f"deadline_breaches_total{{{labels}}}" in text
    assert 'deadline_time_to_answer_business_days_bucket{kind="demand",le="3.0"}' in text
    assert 'deadline_time_to_answer_hours_count{kind="demand"}' in text


async def test_an_answer_given_in_time_that_arrives_after_the_breach_ends_met(
    runtime: Runtime, clock: ManualClock
) -> None:
    demand = registered(FRIDAY)
    await handle(runtime, operator(), demand)
    clock.set(datetime(2025, 11, 25, 0, 1, tzinfo=SAO_PAULO))
    await Scheduler(runtime).tick()  # the answer is still on its way
    await handle(runtime, answer(demand, datetime(2025, 11, 24, 23, 59, tzinfo=SAO_PAULO)))
    row = await deadline_of(runtime, demand)
    assert (row["status"], row["breached_at"]) == ("met", clock.now())
    [met] = await events(runtime, "deadline.met")
    assert met["late"] is False  # supersedes the deadline.breached already sent


async def test_a_demand_dated_with_an_older_calendar_is_recomputed_on_arrival(
    runtime: Runtime,
) -> None:
    await handle(runtime, operator(), operator(revision=2, extra_holidays=("2025-11-17",)))
    stale = registered(FRIDAY).model_copy(update={"operator_revision": 1})
    await handle(runtime, stale)
    row = await deadline_of(runtime, stale)
    assert row["due_at"] == datetime(2025, 11, 25, 23, 59, 59, 999999, tzinfo=SAO_PAULO)
    [recomputed] = await events(runtime, "deadline.recomputed")
    assert datetime.fromisoformat(recomputed["previous_due_at"]) == stale.due_at

    ahead = registered(FRIDAY, number=2).model_copy(update={"operator_revision": 3})
    with pytest.raises(NotReady):  # waits for revision 3 of the operator's calendar
        await handle(runtime, ahead)
