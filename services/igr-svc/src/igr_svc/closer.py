"""Closing quarters: freeze every operator's figures and publish ``igr.computed``.

A quarter closes ``close_after_days`` after it ends (or when an admin asks). Closing
takes the counting lock exclusively, so every complaint is either in the frozen figures
or counted as late; late complaints make a new revision of the quarter (revision 1, 2…),
published the same way. The frozen figures of a revision never change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Histogram

from igr_svc import domain
from igr_svc import repository as repo
from igr_svc.runtime import Runtime
from rn623_events.contracts.igr import CoverageFigures, IgrComputed
from rn623_events.db import UnitOfWork

log = logging.getLogger(__name__)

QUARTERS_CLOSED = Counter("igr_quarters_closed_total", "Quarters closed for every operator")
REVISIONS = Counter("igr_revisions_total", "Quarter revisions published for late complaints")
CLOSE_SECONDS = Histogram("igr_quarter_close_seconds", "Time to close a quarter")


def igr_event(ans: str, revision: int, figures: Mapping[str, Any], at: datetime) -> IgrComputed:
    """The ``igr.computed`` event of frozen figures."""
    return IgrComputed(
        ans_registry=ans,
        quarter=figures["quarter"],
        revision=revision,
        segment=figures["segment"],
        method=figures["method"],
        coverages=tuple(
            CoverageFigures.model_validate(
                {k: c[k] for k in CoverageFigures.model_fields if k in c}
            )
            for c in figures["coverages"]
        ),
        excellence_met=figures["excellence_met"],
        reduction_met=figures["reduction_met"],
        discount_pct=figures["discount_pct"],
        rule_ids=tuple(figures["rule_ids"]),
        computed_at=at,
    )


async def close_quarter(rt: Runtime, quarter: str) -> int | None:
    """Freeze ``quarter`` for every operator; the number of operators, None if already closed."""
    with CLOSE_SECONDS.time():
        async with rt.uow() as uow:
            await repo.lock_counting(uow.session, closing=True)
            now = rt.clock.now()
            if not await repo.mark_closed(uow.session, quarter, now, rt.method):
                return None
            inputs = await repo.load_inputs(uow.session, quarter, method=rt.method)
            await _freeze(uow, {ans: (data, 0) for ans, data in inputs.items()}, rt, now)
            await uow.commit()
    QUARTERS_CLOSED.inc()
    log.info("quarter closed", extra={"quarter": quarter, "operators": len(inputs)})
    return len(inputs)


async def publish_revisions(rt: Runtime) -> int:
    """Publish a revision for each closed quarter that received late complaints."""
    async with rt.uow() as uow:
        pending = await repo.pending_revisions(uow.session)
        if not pending:
            return 0
        now = rt.clock.now()
        revisions: dict[str, dict[str, int]] = {}  # quarter → operator → revision
        for ans, quarter, revision in pending:
            revisions.setdefault(quarter, {})[ans] = revision
        for quarter, of_operator in revisions.items():
            inputs = await repo.load_inputs(
                uow.session, quarter, list(of_operator), method=rt.method
            )
            await _freeze(uow, {ans: (inputs[ans], of_operator[ans]) for ans in inputs}, rt, now)
        await repo.clear_pending(uow.session, [(ans, quarter) for ans, quarter, _ in pending])
        await uow.commit()
    REVISIONS.inc(len(pending))
    return len(pending)


async def _freeze(
    uow: UnitOfWork,
    inputs: Mapping[str, tuple[domain.QuarterInput, int]],
    rt: Runtime,
    now: datetime,
) -> None:
    """Store and publish the figures of each operator at its revision."""
    rows = []
    for ans, (data, revision) in inputs.items():
        figures = domain.quarter_figures(data, rt.method)
        rows.append(
            {
                "ans_registry": ans,
                "quarter": data.quarter,
                "revision": revision,
                "computed_at": now,
                "figures": figures,
            }
        )
        uow.publish(igr_event(ans, revision, figures, now))
    await repo.insert_results(uow.session, rows)


def due_quarters(now: datetime, closed: set[str], close_after_days: int, first: str) -> list[str]:
    """Quarters from ``first`` that ended at least ``close_after_days`` ago and are open."""
    due = []
    quarter = first
    today = now.astimezone(domain.BRASILIA).date()
    while domain.quarter_end(quarter) + timedelta(days=close_after_days) < today:
        if quarter not in closed:
            due.append(quarter)
        quarter = domain.next_quarter(quarter)
    return due


class QuarterCloser:
    """The worker's periodic job: close due quarters, then publish revisions."""

    def __init__(self, rt: Runtime, *, close_after_days: int, first_quarter: str) -> None:
        self.rt = rt
        self.close_after_days = close_after_days
        self.first_quarter = first_quarter

    async def tick(self) -> None:
        """Close every due quarter and publish pending revisions."""
        async with self.rt.sessions() as session:
            closed = await repo.closed(session)
        for quarter in due_quarters(
            self.rt.clock.now(), closed, self.close_after_days, self.first_quarter
        ):
            await close_quarter(self.rt, quarter)
        await publish_revisions(self.rt)
