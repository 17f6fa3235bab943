"""Chart specifications: a run's series as data a browser draws with uPlot.

Pure data, no HTML: the report inlines these specs next to the vendored uPlot
(``loadmanager/_assets``) and ``charts.js`` draws them, with axes in their
units, wall-clock and elapsed-time labels, gaps drawn as gaps and markers for
the moments a criterion broke or the run was stopped.

Why uPlot: a 50 KB, MIT-licensed time-series library with no dependencies,
fast with hundreds of thousands of points, and small enough to inline so a
report stays one file that opens on an air-gapped laptop. The matplotlib
pictures of :mod:`loadmanager.plotting` are for notebooks and PNG files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import resources
from typing import Any

from .metrics import SeriesBucket
from .models import LoadTestRun
from .status import RunStatus

__all__ = ["asset", "comparison_charts", "run_charts", "spec_json"]

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#d62728",
)
RPS, FAILURES, USERS = "#2ca02c", "#d62728", "#1f77b4"
P50, P95 = "#9467bd", "#ff7f0e"

Values = list[float | None]


def asset(name: str) -> str:
    """The text of a file shipped in ``loadmanager/_assets`` (uPlot, charts.js)."""
    return (
        resources.files("loadmanager")
        .joinpath("_assets")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _grid(buckets: Sequence[Sequence[SeriesBucket]], poll_interval: float) -> list[float]:
    """The x values (epoch seconds) of every bucket, with one null slot per gap.

    A bucket with no snapshot is left out by the queries. Points are expected
    one bucket width apart, or one poll interval when buckets are narrower than
    that; where two are further apart than one and a half of that, a point with
    no values goes between them, so the line breaks instead of bridging a gap.
    """
    starts = sorted({_ts(b.start) for series in buckets for b in series})
    return _with_gaps(starts, _step(buckets, poll_interval))


def _step(buckets: Sequence[Sequence[SeriesBucket]], poll_interval: float) -> float:
    widths = [(_ts(b.end) - _ts(b.start)) for series in buckets for b in series]
    return max(min((w for w in widths if w > 0), default=0.0), poll_interval)


def _with_gaps(xs: Sequence[float], step: float) -> list[float]:
    grid: list[float] = []
    for x in xs:
        if grid and x - grid[-1] > 1.5 * step:
            grid.append(grid[-1] + step)
        grid.append(x)
    return grid


def _column(grid: Sequence[float], series: Sequence[SeriesBucket], field: str) -> Values:
    by_start = {_ts(b.start): getattr(b, field).avg for b in series}
    values = [by_start.get(t) for t in grid]
    return [None if v is None or math.isnan(v) else v for v in values]


def _markers(run: LoadTestRun) -> list[dict[str, Any]]:
    marks: list[dict[str, Any]] = []
    if run.verdict is not None:
        for result in run.verdict.results:
            if result.at is not None and result.outcome.value == "failed":
                marks.append(
                    {"t": _ts(result.at), "label": f"✗ {result.criterion}", "kind": "broke"}
                )
    if run.status in (RunStatus.STOPPED, RunStatus.FAILED) and run.ended_at is not None:
        reason = run.failure_reason or run.status.value
        kind = "abort" if reason.startswith("aborted") else "stop"
        label = "aborted" if kind == "abort" else f"{run.status.value}: {reason}"
        marks.append({"t": _ts(run.ended_at), "label": label[:80], "kind": kind})
    return marks


def _line(label: str, scale: str, color: str, values: Values, **extra: Any) -> dict[str, Any]:
    return {"label": label, "scale": scale, "color": color, "values": values, **extra}


def run_charts(
    run: LoadTestRun,
    series: Sequence[SeriesBucket],
    endpoints: Mapping[str, Sequence[SeriesBucket]] | None = None,
) -> list[dict[str, Any]]:
    """The charts of one run: load, aggregated response times, per-endpoint p95.

    Args:
        series: The run's aggregated series (``orch.series(run_id)``).
        endpoints: Each endpoint's own series, by ``"METHOD name"``.
    """
    endpoints = dict(endpoints or {})
    grid = _grid([series, *endpoints.values()], run.parameters.poll_interval)
    t0 = _ts(run.started_at) if run.started_at else (grid[0] if grid else 0.0)
    markers = _markers(run)
    base = {"x": grid, "t0": t0, "xmode": "time", "markers": markers}
    charts = [
        {
            **base,
            "id": "load",
            "title": "Load: requests/s and failures/s (left), users (right)",
            "axes": {
                "req": {"label": "requests/s", "side": "left"},
                "users": {"label": "users", "side": "right", "whole": True},
            },
            "series": [
                _line("requests/s", "req", RPS, _column(grid, series, "current_rps")),
                _line(
                    "failures/s",
                    "req",
                    FAILURES,
                    _column(grid, series, "current_fail_per_sec"),
                    fill=True,
                ),
                _line("users", "users", USERS, _column(grid, series, "user_count"), step=True),
            ],
        },
        {
            **base,
            "id": "latency",
            "title": "Response time, all endpoints (ms)",
            "axes": {"ms": {"label": "response time (ms)", "side": "left"}},
            "series": [
                _line("p50", "ms", P50, _column(grid, series, "current_p50")),
                _line("p95", "ms", P95, _column(grid, series, "current_p95")),
            ],
        },
    ]
    if endpoints:
        lines = []
        for n, (key, rows) in enumerate(sorted(endpoints.items())):
            color = PALETTE[n % len(PALETTE)]
            lines.append(_line(f"{key} p95", "ms", color, _column(grid, rows, "current_p95")))
            lines.append(
                _line(f"{key} p50", "ms", color, _column(grid, rows, "current_p50"), dash=True)
            )
        charts.append(
            {
                **base,
                "id": "endpoints",
                "title": "Response time per endpoint: p95 solid, p50 dashed (ms)",
                "axes": {"ms": {"label": "response time (ms)", "side": "left"}},
                "series": lines,
            }
        )
    return charts


def _elapsed(
    run: LoadTestRun, series: Sequence[SeriesBucket], step: float
) -> dict[float, SeriesBucket]:
    """Buckets by their time since the run began, rounded to ``step``: two runs
    polled at different phases then share x values, and their lines stay lines."""
    if not series:
        return {}
    t0 = _ts(run.started_at) if run.started_at else _ts(series[0].start)
    step = step or 1e-3
    return {round(round((_ts(b.start) - t0) / step) * step, 3): b for b in series}


def comparison_charts(
    run: LoadTestRun,
    run_series: Sequence[SeriesBucket],
    baseline: LoadTestRun,
    baseline_series: Sequence[SeriesBucket],
) -> list[dict[str, Any]]:
    """Two runs overlaid on elapsed time: p95 and requests/s, baseline in grey."""
    poll = max(run.parameters.poll_interval, baseline.parameters.poll_interval)
    step = _step([run_series, baseline_series], poll)
    mine, theirs = _elapsed(run, run_series, step), _elapsed(baseline, baseline_series, step)
    grid = _with_gaps(sorted(set(mine) | set(theirs)), step)

    def column(rows: dict[float, SeriesBucket], field: str) -> Values:
        return [getattr(rows[t], field).avg if t in rows else None for t in grid]

    base = {"x": grid, "t0": 0.0, "xmode": "elapsed", "markers": []}
    short_run, short_base = run.id[:8], baseline.id[:8]
    return [
        {
            **base,
            "id": "compare-p95",
            "title": "p95 response time (ms), both runs from their start",
            "axes": {"ms": {"label": "p95 (ms)", "side": "left"}},
            "series": [
                _line(f"baseline {short_base}", "ms", "#7f7f7f", column(theirs, "current_p95")),
                _line(f"run {short_run}", "ms", P95, column(mine, "current_p95")),
            ],
        },
        {
            **base,
            "id": "compare-rps",
            "title": "Requests/s, both runs from their start",
            "axes": {"req": {"label": "requests/s", "side": "left"}},
            "series": [
                _line(f"baseline {short_base}", "req", "#7f7f7f", column(theirs, "current_rps")),
                _line(f"run {short_run}", "req", RPS, column(mine, "current_rps")),
            ],
        },
    ]


def spec_json(charts: Sequence[Mapping[str, Any]]) -> str:
    """The charts as JSON that is safe inside an HTML ``<script>`` element."""
    text = json.dumps(list(charts), separators=(",", ":"), allow_nan=False)
    # "</script>" or "<!--" inside an endpoint name must not end the element.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
