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
each level computed from the snapshots themselves: the whole run's a row each,
the endpoints' packed, every scope of a cell in one value (``_packed.pack_cell``),
which ``combine`` merges and ``merged_by_bucket`` reads back.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..filters import ROLLUP_LEVELS_MS
from ._packed import (
    CELL_WIDTH,
    COMPACT_FIGURES,
    COUNTS,
    FIGURE_WIDTH,
    FIGURES,
    ROW_BYTES,
    cell_floats,
    figures_of,
    pack_cell,
)
from ._rollups import WHOLE_RUN
from ._series import ENDPOINT_FIELDS, SERIES_FIELDS

__all__ = [
    "EndpointCell",
    "Summary",
    "cells",
    "combine",
    "empty",
    "merge",
    "merged_by_bucket",
    "summary",
]

Summary = tuple[int, float, float | None, float | None]
"""count, sum, minimum and maximum of the values present."""

EndpointCell = tuple[str, int, int, Sequence[str], bytes]
"""An endpoint cell as a fold makes it: run, level, cell number, the scopes and
their packed figures (see ``_packed.pack_cell``)."""

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


def _packed_cells_of(
    scopes: Sequence[str],
    layouts: Sequence[_Layout],
    columns: Sequence[Sequence[Sequence[float | None]]],
) -> Iterator[EndpointCell]:
    """The packed cells of several scopes' values (``columns``, a list a scope) at every level."""
    for level, runs, numbers, samples, parts in layouts:
        # Per scope, each cell's 4 figures per series figure, as a tuple.
        by_scope = [
            list(zip(*(f for column in own for f in _by_segment(column, parts)), strict=True))
            for own in columns
        ]
        for j, count in enumerate(samples):
            values: list[float | None] = []
            for cells_of_scope in by_scope:
                values.append(count)
                values.extend(cells_of_scope[j])
            yield runs[j], level, numbers[j], scopes, pack_cell(values)


def _numpy_levels(
    np: Any, runs: Sequence[str], ts: Sequence[int], values: Any
) -> Iterator[tuple[int, list[str], list[int], Any, Any]]:
    """Each level's cells of ``values`` with numpy's ``reduceat``: the level, each
    cell's run, number and sample count, and an array of shape (cells, scopes,
    figures, 4) holding each figure's count, sum, minimum and maximum (NaN for
    a minimum or maximum of no values).

    ``values`` is an array of shape (snapshots, scopes, figures), NaN for a
    missing figure, its rows in (run, time) order; the cells are those of
    ``_cells_of`` (sums up to their order).
    """
    times = np.asarray(ts, dtype=np.int64)
    run_ids = np.asarray(runs)
    # np.concatenate, not np.r_: np.r_ parses its index in Python (5.7 us a
    # call against 2.2), and a fold makes ten of them.
    new_run = np.concatenate(([True], run_ids[1:] != run_ids[:-1]))
    present = ~np.isnan(values)
    zeroed = np.where(present, values, 0.0)
    finer: tuple[int, Any, Any, Any, Any] | None = None  # the level below: cells are mergeable
    for level in ROLLUP_LEVELS_MS:
        if finer is None:
            cell_of = times // level
            starts = np.flatnonzero(new_run | np.concatenate(([True], cell_of[1:] != cell_of[:-1])))
            parts = [present, zeroed, values, values]
            samples = np.diff(np.concatenate((starts, [len(times)])))
        else:
            # A coarser level merges the finer one's cells: a fifth or a sixth
            # as many rows as the snapshots (reduceat walks every value).
            below, numbers, new_run, below_samples, below_figures = finer
            cell_of = numbers * below // level
            starts = np.flatnonzero(new_run | np.concatenate(([True], cell_of[1:] != cell_of[:-1])))
            parts = [below_figures[..., k] for k in range(4)]
            samples = np.add.reduceat(below_samples, starts)
        figures = np.stack(
            [
                np.add.reduceat(parts[0], starts, axis=0),
                np.add.reduceat(parts[1], starts, axis=0),
                np.fmin.reduceat(parts[2], starts, axis=0),
                np.fmax.reduceat(parts[3], starts, axis=0),
            ],
            axis=-1,
        )
        first_of_run = new_run[starts]
        finer = (level, cell_of[starts], first_of_run, samples, figures)
        yield level, run_ids[starts].tolist(), cell_of[starts].tolist(), samples, figures
        run_ids = run_ids[starts]


def _numpy_cells(
    np: Any, runs: Sequence[str], ts: Sequence[int], scopes: Sequence[str], values: Any
) -> Iterator[tuple[Any, ...]]:
    """``_cells_of`` for several scopes at once (see ``_numpy_levels``)."""
    shape = (len(scopes), 4 * len(SERIES_FIELDS), -1)
    for level, at, numbers, samples, figures in _numpy_levels(np, runs, ts, values):
        # Per scope, each column's values cell by cell: zip makes the rows in C.
        by_scope = figures.transpose(1, 2, 3, 0).reshape(shape).tolist()
        missing = bool(np.isnan(figures[..., 2]).any())  # a cell where a figure has no value
        for scope, columns in zip(scopes, by_scope, strict=True):
            if missing:
                columns = [[None if v != v else v for v in column] for column in columns]
            yield from zip(
                at,
                itertools.repeat(level),
                itertools.repeat(scope),
                numbers,
                samples.tolist(),
                *columns,
            )


def _numpy_packed(
    np: Any, runs: Sequence[str], ts: Sequence[int], scopes: Sequence[str], values: Any
) -> Iterator[EndpointCell]:
    """Packed cells of several scopes at once (see ``_numpy_levels``)."""
    width = 4 * len(SERIES_FIELDS)
    for level, at, numbers, samples, figures in _numpy_levels(np, runs, ts, values):
        count = len(numbers)
        packed = np.empty((count, len(scopes), 1 + width), dtype="<f8")
        packed[:, :, 0] = samples[:, None]
        packed[:, :, 1:] = figures.reshape(count, len(scopes), width)
        # As pack_cell lays them out: compact where every count is the sample count.
        compact = (packed[:, :, 1::4] == packed[:, :, :1]).all(axis=(1, 2)).tolist()
        kept = packed[:, :, COMPACT_FIGURES]
        yield from zip(
            at,
            itertools.repeat(level),
            numbers,
            itertools.repeat(scopes),
            ((kept if small else packed)[j].tobytes() for j, small in enumerate(compact)),
        )


def _numpy_endpoint_cells(
    np: Any, under: Sequence[Sequence[Any]], scopes: Sequence[str]
) -> Iterator[EndpointCell]:
    size = len(scopes)
    positions = _first_of_each(scopes)
    # The blobs end to end, their counts' bytes read as floats and cut away:
    # copying each blob's figures out first (figures_of) cost a fold of 40
    # snapshots x 100 endpoints about 100 us more.
    blobs = np.frombuffer(b"".join([r[-1] for r in under]), dtype="<f8")
    figures = blobs.reshape(len(under), -1)[:, len(COUNTS) * size :]
    rows = figures.reshape(len(under), size, FIGURE_WIDTH)[:, positions, :]
    picked = rows[:, :, list(_ENDPOINT_OFFSETS)]
    scopes = [scopes[p] for p in positions]
    size = len(scopes)
    users = np.array([r[2] for r in under], dtype=float)
    # Every endpoint row carries its snapshot's user count.
    users = np.broadcast_to(users[:, None, None], (len(under), size, 1))
    values = np.concatenate([users, picked], axis=2)
    return _numpy_packed(np, [r[0] for r in under], [r[1] for r in under], scopes, values)


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
) -> tuple[list[tuple[Any, ...]], list[EndpointCell]]:
    """The cells of ``rows`` at every level: the whole run's, and the endpoints' packed.

    The rows of every run are put in (run, time) order and computed together,
    so a fold of a few snapshots of each of many runs (the Monitor's) costs
    what its cells do, not a fixed cost per run. A cell may come more than
    once (a run's snapshots under two endpoint lists share its whole-run
    cells; an endpoint cell of each list): whoever stores them merges them
    (``combine`` for the endpoints').

    Args:
        rows: ``(run_id, ts_ms, *SERIES_FIELDS, endpoint list id, endpoint blob)``
            per snapshot (the list and blob ``None`` for a snapshot without rows).
        scopes: Each endpoint list's scopes, in the order of its rows.
        use_numpy: Compute with numpy (True), in Python (False), or with numpy
            for a large fold when it is installed (None).

    Returns:
        The whole run's cells as metrics_rollups' columns, and the endpoints'
        as ``(run_id, level, cell, scopes, packed)``, ``packed`` holding
        ``CELL_WIDTH`` figures per scope (see ``_packed.pack_cell``).
    """
    ordered = sorted(rows, key=_RUN_TIME)
    if not ordered:
        return [], []
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
    whole: list[tuple[Any, ...]] = []
    endpoints: list[EndpointCell] = []
    if np is not None:
        values = np.array(columns[2 : 2 + width], dtype=float).T[:, None, :]
        whole.extend(_numpy_cells(np, columns[0], columns[1], [WHOLE_RUN], values))
        for list_id, under in listed.items():
            endpoints.extend(_numpy_endpoint_cells(np, under, scopes[list_id]))
        return whole, endpoints
    every = _layouts(columns[0], columns[1])
    whole.extend(_cells_of(WHOLE_RUN, every, columns[2 : 2 + width]))
    for list_id, under in listed.items():
        # Rows under one list are the run's rows, or some of them in the same order.
        if len(under) == len(ordered):
            layouts = every
        else:
            layouts = _layouts([r[0] for r in under], [r[1] for r in under])
        users = [r[2] for r in under]
        row_scopes = scopes[list_id]
        positions = _first_of_each(row_scopes)
        figures = figures_of([r[-1] for r in under], len(row_scopes))
        stride = FIGURE_WIDTH * len(row_scopes)
        # Every endpoint row carries its snapshot's user count.
        own = [
            [users, *(figures[FIGURE_WIDTH * position + k :: stride] for k in _ENDPOINT_OFFSETS)]
            for position in positions
        ]
        distinct = [row_scopes[p] for p in positions]
        endpoints.extend(_packed_cells_of(distinct, layouts, own))
    return whole, endpoints


def _first_of_each(scopes: Sequence[str]) -> list[int]:
    """The position of each scope's first row: of two rows one key matches
    (``("GET", "/a")`` and ``("", "GET /a")``), a snapshot's first counts."""
    seen: dict[str, int] = {}
    for position, scope in enumerate(scopes):
        seen.setdefault(scope, position)
    return sorted(seen.values())


def combine(parts: Sequence[tuple[Sequence[str], bytes]]) -> tuple[tuple[str, ...], bytes]:
    """One packed cell of several of the same run, level and number, each scope once.

    The scopes keep the order they first come in; a scope in several parts (or
    twice in one: two rows a key matches) has its figures merged.
    """
    if len(parts) == 1:
        scopes, packed = parts[0]
        if len(set(scopes)) == len(scopes):
            return tuple(scopes), packed
    merged: dict[str, list[float]] = {}
    for scopes, packed in parts:
        values = cell_floats(packed, len(scopes))
        for position, scope in enumerate(scopes):
            own = values[CELL_WIDTH * position : CELL_WIDTH * (position + 1)].tolist()
            into = merged.get(scope)
            if into is None:
                merged[scope] = own
            else:
                _merge_floats(into, own)
    flat: list[float | None] = list(itertools.chain.from_iterable(merged.values()))
    return tuple(merged), pack_cell(flat)


def _merge_floats(into: list[float], other: Sequence[float]) -> None:
    """Merge one scope's packed figures into another's (NaN: no minimum or maximum)."""
    into[0] += other[0]
    for at in range(1, CELL_WIDTH, 4):
        into[at] += other[at]
        into[at + 1] += other[at + 1]
        low, was = other[at + 2], into[at + 2]
        if was != was or low < was:
            into[at + 2] = low
        high, was = other[at + 3], into[at + 3]
        if was != was or high > was:
            into[at + 3] = high


def merged_by_bucket(
    buckets: Sequence[int], packed: bytes, *, use_numpy: bool | None = None
) -> dict[int, list[Any]]:
    """One scope's cells merged per bucket, each bucket a cell as ``empty`` lays it out.

    ``packed`` holds the scope's ``CELL_WIDTH`` figures of each cell end to end,
    one cell per entry of ``buckets``, which is in order. As in a fold, each
    figure is a strided slice of them and a bucket a slice of that, which
    ``sum``, ``min`` and ``max`` walk in C; numpy (True), Python (False), or
    numpy for many cells when it is installed (None).
    """
    count = len(buckets)
    if not count:
        return {}
    starts = [0, *(i for i in range(1, count) if buckets[i] != buckets[i - 1])]
    np = None if use_numpy is False else _numpy_for(math.inf if use_numpy else count * CELL_WIDTH)
    if np is not None:
        by_numpy = _numpy_by_bucket(np, starts, packed)
        return dict(zip((buckets[i] for i in starts), by_numpy, strict=True))
    parts = list(map(slice, starts, [*starts[1:], count]))
    flat = figures_of([packed], 0)
    merged: list[list[Any]] = [list(map(int, map(sum, _pieces(flat[0::CELL_WIDTH], parts))))]
    for at in range(1, CELL_WIDTH, 4):
        counts = flat[at::CELL_WIDTH]
        merged.append(list(map(int, map(sum, _pieces(counts, parts)))))
        merged.append(list(map(sum, _pieces(flat[at + 1 :: CELL_WIDTH], parts))))
        lows = _pieces(flat[at + 2 :: CELL_WIDTH], parts)
        highs = _pieces(flat[at + 3 :: CELL_WIDTH], parts)
        if 0.0 in counts:  # NaN stands for no minimum or maximum there
            merged.append([min((v for v in p if v == v), default=None) for p in lows])
            merged.append([max((v for v in p if v == v), default=None) for p in highs])
        else:
            merged.append(list(map(min, lows)))
            merged.append(list(map(max, highs)))
    rows = map(list, zip(*merged, strict=True))
    return dict(zip((buckets[i] for i in starts), rows, strict=True))


def _numpy_by_bucket(np: Any, starts: list[int], packed: bytes) -> list[list[Any]]:
    """``merged_by_bucket``'s cells with numpy's ``reduceat``."""
    cells = np.frombuffer(packed, dtype="<f8").reshape(-1, CELL_WIDTH)
    added = np.add.reduceat(cells, starts, axis=0)  # right for counts and sums
    lows = np.fmin.reduceat(cells[:, 3::4], starts, axis=0)
    highs = np.fmax.reduceat(cells[:, 4::4], starts, axis=0)
    merged = []
    for total, low, high in zip(added.tolist(), lows.tolist(), highs.tolist(), strict=True):
        into: list[Any] = [int(total[0])]
        for k, at in enumerate(range(1, CELL_WIDTH, 4)):
            n = int(total[at])
            if n:
                into += [n, total[at + 1], low[k], high[k]]
            else:
                into += [0, 0.0, None, None]
        merged.append(into)
    return merged


def _pieces(column: Sequence[float], parts: Sequence[slice]) -> list[Sequence[float]]:
    return list(map(column.__getitem__, parts))
