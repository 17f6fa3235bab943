"""Self-contained HTML reports of a run, or of two runs compared: one file
that opens from disk with no network (uPlot and the charts are inlined).

``lm.write_report(orch, run_id, "run.html")`` and
``lm.write_comparison_report(orch, run_id, baseline_run_id, "compare.html")``
read what they need from an Orchestrator; :func:`render_report` and
:func:`render_comparison_report` take the data itself.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, overload

from . import _html
from .charts import asset, comparison_charts, run_charts, spec_json
from .comparison import Comparison
from .metrics import SeriesBucket
from .models import LoadTest, LoadTestRun
from .summary import summarize

__all__ = [
    "ReportSource",
    "render_comparison_report",
    "render_report",
    "write_comparison_report",
    "write_report",
    "write_run_report",
]

ENDPOINT_CHARTS = 8
"""Endpoints drawn in the per-endpoint chart: the busiest, so the lines stay readable."""

_STYLE = """
:root{--lm-ink:#1f2328;--lm-bg:#fff;--lm-grid:#e4e4e4;--lm-muted:#59636e;color-scheme:light dark}
@media (prefers-color-scheme:dark){
 :root{--lm-ink:#e6edf3;--lm-bg:#0d1117;--lm-grid:#30363d;--lm-muted:#9198a1}
 table td,table th{border-color:#30363d!important}}
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;
 color:var(--lm-ink);background:var(--lm-bg)}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid var(--lm-grid)}
h4{font-size:1.05em} h5{font-size:.95em;margin:1.2em 0 .4em}
table{max-width:100%;overflow-x:auto;display:block}
figure.lm-chart{margin:1em 0;min-width:320px}
.u-title{font-size:14px!important;font-weight:600} .u-legend{font-size:12px}
.lm-note{color:var(--lm-muted);font-size:.9em}
"""


def _page(title: str, body: str, charts: Sequence[Mapping[str, Any]]) -> str:
    script = ""
    if charts:
        script = (
            f"<style>{asset('uplot/uPlot.min.css')}</style>"
            f"<script>{asset('uplot/uPlot.iife.min.js')}</script>"
            f"<script>{asset('charts.js')}</script>"
            f"<script>LMCharts.draw(document.getElementById('charts'), {spec_json(charts)});"
            "</script>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_html.esc(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main>{script}</body></html>"
    )


_CHARTS_NOTE = (
    '<div id="charts"></div><noscript>The charts need JavaScript (inlined here, no '
    "network).</noscript><p class='lm-note'>Drag across a chart to zoom, double-click "
    "to reset. Gaps are moments with no snapshot; dashed red lines mark when a criterion "
    "broke or the run was aborted.</p>"
)


def render_report(
    run: LoadTestRun,
    test: LoadTest | None,
    series: Sequence[SeriesBucket],
    endpoints: Mapping[str, Sequence[SeriesBucket]] | None = None,
) -> str:
    """One run's report as an HTML string: the summary, then charts over time.

    Args:
        series: The run's aggregated series.
        endpoints: Each endpoint's series by ``"METHOD name"``, for the
            per-endpoint response-time chart.
    """
    title = f"Load test run {run.id}" + (f" — {test.name}" if test else "")
    body = "".join(
        [
            f"<h1>{_html.esc(title)}</h1>",
            "<h2>Summary</h2>",
            summarize(run, test, failures=100).html(title=False),
            "" if run.failures else "<p class='lm-note'>No failures recorded.</p>",
            "<h2>Over time</h2>",
            _CHARTS_NOTE,
        ]
    )
    return _page(title, body, run_charts(run, series, endpoints))


def render_comparison_report(
    run: LoadTestRun,
    baseline: LoadTestRun,
    comparison: Comparison,
    run_series: Sequence[SeriesBucket],
    baseline_series: Sequence[SeriesBucket],
) -> str:
    """Two runs side by side: the comparison table with regression flags,
    both summaries, and their p95 and requests/s overlaid from their start."""
    title = f"Run {run.id[:8]} compared with baseline {baseline.id[:8]}"
    flagged = [
        f"{e.key} {f.figure} {f.change}"
        for e in (*comparison.endpoints, comparison.aggregated)
        for f in e.figures
        if f.regression
    ]
    headline = (
        f'<p style="color:#cf222e"><b>{len(flagged)} regression(s)</b>: '
        f"{_html.esc('; '.join(flagged))}</p>"
        if flagged
        else '<p style="color:#1a7f37"><b>No regression</b> within the tolerances.</p>'
    )
    body = "".join(
        [
            f"<h1>{_html.esc(title)}</h1>",
            headline,
            comparison._repr_html_(),
            "<h2>Over time</h2>",
            _CHARTS_NOTE,
            "<h2>The run</h2>",
            summarize(run)._repr_html_(),
            "<h2>The baseline</h2>",
            summarize(baseline)._repr_html_(),
        ]
    )
    return _page(title, body, comparison_charts(run, run_series, baseline, baseline_series))


class ReportSource(Protocol):
    """Where reports read runs from (an Orchestrator has it all)."""

    def get_run(self, run_id: str) -> LoadTestRun: ...

    def load_test_of(self, run: LoadTestRun) -> LoadTest | None: ...

    def series(
        self, run_id: str, buckets: int = 100, *, endpoint: str | None = None
    ) -> list[SeriesBucket]: ...

    def compare(self, run_id: str, baseline_run_id: str) -> Comparison: ...


def _endpoint_series(
    source: ReportSource, run: LoadTestRun, buckets: int
) -> dict[str, list[SeriesBucket]]:
    if run.summary is None:
        return {}
    busiest = sorted(run.summary.endpoints, key=lambda e: -e.num_requests)[:ENDPOINT_CHARTS]
    return {e.key: source.series(run.id, buckets, endpoint=e.key) for e in busiest}


def _write(path: str | os.PathLike[str], html: str) -> Path:
    target = Path(path)
    target.write_text(html, encoding="utf-8")
    return target


@overload
def write_report(
    source: ReportSource, run_id: str, path: str | os.PathLike[str], *, buckets: int = 200
) -> Path: ...


@overload
def write_report(
    source: str | os.PathLike[str],
    run_id: LoadTestRun,
    path: LoadTest | None,
    series: Sequence[SeriesBucket],
    /,
) -> Path: ...


def write_report(
    source: Any, run_id: Any, path: Any = None, *args: Any, buckets: int = 200
) -> Path:
    """Write the HTML report of run ``run_id``, read from ``source``, to ``path``.

    ``lm.write_report(orch, run.id, "run.html")``. The run's load test is left
    out of the report if it was deleted. Returns the path written.

    The 0.1 form ``write_report(path, run, test, series)`` still works, with a
    ``DeprecationWarning``; it goes in the next release.
    """
    if isinstance(run_id, LoadTestRun):
        warnings.warn(
            "write_report(path, run, test, series) is deprecated: use "
            "write_report(orch, run_id, path), or render_report(run, test, series)",
            DeprecationWarning,
            stacklevel=2,
        )
        series = args[0] if args else []
        return _write(source, render_report(run_id, path, series))
    run = source.get_run(run_id)
    test = source.load_test_of(run)
    series = source.series(run.id, buckets)
    html = render_report(run, test, series, _endpoint_series(source, run, buckets))
    return _write(path, html)


def write_run_report(
    source: ReportSource, run_id: str, path: str | os.PathLike[str], *, buckets: int = 200
) -> Path:
    """Deprecated spelling of :func:`write_report` (same arguments, same order)."""
    warnings.warn(
        "write_run_report() is deprecated: use write_report(orch, run_id, path)",
        DeprecationWarning,
        stacklevel=2,
    )
    return write_report(source, run_id, path, buckets=buckets)


def write_comparison_report(
    source: ReportSource,
    run_id: str,
    baseline_run_id: str,
    path: str | os.PathLike[str],
    *,
    buckets: int = 200,
) -> Path:
    """Write the comparison report of ``run_id`` against ``baseline_run_id`` to ``path``."""
    run, baseline = source.get_run(run_id), source.get_run(baseline_run_id)
    comparison = source.compare(run.id, baseline.id)
    html = render_comparison_report(
        run,
        baseline,
        comparison,
        source.series(run.id, buckets),
        source.series(baseline.id, buckets),
    )
    return _write(path, html)
