"""What retention-svc's components share: the database, the clock, the record owners."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from retention_svc.settings import RetentionSettings
from rn623_events.clock import Clock
from rn623_events.db import UnitOfWork


@dataclass(frozen=True)
class Runtime:
    """The database sessions, the clock, the event source, the owners and the pseudonym key."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    source: str
    owners: Mapping[str, tuple[str, ...]]
    beneficiary_secret: bytes

    def uow(self) -> UnitOfWork:
        """A new unit of work."""
        return UnitOfWork(self.sessions, source=self.source, clock=self.clock)

    @classmethod
    def build(
        cls,
        settings: RetentionSettings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
    ) -> Runtime:
        """The runtime of the API or the worker, from the settings."""
        return cls(
            sessions=sessions,
            clock=clock,
            source=settings.service_name,
            owners={str(cls): owners for cls, owners in settings.record_owners.items()},
            beneficiary_secret=settings.beneficiary_key_secret.get_secret_value().encode(),
        )
