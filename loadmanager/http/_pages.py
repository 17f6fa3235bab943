"""What each dashboard page shows: template contexts built from the Orchestrator.

Framework-neutral and free of HTML: ``dashboard.py`` renders these with the
Jinja2 templates. Every read goes through the Orchestrator with the caller's
tenants, so a foreign id is a NotFoundError here exactly as in the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import _units
from ..charts import comparison_charts, run_charts
from ..criteria import holds, live_figure
from ..grammar import render
from ..metrics import MetricSnapshot, SeriesBucket
from ..models import WINDOW_METRICS, LoadTest, LoadTestRun
from ..orchestrator import Orchestrator
from ..queries import TrendPoint
from ..summary import summarize

__all__ = ["compare_page", "run_live", "run_page", "test_page", "tests_page"]

Tenants = frozenset[str] | None

BUCKETS = 200
ENDPOINT_CHARTS = 8


def sparkline(points: Sequence[TrendPoint], width: int = 120, height: int = 28) -> str | None:
    """The points of an SVG polyline of the p95 trend, or ``None`` with under two runs."""
    values = [p.p95 for p in points if p.p95 is not None]
    if len(values) < 2:
        return None
    top, bottom = max(values), min(values)
    span = (top - bottom) or 1.0
    step = width / (len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{height - 2 - (v - bottom) / span * (height - 4):.1f}"
        for i, v in enumerate(values)
    )


def tests_page(orch: Orchestrator, tenants: Tenants, filters: Mapping[str, str]) -> dict[str, Any]:
    """The load tests, filtered, each with its last verdict and a p95 sparkline."""
    tags = [t.strip() for t in filters.get("tags", "").split(",") if t.strip()]
    found = orch.list_load_tests(
        tenant_id=filters.get("tenant") or None,
        env_id=filters.get("env") or None,
        tags=tags or None,
        name_contains=filters.get("name") or None,
        limit=200,
        tenants=tenants,
    )
    rows = []
    for test in found:
        points = orch.trend(test.id, statuses=None, limit=50, tenants=tenants)
        last = points[-1] if points else None
        rows.append(
            {
                "test": test,
                "last": last,
                "verdict": last.verdict.value if last and last.verdict else None,
                "status": last.status if last else None,
                "sparkline": sparkline(points),
            }
        )
    return {"rows": rows, "filters": dict(filters)}


def _criteria_rows(test: LoadTest) -> list[dict[str, str]]:
    return [{"text": render(t)} for t in test.thresholds]


def test_page(orch: Orchestrator, tenants: Tenants, test_id: str) -> dict[str, Any]:
    """One test: definition, criteria, baseline, runs, trend, and the start form."""
    test = orch.get_load_test(test_id, tenants=tenants)
    runs = orch.list_runs(load_test_id=test.id, limit=200, tenants=tenants)
    points = orch.trend(test.id, statuses=None, limit=200, tenants=tenants)
    trend_chart = {
        "id": "trend",
        "title": "p95 (ms, left) and requests/s (right) of each run",
        "x": [p.started_at.timestamp() for p in points if p.started_at is not None],
        "t0": 0.0,
        "xmode": "date",
        "markers": [],
        "axes": {
            "ms": {"label": "p95 (ms)", "side": "left"},
            "req": {"label": "requests/s", "side": "right"},
        },
        "series": [
            {"label": "p95", "scale": "ms", "color": "#ff7f0e", "values": [p.p95 for p in points]},
            {"label": "rps", "scale": "req", "color": "#2ca02c", "values": [p.rps for p in points]},
        ],
    }
    return {
        "test": test,
        "runs": list(reversed(runs)),
        "criteria": _criteria_rows(test),
        "charts": [trend_chart] if len(points) >= 1 else [],
        "definition": test.overview(),
    }


def _endpoint_series(
    orch: Orchestrator, run: LoadTestRun, latest: MetricSnapshot | None, tenants: Tenants
) -> dict[str, list[SeriesBucket]]:
    """The busiest endpoints' series: by Locust's final figures, or the latest snapshot's."""
    keys: list[str]
    if run.summary is not None:
        rows = sorted(run.summary.endpoints, key=lambda e: -e.num_requests)
        keys = [r.key for r in rows[:ENDPOINT_CHARTS]]
    else:
        live = sorted(latest.endpoints, key=lambda e: -e.num_requests) if latest else []
        keys = [r.key for r in live if r.method][:ENDPOINT_CHARTS]
    return {k: orch.series(run.id, BUCKETS, endpoint=k, tenants=tenants) for k in keys}


def _live_criteria(run: LoadTestRun, latest: MetricSnapshot | None) -> list[dict[str, str]]:
    """Each criterion's state now: the verdict's when the run has ended, else the
    latest snapshot's figure against the limit (final-only metrics wait)."""
    if run.verdict is not None:
        return [
            {
                "criterion": r.criterion,
                "state": r.outcome.value,
                "observed": r.observed_text,
                "limit": r.threshold_text,
                "why": r.why,
            }
            for r in run.verdict.results
        ]
    rows = []
    for t in run.parameters.thresholds:
        text = render(t)
        observed = live_figure(latest, t) if latest is not None else None
        limit = t.limit(None) if t.baseline is None else None
        if t.metric not in WINDOW_METRICS:
            state = "judged at the end"  # a final figure, such as p99: Locust has it at the end
        elif observed is None or limit is None:
            state = "no figure yet" if observed is None else "watching"
        else:
            state = "holding" if holds(t.op, observed, limit) else "breaking"
        rows.append(
            {
                "criterion": text,
                "state": state,
                "observed": _units.show(t.metric, observed),
                "limit": "-" if limit is None else f"{t.op} {_units.show(t.metric, limit)}",
                "why": "",
            }
        )
    return rows


def run_live(orch: Orchestrator, tenants: Tenants, run_id: str) -> dict[str, Any]:
    """What the run page redraws every poll interval."""
    run = orch.get_run(run_id, tenants=tenants)
    test = orch.load_test_of(run, tenants=tenants)
    series = orch.series(run.id, BUCKETS, tenants=tenants)
    summary = summarize(run, test, failures=50)
    latest = orch.latest_snapshot(run.id, tenants=tenants)
    live_rows: list[Any] = []
    if run.summary is None and latest is not None:
        live_rows = [
            (
                r.key,
                f"{r.num_requests:,}",
                f"{r.num_failures:,}",
                _units.show("rps", r.current_rps),
                _units.show("median", r.median_response_time),
                _units.show("p95", r.p95_response_time),
            )
            for r in latest.endpoints
        ]
    return {
        "run": run,
        "test": test,
        "status": run.status.value,
        "reason": run.failure_reason or "",
        "active": run.status.is_active,
        "stoppable": run.status.value == "running",
        "charts": run_charts(run, series, _endpoint_series(orch, run, latest, tenants)),
        "summary": summary,
        "endpoint_section": next((s for s in summary.sections if s.title == "Endpoints"), None),
        "failure_sections": [
            s for s in summary.sections if s.title.startswith(("Failures", "Exceptions"))
        ],
        "live_rows": live_rows,
        "criteria": _live_criteria(run, latest),
        "poll_seconds": run.parameters.poll_interval,
    }


def run_page(orch: Orchestrator, tenants: Tenants, run_id: str) -> dict[str, Any]:
    """One run: everything the live part holds, plus the ids a page links to."""
    context = run_live(orch, tenants, run_id)
    run, test = context["run"], context["test"]
    baseline = test.baseline_run_id if test is not None else None
    context["is_baseline"] = baseline == run.id
    context["can_be_baseline"] = test is not None and run.summary is not None
    others = [
        r
        for r in orch.list_runs(load_test_id=run.load_test_id, limit=200, tenants=tenants)
        if r.id != run.id and r.summary is not None
    ]
    context["compare_with"] = list(reversed(others))[:20]
    return context


def compare_page(
    orch: Orchestrator, tenants: Tenants, run_id: str, baseline_id: str
) -> dict[str, Any]:
    """Two runs side by side: the figures with regression flags, overlaid charts."""
    run = orch.get_run(run_id, tenants=tenants)
    baseline = orch.get_run(baseline_id, tenants=tenants)
    comparison = orch.compare(run.id, baseline.id, tenants=tenants)
    keys = ("endpoint", "figure", "baseline", "run", "change", "regression")
    rows = [dict(zip(keys, row, strict=True)) for row in comparison.rows()]
    charts = comparison_charts(
        run,
        orch.series(run.id, BUCKETS, tenants=tenants),
        baseline,
        orch.series(baseline.id, BUCKETS, tenants=tenants),
    )
    return {
        "run": run,
        "baseline": baseline,
        "comparison": comparison,
        "rows": rows,
        "regressions": sum(1 for r in rows if r["regression"]),
        "charts": charts,
        "run_summary": summarize(run),
        "baseline_summary": summarize(baseline),
    }
