"""HTTP API of deadline-svc (v1): deadlines, the business-day calculator, the rulebook."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from deadline_svc import domain
from deadline_svc import repository as repo
from deadline_svc.recompute import recompute_open
from deadline_svc.runtime import Runtime, calendar_of
from deadline_svc.schemas import (
    ANS_PATTERN,
    IBGE_PATTERN,
    PROTOCOL_PATTERN,
    BusinessDaysOut,
    CalendarUsed,
    ChannelRuleOut,
    DeadlineOut,
    DeadlinePage,
    DeadlineRuleOut,
    DeadlineStatus,
    HolidayOut,
    IgrExcellenceRuleOut,
    IgrReductionRuleOut,
    PorteRuleOut,
    RecomputeOut,
    RetentionRuleOut,
    RuleOut,
    RulesOut,
)
from rn623_events.auth import Principal, ensure_operator, require_scopes
from rn623_events.contracts.common import DemandTypeStr, IsoDate
from rn623_events.contracts.deadlines import DeadlineKind
from rn623_events.contracts.operators import UF, BrazilTimeZone
from rn623_events.cursors import bad_cursor, decode_cursor, encode_cursor
from rn623_events.http import app_runtime
from rn623_events.openapi import problem_responses
from rn623_events.problems import ProblemError, field_problem
from rn623_rulebook import BusinessCalendar, CalendarSpec, calendar_for, load_ruleset
from rn623_rulebook.calendars import DEFAULT_TIMEZONE, MAX_YEAR, MIN_YEAR
from rn623_rulebook.rules import (
    AnyRule,
    ChannelObligation,
    DeadlineRule,
    IgrExcellenceRule,
    IgrReductionRule,
    PorteRule,
    RetentionRule,
)
from rn623_rulebook.timezones import timezone_for_uf

READ_SCOPE = "deadlines:read"
MAX_DAYS = 3650
BRASILIA = ZoneInfo(DEFAULT_TIMEZONE)  # "today" of the rulebook: Brasília time


RuntimeDep = Annotated[Runtime, Depends(app_runtime)]
Reader = Annotated[Principal, Depends(require_scopes(READ_SCOPE))]

router = APIRouter(prefix="/v1")


# ---- deadlines ---------------------------------------------------------------------------


@router.get("/deadlines", response_model=DeadlinePage, tags=["deadlines"])
async def list_deadlines(
    rt: RuntimeDep,
    principal: Reader,
    protocol: Annotated[
        str | None, Query(pattern=PROTOCOL_PATTERN, description="Protocol number.")
    ] = None,
    operator: Annotated[
        str | None, Query(pattern=ANS_PATTERN, description="ANS registration (6 digits).")
    ] = None,
    status: Annotated[DeadlineStatus | None, Query()] = None,
    kind: Annotated[DeadlineKind | None, Query()] = None,
    demand_type: Annotated[DemandTypeStr | None, Query()] = None,
    due_before: Annotated[
        AwareDatetime | None, Query(description="Due strictly before this instant.")
    ] = None,
    due_after: Annotated[
        AwareDatetime | None, Query(description="Due at or after this instant.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DeadlinePage:
    """Deadlines the caller may see: urgencies first, then by due instant."""
    if operator is not None:
        ensure_operator(principal, operator)
    after = _decode_cursor(cursor) if cursor is not None else None
    async with rt.sessions() as session:
        rows = await repo.list_deadlines(
            session,
            operators_allowed=None if principal.all_operators else sorted(principal.operators),
            protocol_number=protocol,
            ans_registry=operator,
            status=status,
            kind=kind,
            demand_type=demand_type,
            due_before=due_before,
            due_after=due_after,
            after=after,
            limit=limit + 1,
        )
        page = rows[:limit]
        operators = await _operators(session, {row["ans_registry"] for row in page})
    # a calendar's first use builds its day index (tens of ms): keep it off the event loop
    items = await run_in_threadpool(_deadlines_out, page, operators, rt.clock.now())
    return DeadlinePage(
        items=items, next_cursor=_encode_cursor(page[-1]) if len(rows) > limit else None
    )


@router.get(
    "/deadlines/{deadline_id}",
    response_model=DeadlineOut,
    tags=["deadlines"],
    responses=problem_responses(404),
)
async def get_deadline(deadline_id: uuid.UUID, rt: RuntimeDep, principal: Reader) -> DeadlineOut:
    """One deadline (404 when unknown or of an operator the caller may not act for)."""
    async with rt.sessions() as session:
        row = await repo.get_deadline(session, deadline_id)
        if row is None or not principal.can_act_for(row["ans_registry"]):
            raise ProblemError(404, "Not Found", "no such deadline")
        operators = await _operators(session, {row["ans_registry"]})
    items = await run_in_threadpool(_deadlines_out, [row], operators, rt.clock.now())
    return items[0]


# ---- calendar ----------------------------------------------------------------------------


@router.get("/calendar/add-business-days", response_model=BusinessDaysOut, tags=["calendar"])
async def add_business_days(
    rt: RuntimeDep,
    principal: Reader,
    start: Annotated[IsoDate, Query(description="The day counting starts from (day 0).")],
    days: Annotated[int, Query(ge=-MAX_DAYS, le=MAX_DAYS, description="Business days to add.")],
    operator: Annotated[
        str | None,
        Query(pattern=ANS_PATTERN, description="Use this operator's calendar (not with uf)."),
    ] = None,
    uf: Annotated[
        UF | None, Query(description="Use this state's calendar (not with operator).")
    ] = None,
    municipality: Annotated[
        str | None,
        Query(pattern=IBGE_PATTERN, description="IBGE code of a municipality of uf (7 digits)."),
    ] = None,
    timezone: Annotated[
        BrazilTimeZone | None,
        Query(description="Time zone of the uf calendar (default: the state's main zone)."),
    ] = None,
) -> BusinessDaysOut:
    """The n-th business day after (or before) a date, by an operator's or a place's calendar."""
    if operator is None and uf is None:
        field = "query.uf" if municipality or timezone else "query.operator"
        raise field_problem(field, "give operator or uf", "missing_calendar")
    if operator is not None:
        if uf is not None:
            raise field_problem("query.uf", "give operator or uf, not both", "operator_and_uf")
        for name, value in (("municipality", municipality), ("timezone", timezone)):
            if value is not None:
                raise field_problem(
                    f"query.{name}", "only applies with uf, not with operator", "not_with_operator"
                )
        ensure_operator(principal, operator)
        async with rt.sessions() as session:
            row = await repo.get_operator(session, operator)
        if row is None:
            raise field_problem("query.operator", "operator is not known", "unknown_operator")
        calendar = calendar_of(dict(row))
    else:
        assert uf is not None
        try:
            spec = CalendarSpec(
                timezone=timezone or timezone_for_uf(uf), uf=uf, municipality_ibge=municipality
            )
        except ValidationError:
            raise field_problem(
                "query.municipality", "is not a municipality of uf", "municipality_not_in_uf"
            ) from None
        calendar = calendar_for(spec)
    if not MIN_YEAR <= start.year <= MAX_YEAR:
        raise field_problem(
            "query.start", f"must fall within {MIN_YEAR}-{MAX_YEAR}", "unsupported_year"
        )
    try:
        return await run_in_threadpool(_add_business_days, calendar, operator, start, days)
    except ValidationError:
        raise  # a bug of ours, not the caller's input
    except ValueError:
        raise field_problem(
            "query.days", f"the result falls outside {MIN_YEAR}-{MAX_YEAR}", "unsupported_year"
        ) from None


# ---- rules -------------------------------------------------------------------------------


@router.get("/rules", response_model=RulesOut, tags=["rules"])
async def get_rules(
    rt: RuntimeDep,
    principal: Reader,
    on: Annotated[
        IsoDate | None, Query(description="Judge rules in force on this day (default: today).")
    ] = None,
    include_all: Annotated[
        bool, Query(alias="all", description="Include rules not in force on that day.")
    ] = False,
) -> RulesOut:
    """The rulebook: every rule in force (or all of them) with its legal basis and dates."""
    ruleset = load_ruleset()
    day = on or rt.clock.now().astimezone(BRASILIA).date()
    rules = ruleset.all_rules() if include_all else ruleset.rules_in_force(day)
    return RulesOut(
        ruleset_id=ruleset.id,
        version=ruleset.version,
        title=ruleset.title,
        published_on=ruleset.published_on,
        on=day,
        rules=[_rule_out(rule, day) for rule in rules],
    )


@router.post(
    "/operators/{ans_registry}/recompute",
    response_model=RecomputeOut,
    tags=["deadlines"],
    responses=problem_responses(404),
)
async def recompute_deadlines(
    ans_registry: Annotated[str, Path(pattern=ANS_PATTERN)],
    rt: RuntimeDep,
    principal: Annotated[Principal, Depends(require_scopes("admin"))],
) -> RecomputeOut:
    """Recompute an operator's open deadlines with the rule set now in force (after a
    rulebook release); each one that moves emits ``deadline.recomputed``."""
    ensure_operator(principal, ans_registry)
    async with rt.uow() as uow:
        # locked: a calendar change being applied now finishes first, then we see it
        operator = await repo.get_operator(uow.session, ans_registry, lock=True)
        if operator is None:
            raise ProblemError(404, "Not Found", "operator is not known to deadline-svc")
        moved = await recompute_open(rt, uow, operator, reason="ruleset_changed")
        await uow.commit()
    return RecomputeOut(operator=ans_registry, recomputed=moved)


# ---- helpers -----------------------------------------------------------------------------


async def _operators(
    session: AsyncSession, registries: Iterable[str]
) -> dict[str, BusinessCalendar]:
    """The calendars of the operators known locally (unknown ones are left out)."""
    calendars: dict[str, BusinessCalendar] = {}
    for ans_registry in sorted(registries):
        row = await repo.get_operator(session, ans_registry)
        if row is not None:
            calendars[ans_registry] = calendar_of(dict(row))
    return calendars


def _deadlines_out(
    rows: Sequence[Mapping[Any, Any]], calendars: Mapping[str, BusinessCalendar], now: datetime
) -> list[DeadlineOut]:
    return [_deadline_out(row, calendars.get(row["ans_registry"]), now) for row in rows]


def _deadline_out(
    row: Mapping[Any, Any], calendar: BusinessCalendar | None, now: datetime
) -> DeadlineOut:
    zone: tzinfo = calendar.tz if calendar is not None else UTC
    left = None
    if calendar is not None and row["status"] in (domain.OPEN, domain.BREACHED):
        left = domain.business_days_left(now, row["due_at"], calendar)

    def local(moment: datetime | None) -> datetime | None:
        return moment.astimezone(zone) if moment is not None else None

    return DeadlineOut(
        id=row["id"],
        protocol_number=row["protocol_number"],
        operator=row["ans_registry"],
        demand_id=row["demand_id"],
        access_request_id=row["access_request_id"],
        kind=row["kind"],
        demand_type=row["demand_type"],
        category=row["category"],
        status=row["status"],
        immediate=row["immediate"],
        started_at=row["started_at"].astimezone(zone),
        due_at=row["due_at"].astimezone(zone),
        rule_id=row["rule_id"],
        legal_basis=row["legal_basis"],
        ruleset_id=row["ruleset_id"],
        warned=list(row["warned"]),
        breached_at=local(row["breached_at"]),
        answered_at=local(row["answered_at"]),
        elapsed_business_days=row["elapsed_business_days"],
        elapsed_seconds=row["elapsed_seconds"],
        recomputed_at=local(row["recomputed_at"]),
        business_days_left=left,
    )


def _add_business_days(
    calendar: BusinessCalendar, operator: str | None, start: date, days: int
) -> BusinessDaysOut:
    """The calculator's answer; ValueError when it leaves the years calendars cover."""
    result = calendar.add_business_days(start, days)
    if days > 0:
        first, last = start + timedelta(days=1), result
    else:
        first, last = result, start - timedelta(days=1)
    skipped = [
        HolidayOut(date=day, name=name)
        for day, name in calendar.holidays_between(first, last)
        if day.weekday() < 5 and not calendar.is_business_day(day)
    ]
    due_at = (
        calendar.due_at(datetime.combine(start, time.min, tzinfo=calendar.tz), days)
        if days >= 0
        else None
    )
    spec = calendar.spec
    return BusinessDaysOut(
        start=start,
        days=days,
        result=result,
        due_at=due_at,
        calendar=CalendarUsed(
            operator=operator,
            timezone=spec.timezone,
            uf=spec.uf,
            municipality_ibge=spec.municipality_ibge,
            has_municipal_data=calendar.has_municipal_data,
        ),
        holidays_skipped=skipped,
    )


_RULE_OUT: Mapping[type[AnyRule], Any] = {
    DeadlineRule: DeadlineRuleOut,
    RetentionRule: RetentionRuleOut,
    ChannelObligation: ChannelRuleOut,
    PorteRule: PorteRuleOut,
    IgrExcellenceRule: IgrExcellenceRuleOut,
    IgrReductionRule: IgrReductionRuleOut,
}


def _rule_out(rule: AnyRule, on: date) -> RuleOut:
    status = (
        "in_force" if rule.in_force(on) else "upcoming" if on < rule.effective_from else "expired"
    )
    out: RuleOut = _RULE_OUT[type(rule)].model_validate({**rule.model_dump(), "status": status})
    return out


def _encode_cursor(row: Mapping[Any, Any]) -> str:
    """An opaque keyset cursor: the last item's (not immediate, due_at, id)."""
    return encode_cursor((int(not row["immediate"]), row["due_at"].isoformat(), row["id"]))


def _decode_cursor(cursor: str) -> tuple[bool, datetime, uuid.UUID]:
    urgency_last, due_at, deadline_id = decode_cursor(cursor, 3)
    try:
        moment = datetime.fromisoformat(due_at)
        if urgency_last not in ("0", "1") or moment.utcoffset() is None:
            raise ValueError(cursor)
        return urgency_last == "1", moment, uuid.UUID(deadline_id)
    except ValueError:
        raise bad_cursor() from None
