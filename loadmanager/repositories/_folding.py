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
from ._packed import FIGURE_WIDTH, FIGURES, ROW_BYTES, figures_of
from ._rollups import WHOLE_RUN
from ._series import ENDPOINT_FIELDS, SERIES_FIELDS

__all__ = ["Summary", "cells", "empty", "merge", "summary"]

Summary = tuple[int, float, float | None, float | None]
"""count, sum, minimum and maximum of the values present."""

_ENDPOINT_OFFSETS = tuple(FIGURES.index(f) for f in ENDPOINT_FIELDS)
_RUN_TIME = operator.itemgetter(0, 1)


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


_Layout = tuple[int, list[str], list[int], list[int], list[slice]]
"""A level, and each of its cells' run, number, sample count and slice of the rows."""


def _layouts(runs: Sequence[str], ts: Sequence[int]) -> list[_Layout]:
    """The cells of rows in (run, time) order, at each level."""
    count = len(ts)
    new_run = [True, *(runs[i] != runs[i - 1] for i in range(1, count))]
    found = []
    for level in ROLLUP_LEVELS_MS:
        cell_of = [t // level for t in ts]
        starts = [i for i in range(count) if new_run[i] or cell_of[i] != cell_of[i - 1]]
        ends = [*starts[1:], count]
        found.append(
            (
                level,
                [runs[i] for i in starts],
                [cell_of[i] for i in starts],
                list(map(operator.sub, ends, starts)),
                list(map(slice, starts, ends)),
            )
        )
    return found


def _cells_of(
    scope: str, layouts: Sequence[_Layout], columns: Sequence[Sequence[float | None]]
) -> Iterator[tuple[Any, ...]]:
    """The cells of one scope's values at every level (metrics_rollups' columns)."""
    for level, runs, numbers, samples, parts in layouts:
        figures = [f for column in columns for f in _by_segment(column, parts)]
        yield from zip(
            runs,
            itertools.repeat(level),
            itertools.repeat(scope),
            numbers,
            samples,
            *figures,
        )


def _numpy_cells(
    np: Any, runs: Sequence[str], ts: Sequence[int], scopes: Sequence[str], values: Any
) -> Iterator[tuple[Any, ...]]:
    """``_cells_of`` for several scopes at once, with numpy's ``reduceat``.

    ``values`` is an array of shape (snapshots, scopes, figures), NaN for a
    missing figure, its rows in (run, time) order; the cells are the same (sums
    up to their order).
    """
    times = np.asarray(ts, dtype=np.int64)
    run_ids = np.asarray(runs)
    new_run = np.r_[True, run_ids[1:] != run_ids[:-1]]
    present = ~np.isnan(values)
    zeroed = np.where(present, values, 0.0)
    shape = (len(scopes), 4 * len(SERIES_FIELDS), -1)
    for level in ROLLUP_LEVELS_MS:
        cell_of = times // level
        starts = np.flatnonzero(new_run | np.r_[True, cell_of[1:] != cell_of[:-1]])
        at = run_ids[starts].tolist()
        numbers = cell_of[starts].tolist()
        samples = np.diff(np.r_[starts, len(times)]).tolist()
        low = np.fmin.reduceat(values, starts, axis=0)
        figures = np.stack(
            [
                np.add.reduceat(present, starts, axis=0),
                np.add.reduceat(zeroed, starts, axis=0),
                low,
                np.fmax.reduceat(values, starts, axis=0),
            ],
            axis=-1,
        )  # (cells, scopes, figures, 4): per figure its count, sum, min and max
        # Per scope, each column's values cell by cell: zip makes the rows in C.
        by_scope = figures.transpose(1, 2, 3, 0).reshape(shape).tolist()
        missing = bool(np.isnan(low).any())  # a cell where a figure has no value
        for scope, columns in zip(scopes, by_scope, strict=True):
            if missing:
                columns = [[None if v != v else v for v in column] for column in columns]
            yield from zip(
                at,
                itertools.repeat(level),
                itertools.repeat(scope),
                numbers,
                samples,
                *columns,
            )


def _numpy_endpoint_cells(
    np: Any, under: Sequence[Sequence[Any]], scopes: Sequence[str]
) -> Iterator[tuple[Any, ...]]:
    size = len(scopes)
    figures = np.frombuffer(figures_of([r[-1] for r in under], size), dtype=np.float64)
    picked = figures.reshape(len(under), size, FIGURE_WIDTH)[:, :, list(_ENDPOINT_OFFSETS)]
    users = np.array([r[2] for r in under], dtype=float)
    # Every endpoint row carries its snapshot's user count.
    users = np.broadcast_to(users[:, None, None], (len(under), size, 1))
    values = np.concatenate([users, picked], axis=2)
    return _numpy_cells(np, [r[0] for r in under], [r[1] for r in under], scopes, values)


_NUMPY_FROM = 1024
"""A fold of this many values per figure or more uses numpy when it is installed
(the ``fast`` extra): importing it costs more than a small fold saves."""
_numpy: Any = None


def _numpy_for(values: float) -> Any:
    """numpy, for a fold of ``values`` values a figure, if it is worth it and installed."""
    global _numpy  # imported on first need: it takes longer than a small fold
    if values < _NUMPY_FROM:
        return None
    if _numpy is None:
        try:
            import numpy
        except ImportError:  # pragma: no cover - the test environment has it
            _numpy = False
        else:
            _numpy = numpy
    return _numpy or None


def cells(
    rows: Iterable[Sequence[Any]],
    scopes: Mapping[int, Sequence[str]],
    *,
    use_numpy: bool | None = None,
) -> list[tuple[Any, ...]]:
    """The cells of ``rows``, metrics_rollups' columns, at every level.

    The rows of every run are put in (run, time) order and computed together,
    so a fold of a few snapshots of each of many runs (the Monitor's) costs
    what its cells do, not a fixed cost per run. A cell may come more than
    once (a run's snapshots under two endpoint lists share its whole-run
    cells): whoever stores them merges them.

    Args:
        rows: ``(run_id, ts_ms, *SERIES_FIELDS, endpoint list id, endpoint blob)``
            per snapshot (the list and blob ``None`` for a snapshot without rows).
        scopes: Each endpoint list's scopes, in the order of its rows.
        use_numpy: Compute with numpy (True), in Python (False), or with numpy
            for a large fold when it is installed (None).
    """
    ordered = sorted(rows, key=_RUN_TIME)
    if not ordered:
        return []
    listed: dict[int, list[Sequence[Any]]] = {}
    for row in ordered:
        # A value that does not fit its list (damaged on disk: reading the
        # snapshot raises) is left out rather than stopping every later fold.
        if row[-2] is not None and len(row[-1]) == ROW_BYTES * len(scopes[row[-2]]):
            listed.setdefault(row[-2], []).append(row)
    size = len(ordered) + sum(len(u) * len(scopes[k]) for k, u in listed.items())
    np = None if use_numpy is False else _numpy_for(math.inf if use_numpy else size)
    columns = list(zip(*ordered, strict=True))
    width = len(SERIES_FIELDS)
    found: list[tuple[Any, ...]] = []
    if np is not None:
        whole = np.array(columns[2 : 2 + width], dtype=float).T[:, None, :]
        found.extend(_numpy_cells(np, columns[0], columns[1], [WHOLE_RUN], whole))
        for list_id, under in listed.items():
            found.extend(_numpy_endpoint_cells(np, under, scopes[list_id]))
        return found
    every = _layouts(columns[0], columns[1])
    found.extend(_cells_of(WHOLE_RUN, every, columns[2 : 2 + width]))
    for list_id, under in listed.items():
        # Rows under one list are the run's rows, or some of them in the same order.
        if len(under) == len(ordered):
            layouts = every
        else:
            layouts = _layouts([r[0] for r in under], [r[1] for r in under])
        users = [r[2] for r in under]
        row_scopes = scopes[list_id]
        figures = figures_of([r[-1] for r in under], len(row_scopes))
        stride = FIGURE_WIDTH * len(row_scopes)
        for position, scope in enumerate(row_scopes):
            base = FIGURE_WIDTH * position
            # Every endpoint row carries its snapshot's user count.
            own = [users, *(figures[base + k :: stride] for k in _ENDPOINT_OFFSETS)]
            found.extend(_cells_of(scope, layouts, own))
    return found
