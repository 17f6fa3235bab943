"""Retry policies that cost nothing until something fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")

__all__ = ["with_retries"]


def with_retries(fn: Callable[[], T], policy: Callable[[], tenacity.Retrying]) -> T:
    """``fn()``, retried by the policy ``policy()`` builds, which is built only on a failure.

    Building a ``tenacity.Retrying`` and entering it costs 20 to 30 µs: more
    than a poll's SQLite write or a fifth of its HTTP GET, and the Monitor
    makes hundreds of each a second that almost never fail. The first failure
    is handed to the policy as its first attempt, so the policy alone decides
    what is retried, how often and after what wait; only its time budget
    counts from that failure instead of from the first try.
    """
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the policy decides what is retried
        first: list[Exception] = [exc]

    def again() -> T:
        if first:
            raise first.pop()
        return fn()

    return policy()(again)
