"""What deadline-svc's components share: the database, the clock, the checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rn623_events.clock import Clock
from rn623_events.db import UnitOfWork
from rn623_rulebook import BusinessCalendar, calendar_for, operator_calendar_spec


@dataclass(frozen=True)
class Runtime:
    """The database sessions, the clock, the event source and the warning checkpoints."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    source: str
    checkpoints: tuple[str, ...]

    def uow(self) -> UnitOfWork:
        """A new unit of work."""
        return UnitOfWork(self.sessions, source=self.source, clock=self.clock)


def calendar_of(operator: Mapping[Any, Any]) -> BusinessCalendar:
    """The business-day calendar of an operator (from its local copy)."""
    return calendar_for(operator_calendar_spec(operator))
