"""Time and identity sources that the library injects instead of calling directly.

Every timestamp loadmanager writes comes from a :class:`Clock` and is UTC, tz-aware
and truncated to milliseconds, because BSON and most JSON consumers keep no finer
precision and a value must survive a round trip through any backend unchanged.

One clock object carries the three things time means to the library: the wall
time written into records (``now``), the steady time that measures waits and
timeouts (``monotonic``), and pausing (``sleep``). Passing one object down from
``Orchestrator(clock=...)`` is what lets a test drive a whole run's life on a
:class:`~loadmanager.testing.ManualClock` without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

__all__ = [
    "Clock",
    "IdFactory",
    "SystemClock",
    "as_clock",
    "from_millis",
    "new_id",
    "to_millis",
    "truncate_to_millis",
    "utc_now",
]


@runtime_checkable
class Clock(Protocol):
    """The time source injected everywhere time is read or waited for."""

    def now(self) -> datetime:
        """The current time: tz-aware UTC, millisecond precision."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for measuring waits."""
        ...

    def sleep(self, seconds: float) -> None:
        """Pause the calling thread."""
        ...


IdFactory = Callable[[], str]
"""A function returning a fresh, unique object id."""


def truncate_to_millis(moment: datetime) -> datetime:
    """Drop sub-millisecond precision and normalise to UTC."""
    moment = moment.astimezone(timezone.utc)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def utc_now() -> datetime:
    """The system time, UTC, millisecond precision."""
    return truncate_to_millis(datetime.now(timezone.utc))


class SystemClock:
    """The default :class:`Clock`: the system's wall and monotonic clocks."""

    def now(self) -> datetime:
        """See :meth:`Clock.now`."""
        return utc_now()

    def monotonic(self) -> float:
        """See :meth:`Clock.monotonic`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """See :meth:`Clock.sleep`."""
        time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class _WallOnly(SystemClock):
    # A bare ``() -> datetime`` callable (the form older versions took) decides
    # the recorded time; waiting stays on the system's clocks.
    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now()


def as_clock(clock: Clock | Callable[[], datetime] | None) -> Clock:
    """A :class:`Clock` from a clock, a bare ``now`` function, or ``None`` (the system's)."""
    if clock is None:
        return SystemClock()
    if isinstance(clock, Clock):
        return clock
    if callable(clock):
        return _WallOnly(clock)
    raise TypeError(f"clock must be a Clock or a function returning a datetime, not {clock!r}")


def to_millis(moment: datetime) -> int:
    """Milliseconds since the Unix epoch, the numeric form the backends index on."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_millis(millis: int) -> datetime:
    """The UTC time ``millis`` milliseconds after the Unix epoch."""
    return _EPOCH + timedelta(milliseconds=millis)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def new_id() -> str:
    """The default :data:`IdFactory`: 32 lowercase hex digits from a random UUID."""
    import uuid  # on first use: it and its platform module were 4 ms of import loadmanager

    return uuid.uuid4().hex
