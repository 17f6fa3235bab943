"""A clock that only moves when told to."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from ..clock import truncate_to_millis

__all__ = ["ManualClock"]


class ManualClock:
    """A :data:`~loadmanager.clock.Clock` for tests.

    Args:
        start: The first time it shows (UTC); 2025-01-01 by default.
        step: Added after each reading, so consecutive readings differ; zero
            keeps the time still until :meth:`advance` is called.
    """

    def __init__(
        self,
        start: datetime = datetime(2025, 1, 1, tzinfo=timezone.utc),
        step: timedelta = timedelta(0),
    ) -> None:
        self._now = truncate_to_millis(start)
        self._step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = self._now
            self._now = truncate_to_millis(self._now + self._step)
            return now

    def advance(self, seconds: float = 0.0, *, milliseconds: int = 0) -> datetime:
        """Move the time forward and return the new time."""
        with self._lock:
            self._now = truncate_to_millis(
                self._now + timedelta(seconds=seconds, milliseconds=milliseconds)
            )
            return self._now
