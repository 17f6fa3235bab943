"""A run's series figures as parallel lists in time order: the memory backend's
series reads slices of them instead of every snapshot object.

Built lazily on the first series of a run and extended by later ones with the
snapshots stored since; a snapshot stored out of order throws them away. Each
bucket is a slice, and ``min``, ``sum`` and ``max`` over a slice run in C, so a
series costs a few operations per bucket, not per snapshot.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from ..clock import to_millis
from ..filters import SeriesWindow
from ..metrics import MetricSnapshot, SeriesBucket
from ._series import SERIES_FIELDS, assemble, snapshot_values

__all__ = ["SeriesColumns", "bucketed"]


class SeriesColumns:
    """The figures of SERIES_FIELDS for the whole run or one endpoint, by time."""

    __slots__ = ("consumed", "endpoint", "has_none", "ts", "values")

    def __init__(self, endpoint: str | None) -> None:
        self.endpoint = endpoint
        self.consumed = 0  # how many of the run's snapshots are folded in
        self.ts: list[int] = []
        self.values: list[list[float | None]] = [[] for _ in SERIES_FIELDS]
        self.has_none = [False] * len(SERIES_FIELDS)

    def extend(self, snapshots: Sequence[MetricSnapshot]) -> None:
        """Fold in the snapshots stored since the last call (the list only grows)."""
        for snap in snapshots[self.consumed :]:
            values = snapshot_values(snap, self.endpoint)
            if values is None:
                continue
            for i, value in enumerate(values):
                self.values[i].append(value)
                if value is None:
                    self.has_none[i] = True
            self.ts.append(to_millis(snap.timestamp))  # last: readers bound by len(ts)
        self.consumed = len(snapshots)

    def bounds(self, start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
        """The index range of the points in ``[start_ms, end_ms)``."""
        lo = 0 if start_ms is None else bisect_left(self.ts, start_ms)
        hi = len(self.ts) if end_ms is None else bisect_left(self.ts, end_ms)
        return lo, max(lo, hi)


def bucketed(window: SeriesWindow, columns: SeriesColumns, hi: int) -> list[SeriesBucket]:
    """The series of ``columns``' first ``hi`` points laid out by ``window``."""
    ts = columns.ts
    width = window.width_ms
    i = bisect_left(ts, window.start_ms, 0, hi)
    end = bisect_left(ts, window.end_ms, i, hi)
    rows = []
    while i < end:
        index = (ts[i] - window.start_ms) // width
        j = bisect_left(ts, window.start_ms + (index + 1) * width, i, end)
        figures: list[float | None] = []
        for k, column in enumerate(columns.values):
            part = column[i:j]
            if columns.has_none[k]:
                part = [v for v in part if v is not None]
            if part:
                present: list[float] = part  # type: ignore[assignment]  # Nones are gone
                figures += [min(present), sum(present) / len(present), max(present)]
            else:
                figures += [None, None, None]
        rows.append((index, j - i, figures))
        i = j
    return assemble(window, rows)
