"""What igr-svc's components share: the database, the clock, the quarterly method."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from igr_svc.settings import IgrSettings
from rn623_events.clock import Clock
from rn623_events.contracts.igr import QuarterlyMethod
from rn623_events.db import UnitOfWork


@dataclass(frozen=True)
class Runtime:
    """The database sessions, the clock, the event source and how quarters are formed."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    source: str
    method: QuarterlyMethod = "mean_of_monthly"

    def uow(self) -> UnitOfWork:
        """A new unit of work."""
        return UnitOfWork(self.sessions, source=self.source, clock=self.clock)

    @classmethod
    def build(
        cls, settings: IgrSettings, sessions: async_sessionmaker[AsyncSession], clock: Clock
    ) -> Runtime:
        """The runtime of the API or the worker, from the settings."""
        return cls(
            sessions=sessions,
            clock=clock,
            source=settings.service_name,
            method=settings.quarterly_method,
        )
