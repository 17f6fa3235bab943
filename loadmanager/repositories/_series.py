"""Pieces of the downsampled series that every backend shares.

Each backend groups snapshots into buckets natively (SQL, an aggregation pipeline,
a loop); the window arithmetic and the assembly of the result live here once so
the backends cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

from ..clock import to_millis
from ..filters import SeriesWindow
from ..metrics import MetricSnapshot, SeriesBucket, Stat

__all__ = [
    "ENDPOINT_FIELDS",
    "SERIES_FIELDS",
    "assemble",
    "endpoint_matches",
    "python_series",
    "snapshot_values",
    "window_for",
]

SERIES_FIELDS = ("user_count", "current_rps", "current_fail_per_sec", "current_p50", "current_p95")
"""The snapshot figures a series carries, in the order backends return them."""

ENDPOINT_FIELDS = (
    "current_rps",
    "current_fail_per_sec",
    "median_response_time",
    "p95_response_time",
)
"""For one endpoint's series: the row's figures that fill SERIES_FIELDS[1:]
(the user count still comes from the snapshot)."""


def endpoint_matches(key: str) -> list[tuple[str, str]]:
    """The ``(method, name)`` pairs whose ``"METHOD name"`` key is ``key``.

    Locust methods hold no spaces, so a key splits at its first space; a row
    without a method is keyed by its name alone.
    """
    key = key.strip()
    pairs = [("", key)]
    if " " in key:
        method, name = key.split(" ", 1)
        pairs.append((method, name))
    return pairs


def snapshot_values(
    snapshot: MetricSnapshot, endpoint: str | None
) -> tuple[float | None, ...] | None:
    """The figures of SERIES_FIELDS in a snapshot, or of one endpoint's row in it."""
    if endpoint is None:
        return tuple(getattr(snapshot, f) for f in SERIES_FIELDS)
    pairs = endpoint_matches(endpoint)
    for row in snapshot.endpoints:
        if (row.method, row.name) in pairs:
            return (snapshot.user_count, *(getattr(row, f) for f in ENDPOINT_FIELDS))
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def window_for(
    start: datetime | None,
    end: datetime | None,
    first_ms: int | None,
    last_ms: int | None,
    buckets: int,
) -> SeriesWindow | None:
    """The bucket layout, or ``None`` when there is nothing to bucket.

    ``first_ms`` and ``last_ms`` are the first and last snapshot in the asked
    range; they stand in for a missing ``start`` or ``end``, and are not needed
    when both are given. The layout may widen the range to whole rollup cells
    (:meth:`SeriesWindow.laid_out`): read the snapshots of the layout's range.
    """
    if start is not None and end is not None:
        start_ms, end_ms = to_millis(start), to_millis(end)
    elif first_ms is None or last_ms is None:
        return None
    else:
        start_ms = to_millis(start) if start is not None else first_ms
        end_ms = to_millis(end) if end is not None else last_ms + 1
    if end_ms <= start_ms:
        return None
    return SeriesWindow.laid_out(start_ms, end_ms, buckets)


def from_millis(ms: int) -> datetime:
    """The UTC datetime of epoch milliseconds."""
    return _EPOCH + timedelta(milliseconds=ms)


def assemble(
    window: SeriesWindow,
    rows: Iterable[tuple[int, int, Sequence[float | None]]],
) -> list[SeriesBucket]:
    """Buckets from ``(index, samples, [min, avg, max] * len(SERIES_FIELDS))`` rows."""
    # Building the buckets is most of a series' cost once the backend reads
    # rollups, so this loop avoids per-value generators and datetime parsing.
    result = []
    step = timedelta(milliseconds=window.width_ms)
    origin = from_millis(window.start_ms)
    for index, samples, figures in sorted(rows, key=lambda r: r[0]):
        v = [None if x is None else float(x) for x in figures]
        begin = origin + step * int(index)
        stats = (Stat(v[0], v[1], v[2]), Stat(v[3], v[4], v[5]), Stat(v[6], v[7], v[8]))
        more = (Stat(v[9], v[10], v[11]), Stat(v[12], v[13], v[14]))
        result.append(SeriesBucket(begin, begin + step, int(samples), *stats, *more))
    return result


def python_series(
    window: SeriesWindow, points: Iterable[tuple[int, Sequence[float | None]]]
) -> list[SeriesBucket]:
    """The series computed in Python, for backends without a query language."""
    grouped: dict[int, list[Sequence[float | None]]] = {}
    for at_ms, values in points:
        if window.start_ms <= at_ms < window.end_ms:
            grouped.setdefault(window.index(at_ms), []).append(values)
    rows = []
    for index, members in grouped.items():
        figures: list[float | None] = []
        for i in range(len(SERIES_FIELDS)):
            present = [float(v[i]) for v in members if v[i] is not None]  # type: ignore[arg-type]
            if present:
                figures += [min(present), sum(present) / len(present), max(present)]
            else:
                figures += [None, None, None]
        rows.append((index, len(members), figures))
    return assemble(window, rows)
