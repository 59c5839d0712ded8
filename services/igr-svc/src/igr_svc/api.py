"""HTTP API of igr-svc (v1): beneficiary counts (one by one or the regulator's open-data
file), the IGR individual, an operator's IGR per quarter and its history, the ranking, the
export in the regulator's layout, the ouvidoria's indicators, and closing a quarter.

Scopes: ``igr:read`` to read, ``igr:write`` to store beneficiary counts, IGR individual
figures and imports, ``admin`` to close a quarter (``admin`` grants every scope). Closing a
quarter and importing the open data change every operator's figures, so both need a token
for every operator. A caller only sees the operators it may act for: naming another one is
refused (403), except for an operator's IGR and history, where unknown and hidden operators
alike are 404; rankings and exports list only visible operators. IGR values travel as exact
decimal strings.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import zlib
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from igr_svc import closer, domain
from igr_svc import queries as q
from igr_svc import repository as repo
from igr_svc.importer import parse_open_data, store_open_data
from igr_svc.imports import OpenDataError
from igr_svc.runtime import Runtime
from igr_svc.schemas import (
    ANS_PATTERN,
    MONTH_PATTERN,
    QUARTER_PATTERN,
    BeneficiariesIn,
    BeneficiariesOut,
    BeneficiaryCountOut,
    BeneficiaryListOut,
    CloseOut,
    ComplaintIndicatorsOut,
    CoverageName,
    DeadlineIndicatorsOut,
    ExportFormat,
    ExportRowOut,
    FiguresOut,
    HistoryCoverageOut,
    HistoryItemOut,
    HistoryOut,
    IgrOut,
    ImportOut,
    IndicatorsOut,
    IndividualIn,
    IndividualOut,
    ProjectionOut,
    RankingItemOut,
    RankingOut,
    ReanalysisIndicatorsOut,
)
from rn623_events.auth import ADMIN_SCOPE, Principal, ensure_operator, require_scopes
from rn623_events.contracts.common import REANALYSIS_OUTCOMES, ComplaintSource, Outcome
from rn623_events.contracts.deadlines import DeadlineKind
from rn623_events.cursors import bad_cursor, decode_cursor, encode_cursor
from rn623_events.http import app_runtime
from rn623_events.openapi import problem_responses
from rn623_events.problems import ProblemError, field_problem, problem_type

log = logging.getLogger(__name__)

READ_SCOPE, WRITE_SCOPE = "igr:read", "igr:write"
MAX_HISTORY_QUARTERS = 20
MAX_BENEFICIARY_MONTHS = 120
MAX_IMPORT_BYTES = 50 * 1024 * 1024  # the request body, compressed or not
MAX_IMPORT_TEXT_BYTES = 200 * 1024 * 1024  # the file once decompressed
CSV_TYPES = frozenset({"text/csv"})
GZIP_TYPES = frozenset({"application/gzip", "application/x-gzip"})
EXPORT_COLUMNS = (
    "REGISTRO_ANS",
    "RAZAO_SOCIAL",
    "COBERTURA",
    "IGR",
    "QTD_RECLAMACOES",
    "QTD_BENEFICIARIOS",
    "COMPETENCIA",
    "COMPETENCIA_BENEFICIARIO",
)
COVERAGE_LABELS = {"medical": "Assistência médica", "dental": "Exclusivamente odontológica"}
CENT = Decimal("0.01")
_IGR_CURSOR = re.compile(r"^([0-9]{1,12}(\.[0-9]{1,4})?)?$")

RuntimeDep = Annotated[Runtime, Depends(app_runtime)]
Reader = Annotated[Principal, Depends(require_scopes(READ_SCOPE))]
Writer = Annotated[Principal, Depends(require_scopes(WRITE_SCOPE))]
Admin = Annotated[Principal, Depends(require_scopes(ADMIN_SCOPE))]
AnsPath = Annotated[str, Path(pattern=ANS_PATTERN, description="ANS registration (6 digits).")]
MonthPath = Annotated[str, Path(pattern=MONTH_PATTERN, description="The month (YYYY-MM).")]
QuarterPath = Annotated[str, Path(pattern=QUARTER_PATTERN, description="e.g. 2025Q3.")]
QuarterQuery = Annotated[
    str | None,
    Query(pattern=QUARTER_PATTERN, description="e.g. 2025Q3 (default: the current quarter)."),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=200)]

router = APIRouter(prefix="/v1")


# ---- beneficiaries -------------------------------------------------------------------------


@router.put(
    "/operators/{ans_registry}/beneficiaries/{month}",
    response_model=BeneficiariesOut,
    tags=["beneficiaries"],
    responses={409: {"description": "The month's quarter is closed: its counts are frozen."}},
)
async def put_beneficiaries(
    ans_registry: AnsPath,
    month: MonthPath,
    body: BeneficiariesIn,
    rt: RuntimeDep,
    principal: Writer,
) -> BeneficiariesOut:
    """Store an operator's beneficiaries in a month per coverage (replacing earlier counts);
    returns every count stored for that month."""
    ensure_operator(principal, ans_registry)
    first = domain.parse_month(month)
    now = rt.clock.now()
    if first > domain.month_of(now):
        raise field_problem("path.month", "is a future month", "future_month")
    given = {"medical": body.medical, "dental": body.dental}
    rows = [
        {
            "ans_registry": ans_registry,
            "coverage": coverage,
            "month": first,
            "count": count,
            "source": "api",
            "updated_at": now,
        }
        for coverage, count in given.items()
        if count is not None
    ]
    async with rt.uow() as uow:
        # a closed quarter's figures never change: its months' counts are frozen too
        await repo.lock_counting(uow.session)
        if await q.closed_quarter(uow.session, domain.quarter_of(first)) is not None:
            raise _quarter_closed(domain.quarter_of(first))
        await repo.put_beneficiaries(uow.session, rows)
        stored = await q.beneficiaries_between(uow.session, ans_registry, first, first)
        await uow.commit()
    log.info(
        "beneficiaries stored",
        extra={
            "operator": ans_registry,
            "month": month,
            "coverages": [r["coverage"] for r in rows],
        },
    )
    counts = {row["coverage"]: row["count"] for row in stored}
    return BeneficiariesOut(
        operator=ans_registry,
        month=month,
        medical=counts.get("medical"),
        dental=counts.get("dental"),
    )


@router.get(
    "/operators/{ans_registry}/beneficiaries",
    response_model=BeneficiaryListOut,
    tags=["beneficiaries"],
)
async def list_beneficiaries(
    ans_registry: AnsPath,
    rt: RuntimeDep,
    principal: Reader,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            pattern=MONTH_PATTERN,
            description="First month (default: 11 months before to).",
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(pattern=MONTH_PATTERN, description="Last month (default: the current month)."),
    ] = None,
) -> BeneficiaryListOut:
    """An operator's stored beneficiary counts by month and coverage (at most 120 months)."""
    ensure_operator(principal, ans_registry)
    last = domain.parse_month(to) if to else domain.month_of(rt.clock.now())
    first = domain.parse_month(from_) if from_ else domain.add_months(last, -11)
    if first > last:
        raise field_problem("query.from", "must not be after to", "range")
    if _months_between(first, last) >= MAX_BENEFICIARY_MONTHS:
        raise field_problem(
            "query.from", f"the range spans more than {MAX_BENEFICIARY_MONTHS} months", "range"
        )
    async with rt.sessions() as session:
        rows = await q.beneficiaries_between(session, ans_registry, first, last)
    return BeneficiaryListOut(
        operator=ans_registry,
        from_month=domain.month_text(first),
        to_month=domain.month_text(last),
        items=[
            BeneficiaryCountOut(
                month=domain.month_text(row["month"]),
                coverage=row["coverage"],
                count=row["count"],
                source=row["source"],
                updated_at=row["updated_at"],
            )
            for row in rows
        ],
    )


@router.post(
    "/beneficiaries/import",
    response_model=ImportOut,
    tags=["beneficiaries"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The regulator's open IGR data file (semicolon-separated, UTF-8), "
            "plain or gzip-compressed.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/gzip": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    responses={
        413: {"description": "The file is larger than 50 MB (200 MB decompressed)."},
        415: {"description": "Not text/csv (UTF-8) nor gzip."},
        422: {"description": "A line of the file cannot be read: the problem names it."},
    },
)
async def import_beneficiaries(request: Request, rt: RuntimeDep, principal: Writer) -> ImportOut:
    """Import the beneficiary counts of the regulator's open IGR data (``text/csv``, gzip
    with ``Content-Encoding: gzip`` or as ``application/gzip``); operators not known yet are
    added. A file holds any operator, so the caller must be allowed for every operator."""
    if not principal.all_operators:
        raise ProblemError(
            403,
            "Forbidden",
            "Importing open data needs a token for every operator.",
            problem_type("operator-forbidden"),
        )
    gzipped = _gzipped(request)
    data = await _read_body(request, MAX_IMPORT_BYTES)
    if gzipped:
        data = _gunzip(data, MAX_IMPORT_TEXT_BYTES)
    text = _decode(data)
    del data
    try:  # parsing a full file takes seconds: keep it off the event loop
        parsed = await run_in_threadpool(parse_open_data, io.StringIO(text, newline=""))
    except OpenDataError as exc:
        raise _malformed(str(exc), exc.line, exc.column) from None
    async with rt.uow() as uow:
        summary = await store_open_data(uow, parsed, rt.clock.now())
        await uow.commit()
    log.info(
        "open data imported",
        extra={
            "rows": summary.rows,
            "counts": summary.counts,
            "operators": summary.operators,
            "months": summary.months,
        },
    )
    return ImportOut(
        rows=summary.rows,
        counts=summary.counts,
        operators=summary.operators,
        months=summary.months,
    )


# ---- IGR individual ------------------------------------------------------------------------


@router.put(
    "/igr/{ans_registry}/individual/{quarter}",
    response_model=IndividualOut,
    tags=["igr"],
    responses={409: {"description": "The quarter is closed: its figures are frozen."}},
)
async def put_individual(
    ans_registry: AnsPath,
    quarter: QuarterPath,
    body: IndividualIn,
    rt: RuntimeDep,
    principal: Writer,
) -> IndividualOut:
    """Store the operator's IGR individual of a quarter (as the ANS technical sheet defines
    it; it counts toward the Meta de Excelência) while the quarter is open."""
    ensure_operator(principal, ans_registry)
    given = {
        coverage: value
        for coverage, value in (("medical", body.medical), ("dental", body.dental))
        if value is not None
    }
    async with rt.uow() as uow:
        # shared closing lock: a quarter closing meanwhile is seen closed here, never half
        await repo.lock_counting(uow.session)
        if await q.closed_quarter(uow.session, quarter) is not None:
            raise _quarter_closed(quarter)
        await q.put_individual(uow.session, ans_registry, quarter, given, rt.clock.now())
        stored = await q.individual_of(uow.session, ans_registry, quarter)
        await uow.commit()
    log.info(
        "igr individual stored",
        extra={"operator": ans_registry, "quarter": quarter, "coverages": sorted(given)},
    )
    return IndividualOut(
        operator=ans_registry,
        quarter=quarter,
        medical=_text(stored.get("medical")),
        dental=_text(stored.get("dental")),
    )


# ---- ranking and export (before /igr/{ans_registry}: fixed paths first) ---------------------


@router.get("/igr/ranking", response_model=RankingOut, tags=["igr"])
async def ranking(
    rt: RuntimeDep,
    principal: Reader,
    quarter: QuarterQuery = None,
    coverage: Annotated[CoverageName, Query(description="medical or dental.")] = "medical",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> RankingOut:
    """The visible operators with ``coverage`` by IGR médio, lowest first (operators without
    one last); a closed quarter's latest revision, else live figures."""
    chosen = _pick_quarter(rt, quarter)
    after = _decode_ranking_cursor(cursor) if cursor is not None else None
    visible = _operators(principal)
    async with rt.sessions() as session:
        closed, results = await _all_figures(session, rt, chosen, visible)
        names = await q.operator_names(session, visible)
    entries: list[tuple[tuple[bool, Decimal, str], dict[str, Any]]] = []
    for ans, figures in results.items():
        entry = next((c for c in figures["coverages"] if c["coverage"] == coverage), None)
        if entry is None:
            continue
        item = {
            "operator": ans,
            "name": names.get(ans, ans),
            "segment": figures["segment"],
            "igr_medio": entry["igr_medio"],
            "igr_medio_max": entry.get("igr_medio_max"),
            "complaints": sum(m["complaints"] for m in entry["months"]),
            "excellence_met": entry.get("excellence_met"),
            "reduction_met": entry.get("reduction_met"),
        }
        entries.append((_ranking_key(entry["igr_medio"], ans), item))
    entries.sort(key=lambda pair: pair[0])
    ranked: list[tuple[tuple[bool, Decimal, str], RankingItemOut]] = []
    position: int | None = None
    previous: str | None = None
    for index, (key, item) in enumerate(entries):
        if item["igr_medio"] is None:
            position = None
        elif item["igr_medio"] != previous or position is None:
            position = index + 1
        previous = item["igr_medio"]
        ranked.append((key, RankingItemOut(position=position, **item)))
    remaining = [pair for pair in ranked if after is None or pair[0] > after]
    page = remaining[:limit]
    next_cursor = None
    if len(remaining) > limit:
        last = page[-1][1]
        next_cursor = encode_cursor((last.igr_medio or "", last.operator))
    return RankingOut(
        quarter=chosen,
        status="closed" if closed else "open",
        coverage=coverage,
        total=len(ranked),
        items=[item for _, item in page],
        next_cursor=next_cursor,
    )


@router.get(
    "/igr/export",
    tags=["igr"],
    response_model=None,
    responses={
        200: {
            "description": "Monthly rows in the regulator's layout: CSV (semicolons, decimal "
            "comma) or JSON (snake_case, decimal point).",
            "model": list[ExportRowOut],
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def export(
    rt: RuntimeDep,
    principal: Reader,
    quarter: QuarterQuery = None,
    format_: Annotated[ExportFormat, Query(alias="format", description="csv or json.")] = "csv",
) -> Response:
    """The visible operators' monthly IGR of a quarter in the regulator's open-data layout
    (months without a beneficiary count, and months not yet begun, are left out)."""
    chosen = _pick_quarter(rt, quarter)
    visible = _operators(principal)
    async with rt.sessions() as session:
        closed, results = await _all_figures(session, rt, chosen, visible)
        names = await q.operator_names(session, visible)
    current = domain.month_of(rt.clock.now())
    rows: list[ExportRowOut] = []
    for ans in sorted(results):
        for entry in results[ans]["coverages"]:
            for month in entry["months"]:
                if month["igr"] is None or month["beneficiaries"] is None:
                    continue
                if not closed and domain.parse_month(month["month"]) > current:
                    continue
                rows.append(
                    ExportRowOut(
                        registro_ans=ans,
                        razao_social=names.get(ans, ans),
                        cobertura=COVERAGE_LABELS[entry["coverage"]],
                        igr=month["igr"],
                        qtd_reclamacoes=month["complaints"],
                        qtd_beneficiarios=month["beneficiaries"],
                        competencia=month["month"].replace("-", ""),
                        competencia_beneficiario=month["beneficiaries_month"].replace("-", ""),
                    )
                )
    if format_ == "json":
        return JSONResponse([row.model_dump() for row in rows])
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(
            (
                row.registro_ans,
                row.razao_social,
                row.cobertura,
                row.igr.replace(".", ","),
                row.qtd_reclamacoes,
                row.qtd_beneficiarios,
                row.competencia,
                row.competencia_beneficiario,
            )
        )
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename=igr-{chosen}.csv"},
    )


# ---- an operator's IGR ---------------------------------------------------------------------


@router.get(
    "/igr/{ans_registry}",
    response_model=IgrOut,
    tags=["igr"],
    responses=problem_responses(404),
)
async def get_igr(
    ans_registry: AnsPath, rt: RuntimeDep, principal: Reader, quarter: QuarterQuery = None
) -> IgrOut:
    """An operator's IGR in a quarter: per coverage the months (complaints, beneficiaries,
    monthly IGR), the IGR médio, the reference value and the goals met. A closed quarter
    shows the figures frozen at closing and its latest revision; the quarter in progress
    also shows a projection. A future quarter is refused."""
    if not principal.can_act_for(ans_registry):
        raise _not_found("operator")
    chosen = _pick_quarter(rt, quarter)
    now = rt.clock.now()
    async with rt.sessions() as session:
        operator = await q.get_operator(session, ans_registry)
        if operator is None:
            raise _not_found("operator")
        closed = await q.closed_quarter(session, chosen)
        if closed is None:
            inputs = (
                await repo.load_inputs(
                    session, chosen, [ans_registry], method=rt.method, now=rt.clock.now()
                )
            )[ans_registry]
        else:
            frozen = await q.frozen_of(session, ans_registry, chosen)
            late = await q.late_total(session, ans_registry, chosen)
            individual = await q.individual_of(session, ans_registry, chosen)
    common = {"operator": ans_registry, "name": operator["name"], "quarter": chosen}
    if closed is None:
        projection = None
        if chosen == _current_quarter(rt):
            projection = ProjectionOut.model_validate(domain.projection(inputs, now))
        return IgrOut(
            **common,
            status="open",
            figures=_figures_out(domain.quarter_figures(inputs, rt.method), inputs.individual),
            computed_at=now,
            revision=None,
            revised_figures=None,
            revised_at=None,
            late_complaints=None,
            closed_at=None,
            projection=projection,
        )
    first = frozen[0] if frozen and frozen[0]["revision"] == 0 else None
    latest = frozen[-1] if frozen else None
    revised = latest if latest is not None and latest["revision"] > 0 else None
    return IgrOut(
        **common,
        status="closed",
        figures=_figures_out(first["figures"], individual) if first else None,
        computed_at=first["computed_at"] if first else closed["closed_at"],
        revision=latest["revision"] if latest else None,
        revised_figures=_figures_out(revised["figures"], individual) if revised else None,
        revised_at=revised["computed_at"] if revised else None,
        late_complaints=late,
        closed_at=closed["closed_at"],
        projection=None,
    )


@router.get(
    "/igr/{ans_registry}/history",
    response_model=HistoryOut,
    tags=["igr"],
    responses=problem_responses(404),
)
async def history(
    ans_registry: AnsPath,
    rt: RuntimeDep,
    principal: Reader,
    from_: Annotated[
        str | None,
        Query(alias="from", pattern=QUARTER_PATTERN, description="Default: 7 quarters before to."),
    ] = None,
    to: QuarterQuery = None,
) -> HistoryOut:
    """An operator's IGR médio per coverage and goals quarter by quarter (at most 20):
    closed quarters as last revised, open ones live."""
    if not principal.can_act_for(ans_registry):
        raise _not_found("operator")
    last = _pick_quarter(rt, to, "query.to")
    first = from_ or _shift_quarter(last, -7)
    if first > last:
        raise field_problem("query.from", "must not be after to", "range")
    span = _quarter_index(last) - _quarter_index(first) + 1
    if span > MAX_HISTORY_QUARTERS:
        raise field_problem(
            "query.from", f"the range spans more than {MAX_HISTORY_QUARTERS} quarters", "range"
        )
    quarters = [_shift_quarter(first, n) for n in range(span)]
    items: list[HistoryItemOut] = []
    async with rt.sessions() as session:
        operator = await q.get_operator(session, ans_registry)
        if operator is None:
            raise _not_found("operator")
        closed = await q.closed_among(session, quarters)
        frozen = await q.latest_of_quarters(
            session, ans_registry, [x for x in quarters if x in closed]
        )
        for quarter in quarters:
            if quarter in closed:
                row = frozen.get(quarter)
                if row is None:
                    items.append(_history_item(quarter, "closed", None, None))
                else:
                    items.append(_history_item(quarter, "closed", row["figures"], row["revision"]))
                continue
            inputs = await repo.load_inputs(
                session, quarter, [ans_registry], method=rt.method, now=rt.clock.now()
            )
            figures = domain.quarter_figures(inputs[ans_registry], rt.method)
            items.append(_history_item(quarter, "open", figures, None))
    return HistoryOut(operator=ans_registry, name=operator["name"], items=items)


# ---- indicators ----------------------------------------------------------------------------


@router.get(
    "/indicators/{ans_registry}",
    response_model=IndicatorsOut,
    tags=["indicators"],
    responses=problem_responses(404),
)
async def get_indicators(
    ans_registry: AnsPath, rt: RuntimeDep, principal: Reader, quarter: QuarterQuery = None
) -> IndicatorsOut:
    """The ouvidoria's indicators of an operator in a quarter: deadlines per kind (met on
    time or late, breached, mean time to answer), answers by outcome, re-analyses, and
    complaints by source and classification."""
    ensure_operator(principal, ans_registry)
    chosen = _pick_quarter(rt, quarter)
    async with rt.sessions() as session:
        if await q.get_operator(session, ans_registry) is None:
            raise _not_found("operator")
        counters = await q.indicators_of(session, ans_registry, chosen)
    return _indicators_out(ans_registry, chosen, counters)


# ---- closing -------------------------------------------------------------------------------


@router.post(
    "/igr/quarters/{quarter}/close",
    response_model=CloseOut,
    tags=["igr"],
    responses={409: {"description": "The quarter has not ended yet, or is already closed."}},
)
async def close_quarter(quarter: QuarterPath, rt: RuntimeDep, principal: Admin) -> CloseOut:
    """Close a quarter that has ended, for every operator: freeze its figures and publish
    ``igr.computed``; later complaints become revisions. It changes every operator's data,
    so it needs a token for every operator."""
    if not principal.all_operators:
        raise ProblemError(
            403,
            "Forbidden",
            "Closing a quarter needs a token for every operator.",
            problem_type("operator-forbidden"),
        )
    today = rt.clock.now().astimezone(domain.BRASILIA).date()
    if domain.quarter_end(quarter) >= today:
        raise ProblemError(
            409,
            "Quarter not ended",
            f"{quarter} has not ended yet (Brasília time)",
            problem_type("quarter-not-ended"),
        )
    count = await closer.close_quarter(rt, quarter)
    if count is None:
        raise _quarter_closed(quarter)
    log.info(
        "quarter closed on request",
        extra={"quarter": quarter, "operators": count, "subject": principal.subject},
    )
    return CloseOut(quarter=quarter, operators=count)


# ---- helpers -------------------------------------------------------------------------------


def _operators(principal: Principal) -> list[str] | None:
    """The operators a list is restricted to (None: every operator)."""
    return None if principal.all_operators else sorted(principal.operators)


def _not_found(what: str) -> ProblemError:
    """The same answer for unknown resources and other tenants' ones."""
    return ProblemError(404, "Not Found", f"no such {what}")


def _quarter_closed(quarter: str) -> ProblemError:
    return ProblemError(
        409,
        "Quarter closed",
        f"{quarter} is closed: its figures are frozen",
        problem_type("quarter-closed"),
    )


def _current_quarter(rt: Runtime) -> str:
    """The quarter in progress (Brasília time)."""
    return domain.quarter_of(domain.month_of(rt.clock.now()))


def _pick_quarter(rt: Runtime, quarter: str | None, field: str = "query.quarter") -> str:
    """The quarter asked for (default: the current one); a future quarter is a 422."""
    current = _current_quarter(rt)
    chosen = quarter or current
    if chosen > current:  # same-width text: orders like the quarters
        raise field_problem(field, "is a future quarter", "future_quarter")
    return chosen


def _quarter_index(quarter: str) -> int:
    year, number = domain.parse_quarter(quarter)
    return year * 4 + number - 1


def _shift_quarter(quarter: str, count: int) -> str:
    """The quarter ``count`` quarters after (or before) ``quarter``."""
    return domain.quarter_of(domain.add_months(domain.quarter_months(quarter)[0], 3 * count))


def _months_between(first: date, last: date) -> int:
    return (last.year - first.year) * 12 + last.month - first.month


async def _all_figures(
    session: AsyncSession, rt: Runtime, quarter: str, visible: Sequence[str] | None
) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Whether ``quarter`` is closed, and every visible operator's figures: the latest
    revision when closed, else computed live from one bulk load."""
    if await q.closed_quarter(session, quarter) is not None:
        return True, await repo.latest_results(session, quarter, visible)
    inputs = await repo.load_inputs(session, quarter, visible, method=rt.method, now=rt.clock.now())
    return False, {ans: domain.quarter_figures(data, rt.method) for ans, data in inputs.items()}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _figures_out(figures: Mapping[str, Any], individual: Mapping[str, Decimal]) -> FiguresOut:
    """Figures as ``domain.quarter_figures`` makes them (decimal strings kept), with each
    coverage's complaints, mean beneficiaries and the IGR individual supplied."""
    coverages = []
    for entry in figures["coverages"]:
        counts = [m["beneficiaries"] for m in entry["months"] if m["beneficiaries"] is not None]
        average = Decimal(sum(counts)) / len(counts) if counts else None
        coverages.append(
            {
                **entry,
                "complaints": sum(m["complaints"] for m in entry["months"]),
                "beneficiaries_average": _text(
                    average.quantize(CENT, rounding=ROUND_HALF_UP) if average is not None else None
                ),
                "igr_individual": _text(individual.get(entry["coverage"])),
            }
        )
    return FiguresOut.model_validate({**figures, "coverages": coverages})


def _history_item(
    quarter: str, status: str, figures: Mapping[str, Any] | None, revision: int | None
) -> HistoryItemOut:
    if figures is None:
        return HistoryItemOut(
            quarter=quarter,
            status="closed",
            revision=None,
            coverages=[],
            excellence_met=None,
            reduction_met=None,
            discount_pct=None,
        )
    return HistoryItemOut.model_validate(
        {
            **figures,
            "quarter": quarter,
            "status": status,
            "revision": revision,
            "coverages": [
                HistoryCoverageOut.model_validate(entry) for entry in figures["coverages"]
            ],
        }
    )


def _ranking_key(igr_medio: str | None, ans: str) -> tuple[bool, Decimal, str]:
    """Lowest IGR médio first, operators without one last, then by registration."""
    return (igr_medio is None, Decimal(igr_medio or 0), ans)


def _decode_ranking_cursor(cursor: str) -> tuple[bool, Decimal, str]:
    igr_medio, ans = decode_cursor(cursor, 2)
    if not (_IGR_CURSOR.fullmatch(igr_medio) and re.fullmatch(ANS_PATTERN, ans)):
        raise bad_cursor()
    return _ranking_key(igr_medio or None, ans)


def _ratio(numerator: float, denominator: float, places: int) -> float | None:
    """``numerator / denominator`` rounded half-up to ``places`` decimals; None over 0."""
    if not denominator:
        return None
    value = Decimal(numerator) / Decimal(denominator)
    return float(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _by_suffix(
    counters: Mapping[str, tuple[int, float]], prefix: str, known: Sequence[str]
) -> dict[str, int]:
    """The counts of the metrics ``prefix<name>``: every known name (0 if absent) and any
    other name found."""
    counts = dict.fromkeys(known, 0)
    for metric, (count, _) in counters.items():
        if metric.startswith(prefix):
            counts[metric[len(prefix) :]] = count
    return counts


def _indicators_out(
    ans: str, quarter: str, counters: Mapping[str, tuple[int, float]]
) -> IndicatorsOut:
    """The indicators from the counters the consumers keep (see consumers.py)."""

    def count(metric: str) -> int:
        return counters.get(metric, (0, 0.0))[0]

    def total(metric: str) -> float:
        return counters.get(metric, (0, 0.0))[1]

    deadlines = []
    for kind in get_args(DeadlineKind):
        on_time, late = f"deadlines.met_on_time.{kind}", f"deadlines.met_late.{kind}"
        met_on_time, met_late = count(on_time), count(late)
        breached = count(f"deadlines.breached.{kind}")
        days = f"deadlines.business_days.{kind}"
        deadlines.append(
            DeadlineIndicatorsOut(
                kind=kind,
                scheduled=count(f"deadlines.scheduled.{kind}"),
                met_on_time=met_on_time,
                met_late=met_late,
                breached=breached,
                on_time_share=_ratio(met_on_time, met_on_time + met_late + breached, 4),
                average_hours=_ratio(
                    total(on_time) + total(late), (met_on_time + met_late) * 3600, 2
                ),
                average_business_days=_ratio(total(days), count(days), 2),
            )
        )
    outcomes = get_args(Outcome)
    answers = _by_suffix(counters, "answers.outcome.", outcomes)
    requested = count("reanalysis.requested")
    return IndicatorsOut(
        operator=ans,
        quarter=quarter,
        deadlines=deadlines,
        answers=answers,
        reanalysis=ReanalysisIndicatorsOut(
            requested=requested,
            rate=_ratio(requested, sum(answers[o] for o in REANALYSIS_OUTCOMES), 4),
            outcomes=_by_suffix(counters, "reanalysis.outcome.", outcomes),
        ),
        complaints=ComplaintIndicatorsOut(
            by_source=_by_suffix(counters, "complaints.source.", get_args(ComplaintSource)),
            by_classification=_by_suffix(counters, "complaints.classification.", ()),
        ),
    )


# ---- the import's body ---------------------------------------------------------------------


def _unsupported(detail: str) -> ProblemError:
    return ProblemError(
        415, "Unsupported Media Type", detail, problem_type("unsupported-media-type")
    )


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        413,
        "Content Too Large",
        f"the file exceeds {limit // (1024 * 1024)} MB",
        problem_type("too-large"),
    )


def _malformed(detail: str, line: int | None, column: str | None) -> ProblemError:
    """A 422 naming the line (1 = the header) and column that cannot be read."""
    return ProblemError(
        422,
        "Unreadable open-data file",
        detail,
        problem_type("open-data"),
        line=line,
        column=column,
        errors=[{"field": "body", "message": detail, "type": "open_data"}],
    )


def _gzipped(request: Request) -> bool:
    """Whether the body is gzip-compressed; a 415 unless it is UTF-8 CSV, plain or gzip."""
    media, _, parameters = request.headers.get("content-type", "").partition(";")
    media = media.strip().lower()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise _unsupported("Content-Encoding must be gzip or absent")
    if media in GZIP_TYPES:
        return True
    if media not in CSV_TYPES:
        raise _unsupported("send text/csv (UTF-8), or it gzip-compressed")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise _unsupported("the CSV must be UTF-8")
    return encoding == "gzip"


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body; a 413 beyond ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip (one member or more); a 413 beyond ``limit`` bytes, a 422 if broken."""
    text = bytearray()
    while data:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            text += inflater.decompress(data, limit + 1 - len(text))
        except zlib.error:
            raise _malformed("the body is not valid gzip", None, None) from None
        if len(text) > limit or inflater.unconsumed_tail:
            raise _too_large(limit)
        if not inflater.eof:
            raise _malformed("the gzip body is truncated", None, None)
        data = inflater.unused_data
    return bytes(text)


def _decode(data: bytes) -> str:
    """UTF-8 text (a byte-order mark is dropped); a 422 naming the line otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _malformed(f"line {line}: not valid UTF-8", line, None) from None
