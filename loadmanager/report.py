"""A self-contained HTML report of one run: open it from disk, no network needed.

The charts are inline SVG drawn here, so the report needs no plotting library.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from . import _html
from .errors import NotFoundError
from .metrics import SeriesBucket, exceptions_html, failures_html
from .models import LoadTest, LoadTestRun

__all__ = ["ReportSource", "render_report", "write_report", "write_run_report"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:1.5em}
.passed{color:#1a7f37} .failed{color:#cf222e} .not_evaluated{color:#9a6700}
svg{background:#fafafa;border:1px solid #ddd}
"""


def _svg_chart(
    series: Sequence[SeriesBucket],
    lines: Sequence[tuple[str, str, str]],
    title: str,
    *,
    own_scales: bool = False,
) -> str:
    """An inline SVG line chart; ``lines`` are (attribute, label, colour).

    With ``own_scales`` each line is scaled to its own maximum, named in the
    legend: failures per second drawn on the scale of requests per second would
    lie flat on zero. Lines of one unit (p50 and p95) share a scale.
    """
    width, height, pad = 720, 180, 36
    if not series:
        return "<p>(no snapshots)</p>"
    every = [getattr(b, attr).avg for b in series for attr, _, _ in lines]
    shared_top = max([v for v in every if v is not None] or [0.0]) or 1.0
    t0, t1 = series[0].start, series[-1].start
    span = max((t1 - t0).total_seconds(), 1e-9)
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="{_html.esc(title)}">']
    heading = title if own_scales else f"{title} (max {shared_top:.4g})"
    parts.append(f'<text x="{pad}" y="14" font-size="12">{_html.esc(heading)}</text>')
    for n, (attr, label, colour) in enumerate(lines):
        values = [getattr(b, attr).avg for b in series]
        top = shared_top
        if own_scales:
            top = max([v for v in values if v is not None] or [0.0]) or 1.0
        points = []
        for b, v in zip(series, values, strict=True):
            if v is None:
                continue
            x = pad + (width - 2 * pad) * (b.start - t0).total_seconds() / span
            y = height - pad + 10 - (height - pad - 10) * v / top
            points.append(f"{x:.1f},{y:.1f}")
        drawn = " ".join(points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{drawn}"/>')
        parts.append(
            f'<text x="{width - pad - 250 + 130 * n}" y="14" font-size="11" fill="{colour}">'
            f"{_html.esc(label)}{f' (max {top:.4g})' if own_scales else ''}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_report(run: LoadTestRun, test: LoadTest | None, series: Sequence[SeriesBucket]) -> str:
    """The report as one HTML string: parameters, verdict, summary, charts."""
    title = f"Load test run {run.id}" + (f" — {test.name}" if test else "")
    verdict = run.verdict
    verdict_html = (
        "<p>No thresholds: no verdict.</p>"
        if verdict is None
        else f'<p class="{verdict.outcome.value}"><b>Verdict: {verdict.outcome.value}</b></p>'
        + verdict.results_html()
    )
    if run.saturated:
        verdict_html += (
            '<p class="failed"><b>Load generator saturated</b>: a worker passed 90 % CPU '
            "during the run, so its figures may include the generator's own queueing.</p>"
        )
    failures_table = (
        failures_html(run.failures, heading=False)
        if run.failures
        else "<p>No failures recorded.</p>"
    )
    if run.exceptions:
        failures_table += exceptions_html(run.exceptions)
    summary_html = (
        run.summary._repr_html_()
        if run.summary is not None
        else "<p>No summary (the run has not ended, or failed).</p>"
    )
    charts = "".join(
        [
            _svg_chart(series, [("user_count", "users", "#1f77b4")], "users"),
            _svg_chart(
                series,
                [("current_rps", "rps", "#2ca02c"), ("current_fail_per_sec", "fail/s", "#d62728")],
                "requests and failures per second",
                own_scales=True,
            ),
            _svg_chart(
                series,
                [("current_p50", "p50", "#9467bd"), ("current_p95", "p95", "#ff7f0e")],
                "response time (ms)",
            ),
        ]
    )
    body = "".join(
        [
            f"<h1>{_html.esc(title)}</h1>",
            _html.kv(run.overview()),
            "<h2>Verdict</h2>",
            verdict_html,
            "<h2>Summary (Locust's final figures)</h2>",
            summary_html,
            "<h2>Failures</h2>",
            failures_table,
            "<h2>Over time</h2>",
            charts,
        ]
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{_html.esc(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def write_report(
    path: str | os.PathLike[str],
    run: LoadTestRun,
    test: LoadTest | None,
    series: Sequence[SeriesBucket],
) -> Path:
    """Write :func:`render_report` to ``path`` and return it."""
    target = Path(path)
    target.write_text(render_report(run, test, series), encoding="utf-8")
    return target


class ReportSource(Protocol):
    """What :func:`write_run_report` reads a run from (an Orchestrator has it all)."""

    def get_run(self, run_id: str) -> LoadTestRun: ...

    def get_load_test(self, load_test_id: str) -> LoadTest: ...

    def series(self, run_id: str, buckets: int = 100) -> list[SeriesBucket]: ...


def write_run_report(
    source: ReportSource, run_id: str, path: str | os.PathLike[str], *, buckets: int = 200
) -> Path:
    """Write the HTML report of run ``run_id``, read from ``source``, to ``path``.

    ``lm.write_run_report(orch, run.id, "run.html")``; the run's load test is
    left out of the report if it was deleted.
    """
    run = source.get_run(run_id)
    try:
        test: LoadTest | None = source.get_load_test(run.load_test_id)
    except NotFoundError:
        test = None
    return write_report(path, run, test, source.series(run.id, buckets))
