"""Injectable clock: services never call ``datetime.now()`` directly, so tests can move time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

# How often a clock re-reads its offset file: a moved clock is seen within this time.
OFFSET_FILE_CHECK_SECONDS = 0.2


class Clock(Protocol):
    """Source of the current instant (always timezone-aware, UTC)."""

    def now(self) -> datetime:
        """Return the current instant in UTC."""
        ...

    def monotonic(self) -> float:
        """Return a monotonic reading in seconds, for measuring durations."""
        ...


class SystemClock:
    """The real wall clock, optionally shifted by a fixed offset (end-to-end runs move time).

    With ``offset_file``, the number of seconds in that file is added too, and re-read when
    the file changes: the end-to-end suite moves every running service's clock forward at
    once (days, years) by rewriting one file. A missing or unreadable file adds nothing new:
    the last offset read stays. Production sets neither.
    """

    def __init__(self, offset: timedelta = timedelta(0), offset_file: Path | None = None) -> None:
        self.offset = offset
        self.offset_file = offset_file
        self._file_offset = timedelta(0)
        self._file_stamp: tuple[int, int] | None = None
        self._next_check = 0.0

    def now(self) -> datetime:
        """Return the wall-clock instant in UTC plus the configured offsets."""
        if self.offset_file is not None:
            self._refresh_file_offset()
        return datetime.now(UTC) + self.offset + self._file_offset

    def _refresh_file_offset(self) -> None:
        """Re-read the offset file when it changed, at most every few hundred milliseconds."""
        mono = time.monotonic()
        if mono < self._next_check or self.offset_file is None:
            return
        self._next_check = mono + OFFSET_FILE_CHECK_SECONDS
        try:
            stat = self.offset_file.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._file_stamp:
                return
            seconds = float(self.offset_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return
        self._file_stamp = stamp
        self._file_offset = timedelta(seconds=seconds)

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
