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
from rn623_rulebook import NoDeadlineRuleError, deadline_for

log = logging.getLogger(__name__)

RECOMPUTED = Counter("deadlines_recomputed_total", "Open deadlines recomputed", ["operator"])


async def recompute_open(
    rt: Runtime, uow: UnitOfWork, operator: Mapping[Any, Any], *, reason: str
) -> int:
    """Recompute an operator's open deadlines; return how many moved."""
    calendar = calendar_of(operator)
    now = rt.clock.now()
    moved = 0
    for row in await repo.lock_open_deadlines(uow.session, operator["ans_registry"]):
        if row["demand_type"] is None:
            continue  # records access: 72 clock hours, no calendar involved
        try:
            deadline = deadline_for(
                row["demand_type"], row["category"], row["started_at"], calendar
            )
        except NoDeadlineRuleError:
            log.warning("no deadline rule on recompute", extra={"rule_id": row["rule_id"]})
            continue
        if deadline.due_at == row["due_at"]:
            continue
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
        moved += 1
    uow.after_commit(lambda: RECOMPUTED.labels(operator["ans_registry"]).inc(moved))
    return moved
