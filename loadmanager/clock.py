"""Time and identity sources that the library injects instead of calling directly.

Every timestamp loadmanager writes comes from a :data:`Clock` and is UTC, tz-aware
and truncated to milliseconds, because BSON and most JSON consumers keep no finer
precision and a value must survive a round trip through any backend unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone

__all__ = ["Clock", "IdFactory", "new_id", "to_millis", "truncate_to_millis", "utc_now"]

Clock = Callable[[], datetime]
"""A function returning the current time as a tz-aware UTC datetime."""

IdFactory = Callable[[], str]
"""A function returning a fresh, unique object id."""


def truncate_to_millis(moment: datetime) -> datetime:
    """Drop sub-millisecond precision and normalise to UTC."""
    moment = moment.astimezone(timezone.utc)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def utc_now() -> datetime:
    """The default :data:`Clock`: the system time, UTC, millisecond precision."""
    return truncate_to_millis(datetime.now(timezone.utc))


def to_millis(moment: datetime) -> int:
    """Milliseconds since the Unix epoch, the numeric form the backends index on."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def new_id() -> str:
    """The default :data:`IdFactory`: 32 lowercase hex digits from a random UUID."""
    return uuid.uuid4().hex
