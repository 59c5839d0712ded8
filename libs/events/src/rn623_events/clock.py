"""Injectable clock: services never call ``datetime.now()`` directly, so tests can move time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of the current instant (always timezone-aware, UTC)."""

    def now(self) -> datetime:
        """Return the current instant in UTC."""
        ...

    def monotonic(self) -> float:
        """Return a monotonic reading in seconds, for measuring durations."""
        ...


class SystemClock:
    """The real wall clock, optionally shifted by a fixed offset (end-to-end runs move time)."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        """Return the wall-clock instant in UTC plus the configured offset."""
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        """Return the clock's current instant."""
        return self._now

    def monotonic(self) -> float:
        """Return seconds advanced since creation."""
        return self._mono

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta``."""
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        self._now += delta
        self._mono += delta.total_seconds()

    def set(self, instant: datetime) -> None:
        """Jump to ``instant`` (must not be earlier than now)."""
        self.advance(instant.astimezone(UTC) - self._now)
