"""What notification-svc's components share: the database, the clock, the providers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification_svc.models import operators, profiles
from notification_svc.policy import Policy, build_policy
from notification_svc.providers.base import Provider
from notification_svc.settings import NotificationSettings
from rn623_events.clock import Clock
from rn623_events.db import UnitOfWork


@dataclass(frozen=True)
class Runtime:
    """The database sessions, the clock, the settings and the configured providers."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    settings: NotificationSettings
    providers: Mapping[str, Provider] = field(default_factory=dict)
    # set when this process queued deliveries: its dispatcher ticks at once, not at its
    # next poll (a receipt reaches the provider ~a poll interval sooner)
    deliveries_queued: asyncio.Event = field(default_factory=asyncio.Event, compare=False)

    @property
    def source(self) -> str:
        """The CloudEvents source of what this service emits."""
        return self.settings.service_name

    def wake_dispatcher(self) -> None:
        """Tell this process's dispatcher that deliveries are due now."""
        self.deliveries_queued.set()

    def uow(self) -> UnitOfWork:
        """A new unit of work."""
        return UnitOfWork(self.sessions, source=self.source, clock=self.clock)

    async def policy(self, uow: UnitOfWork, ans_registry: str) -> Policy:
        """The sending policy of an operator (its profile over the defaults)."""
        profile = await uow.session.scalar(
            sa.select(profiles.c.profile).where(profiles.c.ans_registry == ans_registry)
        )
        return build_policy(self.settings, profile, self.providers)

    async def operator(self, uow: UnitOfWork, ans_registry: str) -> tuple[str, Policy] | None:
        """The operator's name and sending policy, in one round trip; None before its
        ``operator.upserted`` arrived."""
        row = (await uow.session.execute(OPERATOR, {"ans": ans_registry})).first()
        return self.operator_from(row)

    def operator_from(self, row: Any) -> tuple[str, Policy] | None:
        """The operator's name and sending policy from a row of ``OPERATOR`` (None: no row)."""
        if row is None:
            return None
        return row.name, build_policy(self.settings, row.profile, self.providers)


# An operator's name and profile (bound parameter ``ans``).
OPERATOR = (
    sa.select(operators.c.name, profiles.c.profile)
    .select_from(operators.outerjoin(profiles, profiles.c.ans_registry == operators.c.ans_registry))
    .where(operators.c.ans_registry == sa.bindparam("ans"))
)
