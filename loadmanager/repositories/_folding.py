"""Series cells of stored snapshots, computed in Python: SQLite's fold.

SQLite grouped each endpoint row by its scope and cell and ran four aggregates
per figure on it: 60-80 us a snapshot of ten endpoints, two thirds of a write.
Here a run's snapshots are put in time order once and their packed figures
laid end to end; an endpoint's figure is then a strided slice of them, and a
cell a slice of that, which ``sum``, ``min`` and ``max`` walk in C. A cell
and figure cost four C calls at each level, and no Python loop runs per
value unless a value is missing.

The cells are those of :mod:`._rollups` (count, sum, minimum and maximum per
series figure, and the sample count), at every level of ``ROLLUP_LEVELS_MS``,
each level computed from the snapshots themselves.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..filters import ROLLUP_LEVELS_MS
from ._packed import FIGURE_WIDTH, FIGURES, figures_of
from ._rollups import WHOLE_RUN
from ._series import ENDPOINT_FIELDS, SERIES_FIELDS

__all__ = ["Summary", "cells", "empty", "merge", "summary"]

Summary = tuple[int, float, float | None, float | None]
"""count, sum, minimum and maximum of the values present."""

_ENDPOINT_OFFSETS = tuple(FIGURES.index(f) for f in ENDPOINT_FIELDS)
_TIME = operator.itemgetter(1)


def summary(values: Sequence[float | None]) -> Summary:
    """count, sum, minimum and maximum of ``values``, skipping ``None`` and NaN."""
    try:
        total = sum(values)  # type: ignore[arg-type]
    except TypeError:  # a None among them
        values = [v for v in values if v is not None]
        total = sum(values)  # type: ignore[arg-type]
    if total != total:  # a NaN among them (values are >= 0: never inf - inf)
        values = [v for v in values if v == v]
        total = sum(values)  # type: ignore[arg-type]
    if not values:
        return (0, 0.0, None, None)
    return (len(values), float(total), min(values), max(values))  # type: ignore[type-var]


def merge(into: list[Any], samples: int, figures: Iterable[Summary]) -> None:
    """Add ``samples`` and each series figure's summary to a cell (see ``empty``)."""
    into[0] += samples
    at = 1
    for n, total, low, high in figures:
        if n:
            into[at] += n
            into[at + 1] += total
            was = into[at + 2]
            into[at + 2] = low if was is None or low < was else was
            was = into[at + 3]
            into[at + 3] = high if was is None or high > was else was
        at += 4


def empty() -> list[Any]:
    """A cell holding nothing: the sample count, then count, sum, min, max per figure."""
    return [0, *([0, 0.0, None, None] * len(SERIES_FIELDS))]


def _by_segment(
    column: Sequence[float | None], parts: Sequence[slice]
) -> tuple[list[int], list[float], list[float | None], list[float | None]]:
    """count, sum, min and max of each part of ``column``, four lists, one entry a part.

    Each list is one ``map`` over the parts, so a part costs four C calls, not
    a Python loop over its values; a column holding a missing value (None or
    NaN) takes the careful way, a part at a time.
    """
    pieces: list[Sequence[float]] = list(map(column.__getitem__, parts))  # type: ignore[arg-type]
    try:
        sums: list[float] = list(map(sum, pieces))
    except TypeError:  # a None in the column
        sums = [math.nan]
    total = sum(sums)
    if total != total:  # a NaN, or the None above
        figures = list(map(summary, pieces))
        return (
            [f[0] for f in figures],
            [f[1] for f in figures],
            [f[2] for f in figures],
            [f[3] for f in figures],
        )
    return list(map(len, pieces)), sums, list(map(min, pieces)), list(map(max, pieces))


def _layouts(ts: Sequence[int]) -> list[tuple[int, list[int], list[int], list[slice]]]:
    """Per level: the level, each cell's number and sample count, and its slice of ``ts``."""
    found = []
    for level in ROLLUP_LEVELS_MS:
        cell_of = [t // level for t in ts]
        starts = [0, *(i for i in range(1, len(ts)) if cell_of[i] != cell_of[i - 1])]
        ends = [*starts[1:], len(ts)]
        samples = list(map(operator.sub, ends, starts))
        found.append((level, [cell_of[i] for i in starts], samples, list(map(slice, starts, ends))))
    return found


def _cells_of(
    run_id: str,
    scope: str,
    layouts: Sequence[tuple[int, list[int], list[int], list[slice]]],
    columns: Sequence[Sequence[float | None]],
) -> Iterator[tuple[Any, ...]]:
    """The cells of one scope's time-ordered values at every level (metrics_rollups' columns)."""
    for level, numbers, samples, parts in layouts:
        figures = [f for column in columns for f in _by_segment(column, parts)]
        yield from zip(
            itertools.repeat(run_id),
            itertools.repeat(level),
            itertools.repeat(scope),
            numbers,
            samples,
            *figures,
        )


def cells(
    rows: Iterable[Sequence[Any]], scopes: Mapping[int, Sequence[str]]
) -> list[tuple[Any, ...]]:
    """The cells of ``rows``, metrics_rollups' columns, at every level.

    A cell may come more than once (a run's snapshots under two endpoint lists
    share its whole-run cells): whoever stores them merges them.

    Args:
        rows: ``(run_id, ts_ms, *SERIES_FIELDS, endpoint list id, endpoint blob)``
            per snapshot (the list and blob ``None`` for a snapshot without rows).
        scopes: Each endpoint list's scopes, in the order of its rows.
    """
    runs: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        runs.setdefault(row[0], []).append(row)
    found: list[tuple[Any, ...]] = []
    width = len(SERIES_FIELDS)
    for run_id, members in runs.items():
        members.sort(key=_TIME)
        columns = list(zip(*members, strict=True))
        layouts = _layouts(columns[1])
        found.extend(_cells_of(run_id, WHOLE_RUN, layouts, columns[2 : 2 + width]))
        listed: dict[int, list[Sequence[Any]]] = {}
        for row in members:
            if row[-2] is not None:
                listed.setdefault(row[-2], []).append(row)
        for list_id, under in listed.items():
            if len(under) < len(members):  # the run's snapshots are under several lists
                layouts = _layouts([r[1] for r in under])
            users = [r[2] for r in under]
            row_scopes = scopes[list_id]
            figures = figures_of([r[-1] for r in under], len(row_scopes))
            stride = FIGURE_WIDTH * len(row_scopes)
            for position, scope in enumerate(row_scopes):
                base = FIGURE_WIDTH * position
                # Every endpoint row carries its snapshot's user count.
                own = [users, *(figures[base + k :: stride] for k in _ENDPOINT_OFFSETS)]
                found.extend(_cells_of(run_id, scope, layouts, own))
    return found
