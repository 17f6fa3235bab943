"""Questions asked across runs: trends of a load test, and per-endpoint figures."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

import attrs

from . import _html
from .criteria import freeze_baseline
from .errors import NotFoundError
from .filters import MAX_LIMIT, RunFilter
from .models import Baseline, LoadTest, LoadTestRun
from .status import RunStatus
from .verdicts import Outcome

__all__ = [
    "RunReader",
    "TrendPoint",
    "frozen_baseline",
    "resolve_baseline",
    "trend_points",
]


class RunReader(Protocol):
    """The two reads of a run repository that the questions here need."""

    def get(self, run_id: str) -> LoadTestRun: ...

    def find(self, filter: RunFilter) -> list[LoadTestRun]: ...  # noqa: A002


def resolve_baseline(
    runs: RunReader, test: LoadTest, *, exclude: str | None = None
) -> LoadTestRun | None:
    """The run a test's relative criteria compare with.

    The one set with ``set_baseline``; without one, the most recent finished run
    of the same test whose verdict passed (``exclude`` is never chosen).
    """
    if test.baseline_run_id is not None and test.baseline_run_id != exclude:
        try:
            return runs.get(test.baseline_run_id)
        except NotFoundError:
            return None
    finished = runs.find(
        RunFilter(load_test_id=test.id, statuses=[RunStatus.FINISHED], limit=MAX_LIMIT)
    )
    passed = [
        r
        for r in finished
        if r.id != exclude and r.summary is not None and r.verdict is not None and r.verdict.passed
    ]
    return max(passed, key=lambda r: (r.started_at or r.audit.created_at, r.id), default=None)


def frozen_baseline(runs: RunReader, test: LoadTest) -> Baseline | None:
    """The baseline figures a new run of ``test`` carries, if its criteria need any."""
    if not any(t.baseline is not None for t in test.thresholds):
        return None
    run = resolve_baseline(runs, test)
    if run is None:
        return None
    return freeze_baseline(test.thresholds, run.id, run.summary, run.parameters.target_users)


@attrs.frozen
class TrendPoint:
    """One ended run of a load test, reduced to the figures a trend plots.

    Figures come from the run's summary (Locust's own final figures) and are
    ``None`` for a run that ended without one (a failed run).
    """

    run_id: str
    started_at: datetime | None
    status: str
    target_users: int
    requests: int | None
    rps: float | None
    error_rate: float | None
    median: float | None
    p95: float | None
    p99: float | None
    verdict: Outcome | None

    @classmethod
    def of(cls, run: LoadTestRun) -> TrendPoint:
        """The trend point of one run."""
        agg = run.summary.aggregated if run.summary is not None else None
        return cls(
            run_id=run.id,
            started_at=run.started_at,
            status=run.status.value,
            target_users=run.parameters.target_users,
            requests=agg.num_requests if agg else None,
            rps=agg.requests_per_sec if agg else None,
            error_rate=agg.error_rate if agg else None,
            median=agg.median_response_time if agg else None,
            p95=agg.percentiles.p95 if agg else None,
            p99=agg.percentiles.p99 if agg else None,
            verdict=None if run.verdict is None else run.verdict.outcome,
        )


def trend_points(runs: Iterable[LoadTestRun]) -> list[TrendPoint]:
    """Trend points of the runs that started, in start order."""
    started = [r for r in runs if r.started_at is not None]
    started.sort(key=lambda r: (r.started_at, r.id))
    return [TrendPoint.of(r) for r in started]


def trend_html(points: list[TrendPoint]) -> str:
    """An HTML table of a trend, for notebooks."""
    rows = [
        [
            p.run_id[:12],
            str(p.started_at)[:19],
            p.status,
            p.target_users,
            _html.num(p.rps),
            _html.num(None if p.error_rate is None else 100 * p.error_rate, digits=2),
            _html.num(p.p95),
            "-" if p.verdict is None else p.verdict.value,
        ]
        for p in points
    ]
    headers = ["run", "started", "status", "users", "rps", "error %", "p95 ms", "verdict"]
    return _html.table(headers, rows)
