"""A clock that only moves when told to."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from ..clock import truncate_to_millis

__all__ = ["ManualClock"]


class ManualClock:
    """A :class:`~loadmanager.clock.Clock` for tests: time moves only when told.

    ``sleep(s)`` advances the time by ``s`` instead of waiting, so code that
    polls and waits runs through whole scenarios instantly. Calling the clock
    itself (``clock()``) is the same as ``clock.now()``.

    Args:
        start: The first time it shows (UTC); 2025-01-01 by default.
        step: Added after each reading of ``now``, so consecutive readings
            differ; zero keeps the time still until :meth:`advance` is called.
    """

    def __init__(
        self,
        start: datetime = datetime(2025, 1, 1, tzinfo=timezone.utc),
        step: timedelta = timedelta(0),
    ) -> None:
        self._start = truncate_to_millis(start)
        self._now = self._start
        self._step = step
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> datetime:
        """The current manual time, then moved on by ``step``."""
        with self._lock:
            now = self._now
            self._now = truncate_to_millis(self._now + self._step)
            return now

    __call__ = now

    def monotonic(self) -> float:
        """Seconds since the clock's start (does not move it)."""
        with self._lock:
            return (self._now - self._start).total_seconds()

    def sleep(self, seconds: float) -> None:
        """Record the pause and advance the time by it, without waiting."""
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float = 0.0, *, milliseconds: int = 0) -> datetime:
        """Move the time forward and return the new time."""
        with self._lock:
            self._now = truncate_to_millis(
                self._now + timedelta(seconds=seconds, milliseconds=milliseconds)
            )
            return self._now
