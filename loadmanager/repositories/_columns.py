"""A run's series figures as parallel lists in time order: the memory backend's
series reads slices of them instead of every snapshot object.

Built lazily on the first series of a run and extended by later ones with the
snapshots stored since; a snapshot stored out of order throws them away. Each
bucket is a slice, and ``min``, ``sum`` and ``max`` over a slice run in C, so a
series costs a few operations per bucket, not per snapshot.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from ..clock import to_millis
from ..filters import SeriesWindow
from ..metrics import MetricSnapshot, SeriesBucket
from ._series import SERIES_FIELDS, assemble, snapshot_values

__all__ = ["LevelCells", "SeriesColumns", "bucketed", "cells_bucketed"]


class SeriesColumns:
    """The figures of SERIES_FIELDS for the whole run or one endpoint, by time."""

    __slots__ = ("consumed", "endpoint", "has_none", "levels", "ts", "values")

    def __init__(self, endpoint: str | None) -> None:
        self.endpoint = endpoint
        self.consumed = 0  # how many of the run's snapshots are folded in
        self.ts: list[int] = []
        self.values: list[list[float | None]] = [[] for _ in SERIES_FIELDS]
        self.has_none = [False] * len(SERIES_FIELDS)
        self.levels: dict[int, LevelCells] = {}  # rolled up on first use

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
        for cells in self.levels.values():
            cells.extend(self)

    def level(self, level: int) -> LevelCells:
        """This level's cells, up to date with the columns."""
        cells = self.levels.get(level)
        if cells is None:
            cells = self.levels[level] = LevelCells(level)
            cells.extend(self)
        return cells

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


class LevelCells:
    """``columns`` rolled up into one level's cells: samples, and per figure
    count, sum, min and max (``inf``/``-inf`` while the count is 0).

    Built on the first series laid on the level and extended by later ones; the
    last cell is recomputed on each extension, as it may have been partial.
    """

    __slots__ = ("cells", "counts", "first", "highs", "level", "lows", "samples", "sums")

    def __init__(self, level: int) -> None:
        self.level = level
        self.first: list[int] = []  # the index in the columns of each cell's first point
        self.cells: list[int] = []
        self.samples: list[int] = []
        self.counts: list[list[int]] = [[] for _ in SERIES_FIELDS]
        self.sums: list[list[float]] = [[] for _ in SERIES_FIELDS]
        self.lows: list[list[float]] = [[] for _ in SERIES_FIELDS]
        self.highs: list[list[float]] = [[] for _ in SERIES_FIELDS]

    def extend(self, columns: SeriesColumns) -> None:
        """Fold in the points the columns gained since the last call."""
        ts, level = columns.ts, self.level
        i = self.first.pop() if self.first else 0
        if self.cells:
            stores: list[list[Any]] = [self.cells, self.samples, *self.counts, *self.sums]
            for store in (*stores, *self.lows, *self.highs):
                store.pop()
        end = len(ts)
        while i < end:
            cell = ts[i] // level
            j = bisect_left(ts, (cell + 1) * level, i, end)
            self.first.append(i)
            self.cells.append(cell)
            self.samples.append(j - i)
            for k, column in enumerate(columns.values):
                part = column[i:j]
                if columns.has_none[k]:
                    part = [v for v in part if v is not None]
                present: list[float] = part  # type: ignore[assignment]  # Nones are gone
                self.counts[k].append(len(present))
                self.sums[k].append(sum(present))
                self.lows[k].append(min(present, default=math.inf))
                self.highs[k].append(max(present, default=-math.inf))
            i = j

    def copy(self, lo: int, hi: int) -> LevelCells:
        """Cells ``lo`` to ``hi`` (a reader's own copy, taken under the lock)."""
        part = LevelCells(self.level)
        part.cells, part.samples = self.cells[lo:hi], self.samples[lo:hi]
        part.counts = [c[lo:hi] for c in self.counts]
        part.sums = [c[lo:hi] for c in self.sums]
        part.lows = [c[lo:hi] for c in self.lows]
        part.highs = [c[lo:hi] for c in self.highs]
        return part


def cells_bucketed(window: SeriesWindow, cells: LevelCells) -> list[SeriesBucket]:
    """The series of ``cells`` (a level-aligned window's own copy) laid out by ``window``."""
    level, width, origin = cells.level, window.width_ms, window.start_ms
    ids = cells.cells
    i, end = 0, len(ids)
    rows = []
    while i < end:
        index = (ids[i] * level - origin) // width
        j = bisect_left(ids, (origin + (index + 1) * width) // level, i, end)
        figures: list[float | None] = []
        for k in range(len(SERIES_FIELDS)):
            count = sum(cells.counts[k][i:j])
            if count:
                low, high = min(cells.lows[k][i:j]), max(cells.highs[k][i:j])
                figures += [low, sum(cells.sums[k][i:j]) / count, high]
            else:
                figures += [None, None, None]
        rows.append((index, sum(cells.samples[i:j]), figures))
        i = j
    return assemble(window, rows)
