"""Recomputing open deadlines when an operator's calendar or the rule set changes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter

from deadline_svc import domain
from deadline_svc import repository as repo
from deadline_svc.domain import deadline_fields
from deadline_svc.runtime import Runtime, calendar_of
from rn623_events.contracts.deadlines import DeadlineRecomputed
from rn623_events.db import UnitOfWork
from rn623_rulebook import BusinessCalendar, NoDeadlineRuleError, deadline_for

log = logging.getLogger(__name__)

RECOMPUTED = Counter("deadlines_recomputed_total", "Open deadlines recomputed", ["operator"])


async def recompute_open(
    rt: Runtime, uow: UnitOfWork, operator: Mapping[Any, Any], *, reason: str
) -> int:
    """Recompute an operator's open deadlines; return how many moved."""
    calendar = calendar_of(operator)
    moved = 0
    for row in await repo.lock_open_deadlines(uow.session, operator["ans_registry"]):
        moved += await recompute(rt, uow, row, calendar, reason=reason)
    return moved


async def recompute(
    rt: Runtime,
    uow: UnitOfWork,
    row: Mapping[Any, Any],
    calendar: BusinessCalendar,
    *,
    reason: str,
) -> bool:
    """Recompute one open (locked) deadline with ``calendar`` and the rules in force;
    True if its due instant moved (``deadline.recomputed`` is then published)."""
    if row["demand_type"] is None:
        return False  # records access: 72 clock hours, no calendar involved
    try:
        deadline = deadline_for(row["demand_type"], row["category"], row["started_at"], calendar)
    except NoDeadlineRuleError:
        log.warning("no deadline rule on recompute", extra={"rule_id": row["rule_id"]})
        return False
    if deadline.due_at == row["due_at"]:
        return False
    now = rt.clock.now()
    instants = domain.checkpoint_instants(
        rt.checkpoints, row["started_at"], deadline.due_at, calendar
    )
    await repo.update_deadline(
        uow.session,
        row["id"],
        due_at=deadline.due_at,
        rule_id=deadline.rule_id,
        legal_basis=deadline.legal_basis,
        ruleset_id=deadline.ruleset_id,
        immediate=deadline.immediate,
        recomputed_at=now,
        next_check_at=domain.next_check(domain.OPEN, deadline.due_at, instants, row["warned"]),
    )
    uow.publish(
        DeadlineRecomputed(
            **{**deadline_fields(row), "due_at": deadline.due_at},
            previous_due_at=row["due_at"],
            reason=reason,
            recomputed_at=now,
        )
    )
    uow.after_commit(RECOMPUTED.labels(row["ans_registry"]).inc)
    return True
