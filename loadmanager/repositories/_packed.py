"""A snapshot's endpoint rows packed into one blob, for the SQLite backend.

A row per endpoint cost a write 3-4 us an endpoint in SQLite alone (an index
entry and a record each); a snapshot now stores its rows as one value: the
counts as little-endian int64s, two an endpoint, then the figures as
little-endian float64s, eight an endpoint, ``NaN`` for a missing one (a
measure is never ``NaN``: the models refuse it). The endpoints' methods and
names repeat from snapshot to snapshot, so they are kept once, as a list the
snapshot points at.

Counts are exact up to 2**63 - 1, as SQLite's INTEGER columns were; figures
are the floats they were written as.

An endpoint series cell is packed the same way: every endpoint scope one run
has in one cell of one level, ``CELL_WIDTH`` float64s each (``COMPACT_WIDTH``
when the counts can be left out), its scopes kept once per distinct list (a
row per scope and cell was most of a fold's cost).
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

from ..metrics import EndpointStats
from ._series import SERIES_FIELDS

__all__ = [
    "CELL_BYTES",
    "CELL_WIDTH",
    "COMPACT_BYTES",
    "COMPACT_FIGURES",
    "COMPACT_WIDTH",
    "COUNTS",
    "FIGURES",
    "FIGURE_WIDTH",
    "ROW_BYTES",
    "cell_fits",
    "cell_floats",
    "figures_of",
    "full_cells",
    "names_key",
    "names_of",
    "names_text",
    "pack",
    "pack_cell",
    "pack_rows",
    "scopes_of",
    "scopes_text",
    "unpack",
]

COUNTS = ("num_requests", "num_failures")
FIGURES = (
    "current_rps",
    "current_fail_per_sec",
    "avg_response_time",
    "min_response_time",
    "max_response_time",
    "median_response_time",
    "p95_response_time",
    "p99_response_time",
)
"""EndpointStats' fields after its method and name, in its order: counts, then figures."""

FIGURE_WIDTH = len(FIGURES)
ROW_BYTES = 8 * (len(COUNTS) + FIGURE_WIDTH)
"""The bytes one endpoint row takes in a blob."""
_COUNT_BYTES = 8 * len(COUNTS)

_names = operator.attrgetter("method", "name")
_counts = operator.attrgetter(*COUNTS)
_figures = operator.attrgetter(*FIGURES)
_SWAP = sys.byteorder != "little"


def names_text(pairs: Sequence[Sequence[str]]) -> str:
    """The text a list of ``(method, name)`` pairs is stored and looked up by."""
    return json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))


def names_key(endpoints: Iterable[EndpointStats]) -> str:
    """The text the list of ``endpoints``' methods and names is stored and looked up by."""
    names = tuple(map(_names, endpoints))
    key = _KEYS.get(names)
    if key is None:
        key = names_text(names)
        if len(_KEYS) >= _KEPT:  # a bound, for a process that sees endless lists
            _KEYS.clear()
        _KEYS[names] = key
    return key


_KEYS: dict[tuple[tuple[str, str], ...], str] = {}
_KEPT = 4096


def names_of(key: str) -> list[tuple[str, str]]:
    """The ``(method, name)`` pairs of a stored endpoint list."""
    return [(method, name) for method, name in json.loads(key)]


def _bytes(kind: str, values: list[Any]) -> bytes:
    # struct packs a list of floats in a third of the time array() takes.
    key = (kind, len(values))
    packer = _STRUCTS.get(key)
    if packer is None:
        if len(_STRUCTS) >= _KEPT:
            _STRUCTS.clear()
        packer = _STRUCTS[key] = struct.Struct(f"<{len(values)}{kind}")
    return packer.pack(*values)


_STRUCTS: dict[tuple[str, int], struct.Struct] = {}


def _counts_bytes(values: list[int]) -> bytes:
    try:
        return _bytes("q", values)
    except struct.error as exc:  # as SQLite's INTEGER refuses them
        raise OverflowError(f"a count does not fit in 64 bits: {exc}") from None


def _floats(values: list[float | None]) -> bytes:
    try:
        # Most rows have every figure: one C-level conversion, no test per value.
        return _bytes("d", values)
    except struct.error:  # a missing figure (None)
        return _bytes("d", [math.nan if v is None else v for v in values])


def pack(endpoints: Sequence[EndpointStats]) -> bytes:
    """The blob of a snapshot's endpoint rows (OverflowError past int64's counts)."""
    chain = itertools.chain.from_iterable
    size = len(endpoints)
    packer = _ROWS.get(size)
    if packer is None:
        if len(_ROWS) >= _KEPT:
            _ROWS.clear()
        packer = _ROWS[size] = struct.Struct(f"<{len(COUNTS) * size}q{FIGURE_WIDTH * size}d")
    try:
        # Most rows are whole: one C call from the attributes to the bytes.
        return packer.pack(*chain(map(_counts, endpoints)), *chain(map(_figures, endpoints)))
    except struct.error:  # a missing figure (None), or a count past 64 bits
        counts = _counts_bytes(list(chain(map(_counts, endpoints))))
        return counts + _floats(list(chain(map(_figures, endpoints))))


_ROWS: dict[int, struct.Struct] = {}


def pack_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """The blob of endpoint rows given as ``(num_requests, num_failures, *FIGURES)`` values."""
    counts = _counts_bytes([v for row in rows for v in row[: len(COUNTS)]])
    return counts + _floats([v for row in rows for v in row[len(COUNTS) :]])


def figures_of(blobs: Iterable[bytes], size: int) -> array[float]:
    """The figures of blobs of ``size`` endpoints each, end to end: ``FIGURE_WIDTH``
    an endpoint, NaN for a missing one."""
    skip = _COUNT_BYTES * size
    figures = array("d", b"".join(blob[skip:] for blob in blobs))
    if _SWAP:  # pragma: no cover
        figures.byteswap()
    return figures


def unpack(names: Sequence[tuple[str, str]], blob: bytes) -> list[tuple[Any, ...]]:
    """The rows of a blob as EndpointStats' fields in its order (``None`` for a missing figure)."""
    size = len(names)
    counts = array("q")
    counts.frombytes(blob[: _COUNT_BYTES * size])
    if _SWAP:  # pragma: no cover
        counts.byteswap()
    figures = figures_of([blob], size).tolist()
    if len(counts) != len(COUNTS) * size or len(figures) != FIGURE_WIDTH * size:
        raise ValueError(f"an endpoint blob of {len(blob)} bytes does not hold {size} rows")
    total = sum(figures)  # NaN if any figure is missing (they are >= 0: no inf - inf)
    if total != total:
        figures = [None if v != v else v for v in figures]  # type: ignore[misc]
    return [
        (
            *names[i],
            counts[2 * i],
            counts[2 * i + 1],
            *figures[FIGURE_WIDTH * i : FIGURE_WIDTH * (i + 1)],
        )
        for i in range(size)
    ]


# Series cells of endpoints: the figures of every endpoint scope one cell of a
# run holds at one level, one value (see _folding and the SQLite backend).

CELL_WIDTH = 1 + 4 * len(SERIES_FIELDS)
"""The float64s one scope takes in a packed cell: its sample count, then the
count, sum, minimum and maximum of each series figure (NaN for a minimum or
maximum of no values), as ``_folding.empty`` lays a cell out."""
CELL_BYTES = 8 * CELL_WIDTH

_COUNTS_AT = range(1, CELL_WIDTH, 4)
"""Where each series figure's count is in a scope's figures."""
COMPACT_FIGURES = tuple(at for at in range(CELL_WIDTH) if at not in _COUNTS_AT)
"""The figures of the full layout a compact cell keeps, in its order."""
COMPACT_WIDTH = len(COMPACT_FIGURES)
"""The float64s one scope takes in a compact cell: a cell whose every figure
had a value in every sample (most: a figure is missing only before an
endpoint's first response) leaves the counts out, as they equal the sample
count. A third less, and at ten endpoints three cells fit a 4 KB page, not two."""
COMPACT_BYTES = 8 * COMPACT_WIDTH
_FROM_COMPACT = [0 if at in _COUNTS_AT else COMPACT_FIGURES.index(at) for at in range(CELL_WIDTH)]
"""Where each figure of the full layout is in the compact one."""


def pack_cell(values: list[float | None]) -> bytes:
    """The value of a packed cell of ``CELL_WIDTH`` figures a scope, end to end:
    compact (``COMPACT_WIDTH`` a scope) when every count equals its sample count."""
    samples = values[0::CELL_WIDTH]
    if all(values[at::CELL_WIDTH] == samples for at in _COUNTS_AT):
        scopes = len(samples)
        compact: list[float | None] = [0.0] * (COMPACT_WIDTH * scopes)
        for into, at in enumerate(COMPACT_FIGURES):
            compact[into::COMPACT_WIDTH] = values[at::CELL_WIDTH]
        return _floats(compact)
    return _floats(values)


def cell_fits(blob: bytes, scopes: int) -> bool:
    """Whether a stored cell's value holds ``scopes`` scopes in either layout."""
    return len(blob) in (CELL_BYTES * scopes, COMPACT_BYTES * scopes)


def cell_floats(blob: bytes, scopes: int) -> array[float]:
    """A packed cell's ``scopes`` scopes' figures in the full layout, ``CELL_WIDTH``
    a scope (NaN for a missing minimum or maximum); ValueError if it holds
    neither layout of that many."""
    floats = figures_of([blob], 0)
    if len(blob) == CELL_BYTES * scopes:
        return floats
    if len(blob) == COMPACT_BYTES * scopes:
        return _expanded(floats, scopes)
    raise ValueError(f"a packed cell of {len(blob)} bytes does not hold {scopes} scopes")


def full_cells(pieces: Sequence[bytes]) -> bytes:
    """One scope's figures of several cells, each of either layout, end to end in
    the full one (ValueError for a piece of neither)."""
    if all(len(piece) == CELL_BYTES for piece in pieces):
        return b"".join(pieces)
    if all(len(piece) == COMPACT_BYTES for piece in pieces):
        return _little_endian(_expanded(figures_of(pieces, 0), len(pieces)))
    return b"".join(_little_endian(cell_floats(piece, 1)) for piece in pieces)


def _little_endian(floats: array[float]) -> bytes:
    if _SWAP:  # pragma: no cover
        floats.byteswap()
    return floats.tobytes()


def _expanded(compact: array[float], scopes: int) -> array[float]:
    full = array("d", bytes(CELL_BYTES * scopes))
    for at, source in enumerate(_FROM_COMPACT):  # a strided copy a figure, in C
        full[at::CELL_WIDTH] = compact[source::COMPACT_WIDTH]
    return full


def scopes_text(scopes: Sequence[str]) -> str:
    """The text a packed cell's list of scopes is stored and looked up by."""
    return json.dumps(list(scopes), ensure_ascii=False, separators=(",", ":"))


def scopes_of(text: str) -> list[str]:
    """The scopes of a stored list, in the order of the cells' values."""
    return [str(scope) for scope in json.loads(text)]
