"""Response-time histograms in Locust's own buckets, and exact percentiles from them.

Locust rounds each response time into a bucket (exact below 100 ms, then two
significant digits: 147 ms counts as 150) and keeps, per endpoint, how many
requests fell in each. A percentile is read off that histogram. So the
percentiles of any window are those of the difference of two cumulative
histograms, and the percentiles of several runs are those of their sum: both
exact to Locust's rounding. An average of percentiles is neither.

A histogram here is a mapping ``{bucket_ms: count}``; functions return new
mappings and never change their arguments.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from itertools import compress, repeat
from operator import sub

from .metrics import Percentiles

__all__ = [
    "PERCENTILES",
    "TrailingHistogram",
    "accumulate",
    "as_percentiles",
    "diff",
    "merge",
    "percentile",
    "percentiles",
    "total",
]

Histogram = Mapping[int, int]

PERCENTILES = (0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0)
"""The percentiles Locust's final CSV reports."""


def total(histogram: Histogram) -> int:
    """How many requests the histogram counts."""
    return sum(histogram.values())


def merge(histograms: Iterable[Histogram]) -> dict[int, int]:
    """The sum of several histograms (several runs, or several windows)."""
    merged: dict[int, int] = {}
    for histogram in histograms:
        for bucket, count in histogram.items():
            if count:
                merged[bucket] = merged.get(bucket, 0) + count
    return merged


def accumulate(into: dict[int, int], histogram: Histogram, sign: int = 1) -> None:
    """Add ``histogram`` to ``into`` in place, or take it away with ``sign=-1``.

    Buckets that come to zero are dropped, so ``into`` is what :func:`merge`
    of what was added and not taken away returns: a window sliding over a
    series of changes costs each change twice, not once per window.
    """
    for bucket, count in histogram.items():
        left = into.get(bucket, 0) + sign * count
        if left:
            into[bucket] = left
        else:
            into.pop(bucket, None)


class TrailingHistogram:
    """The histogram of the last ``span`` of a series of changes, as they arrive in time order.

    Each change enters once and leaves once, so a window slid over n changes
    costs n moves, not n merges of a window each (what made judging a long
    run's windows quadratic).
    """

    def __init__(self, span: timedelta) -> None:
        self._span = span
        self._changes: deque[tuple[datetime, Histogram]] = deque()
        self.histogram: dict[int, int] = {}
        """The window's histogram (kept up to date in place, not copied)."""

    def push(self, at: datetime, change: Histogram) -> dict[int, int]:
        """Add the change stamped ``at``; those ``span`` or more before it leave.

        Returns :attr:`histogram`.
        """
        self._changes.append((at, change))
        accumulate(self.histogram, change)
        while self._changes and at - self._changes[0][0] >= self._span:
            accumulate(self.histogram, self._changes.popleft()[1], -1)
        return self.histogram


def diff(later: Histogram, earlier: Histogram) -> dict[int, int]:
    """What ``later`` counted since ``earlier``: the requests of the window between.

    Only buckets that changed are kept. A bucket that went down (the master's
    statistics were reset) counts from zero again.
    """
    # Bucket by bucket in C (a poll diffs hundreds of buckets an endpoint);
    # the loop below only when some bucket went down.
    changes = list(map(sub, later.values(), map(earlier.get, later, repeat(0))))
    if not changes or min(changes) >= 0:
        return dict(compress(zip(later, changes, strict=True), changes))
    changed: dict[int, int] = {}
    for bucket, count in later.items():
        before = earlier.get(bucket, 0)
        delta = count - before if count >= before else count
        if delta:
            changed[bucket] = delta
    return changed


def percentile(histogram: Histogram, fraction: float) -> int | None:
    """The response time ``fraction`` of the requests finished within, as Locust computes it.

    ``None`` for an empty histogram. The same walk as Locust's
    ``calculate_response_time_percentile``: from the slowest bucket down, until
    no more than ``fraction`` of the requests are left.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"a percentile is a fraction from 0 to 1, not {fraction!r}")
    count = total(histogram)
    if count == 0:
        return None
    wanted = int(count * fraction)
    seen = 0
    for bucket in sorted(histogram, reverse=True):
        seen += histogram[bucket]
        if count - seen <= wanted:
            return bucket
    return 0


def percentiles(histogram: Histogram) -> dict[float, int | None]:
    """Every percentile of :data:`PERCENTILES`."""
    return {fraction: percentile(histogram, fraction) for fraction in PERCENTILES}


def as_percentiles(histogram: Histogram) -> Percentiles | None:
    """The histogram's percentiles in the shape of Locust's CSV row; ``None`` if empty."""
    if total(histogram) == 0:
        return None
    values = [percentile(histogram, f) for f in PERCENTILES]
    names = ("p50", "p66", "p75", "p80", "p90", "p95", "p98", "p99", "p99_9", "p99_99", "p100")
    return Percentiles(
        **{n: None if v is None else float(v) for n, v in zip(names, values, strict=True)}
    )
