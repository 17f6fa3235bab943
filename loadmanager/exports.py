"""Flat rows of series, summaries, trends and comparisons: CSV without extras,
pandas DataFrames with ``loadmanager[pandas]``.

One function flattens each kind of result; CSV and DataFrames both use it, so the
two exports always have the same columns.
"""

from __future__ import annotations

import csv
import importlib
import io
from collections.abc import Sequence
from typing import Any

import attrs

from .comparison import Comparison
from .metrics import Failure, RunSummary, SeriesBucket
from .queries import TrendPoint

__all__ = ["rows", "to_csv", "to_dataframe"]

Exportable = (
    Sequence[SeriesBucket] | RunSummary | Sequence[TrendPoint] | Comparison | Sequence[Failure]
)


def _series_rows(buckets: Sequence[SeriesBucket]) -> list[dict[str, Any]]:
    out = []
    for b in buckets:
        row: dict[str, Any] = {"start": b.start, "end": b.end, "samples": b.samples}
        for field in (
            "user_count",
            "current_rps",
            "current_fail_per_sec",
            "current_p50",
            "current_p95",
        ):
            stat = getattr(b, field)
            row |= {f"{field}_min": stat.min, f"{field}_avg": stat.avg, f"{field}_max": stat.max}
        out.append(row)
    return out


def _summary_rows(summary: RunSummary) -> list[dict[str, Any]]:
    out = []
    for r in (*summary.endpoints, summary.aggregated):
        row: dict[str, Any] = {
            "endpoint": r.key,
            "method": r.method,
            "name": r.name,
            "requests": r.num_requests,
            "failures": r.num_failures,
            "error_rate": r.error_rate,
            "rps": r.requests_per_sec,
            "fail_per_sec": r.failures_per_sec,
            "avg": r.avg_response_time,
            "min": r.min_response_time,
            "max": r.max_response_time,
            "median": r.median_response_time,
        }
        row |= attrs.asdict(r.percentiles)
        out.append(row)
    return out


def _comparison_rows(comparison: Comparison) -> list[dict[str, Any]]:
    out = []
    for e in (*comparison.endpoints, comparison.aggregated):
        for f in e.figures:
            out.append(
                {
                    "endpoint": e.key,
                    "figure": f.figure,
                    "baseline": f.baseline,
                    "run": f.current,
                    "delta": f.delta,
                    "delta_pct": f.delta_pct,
                    "regression": f.regression,
                }
            )
    return out


def rows(result: Exportable) -> list[dict[str, Any]]:
    """Flat dicts, one per row, of a series, summary, trend, comparison or failures."""
    if isinstance(result, RunSummary):
        return _summary_rows(result)
    if isinstance(result, Comparison):
        return _comparison_rows(result)
    items = list(result)
    if not items:
        return []
    if isinstance(items[0], SeriesBucket):
        return _series_rows(items)  # type: ignore[arg-type]
    if isinstance(items[0], Failure):
        failures: list[Failure] = items  # type: ignore[assignment]
        return [
            {"method": f.method, "name": f.name, "error": f.error, "occurrences": f.occurrences}
            for f in failures
        ]
    if isinstance(items[0], TrendPoint):
        points: list[TrendPoint] = items  # type: ignore[assignment]
        return [
            {k: (v.value if hasattr(v, "value") else v) for k, v in attrs.asdict(p).items()}
            for p in points
        ]
    raise TypeError(f"cannot export {type(items[0]).__name__} rows")


def to_csv(result: Exportable) -> str:
    """CSV text with a header row (no extra needed)."""
    flat = rows(result)
    if not flat:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(flat[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()


def to_dataframe(result: Exportable) -> Any:
    """A pandas DataFrame of a series, summary, trend or comparison.

    Needs ``pip install 'loadmanager[pandas]'``.
    """
    try:
        pandas = importlib.import_module("pandas")  # optional; untyped for mypy
    except ImportError as exc:
        raise ImportError("to_dataframe needs pandas: pip install 'loadmanager[pandas]'") from exc
    return pandas.DataFrame(rows(result))
