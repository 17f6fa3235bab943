"""Judging runs against their criteria: final figures, live windows, baselines.

Final criteria use Locust's own cumulative figures from the run summary, never
averages of snapshot percentiles. Windowed criteria use each snapshot's live
figures (current rps, failures/s and current percentiles; per endpoint, the
endpoint's own row). Both are computed from stored data alone, so any replica can
judge a run it took over, and the same data always gives the same verdict.

Percentile criteria (``p50``, ``median``, ``p95``) are exact when the snapshots
carry histogram changes (loadmanager's Locust plugin): a ``for`` window judges
each moment's percentile over Locust's own live window (:data:`LIVE_WINDOW`),
per endpoint as for the aggregate, and an ``over`` window judges the percentile
of every request in the window. Without the plugin, per-endpoint percentiles are
Locust's cumulative (whole-run) ones, and ``over`` averages the live figures.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import attrs

from .grammar import render
from .histograms import TrailingHistogram, percentile
from .metrics import AGGREGATED, EndpointSummary, MetricSnapshot, RunSummary
from .models import Baseline, BaselineFigure, Threshold
from .verdicts import CriterionResult, Outcome, Verdict

__all__ = [
    "Breach",
    "evaluate",
    "first_abort",
    "freeze_baseline",
    "live_figure",
    "observe",
    "render",
]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def holds(op: str, observed: float, limit: float) -> bool:
    """Whether ``observed op limit`` is true (``op`` one of OPERATORS)."""
    return _OPS[op](observed, limit)


_FINAL: dict[str, Callable[[EndpointSummary], float | None]] = {
    "avg": lambda r: r.avg_response_time,
    "min": lambda r: r.min_response_time,
    "max": lambda r: r.max_response_time,
    "median": lambda r: r.median_response_time,
    "rps": lambda r: r.requests_per_sec,
    "fail_rps": lambda r: r.failures_per_sec,
    "error_rate": lambda r: r.error_rate,
    "requests": lambda r: float(r.num_requests),
    "failures": lambda r: float(r.num_failures),
}


def observe(row: EndpointSummary, metric: str, users: int | None = None) -> float | None:
    """The final figure ``metric`` names in a summary row (``None`` if Locust has none)."""
    if metric in _FINAL:
        return _FINAL[metric](row)
    if metric == "users":
        return None if users is None else float(users)
    value: float | None = getattr(row.percentiles, metric.replace(".", "_"))
    return value


def _row(summary: RunSummary | None, scope: str | None) -> EndpointSummary | None:
    if summary is None:
        return None
    return summary.aggregated if scope is None else summary.endpoint(scope)


BaselineSource = RunSummary | Baseline | None
"""A baseline as a run's summary, or as the figures frozen onto a run."""


def _base_figure(t: Threshold, baseline: BaselineSource, users: int | None) -> float | None:
    if isinstance(baseline, Baseline):
        return baseline.figure(t.metric, t.scope)
    row = _row(baseline, t.scope)
    return None if row is None else observe(row, t.metric, users)


def freeze_baseline(
    thresholds: Sequence[Threshold], run_id: str, summary: RunSummary | None, users: int | None
) -> Baseline:
    """The figures of a baseline run that ``thresholds``' relative criteria need."""
    wanted = dict.fromkeys((t.metric, t.scope) for t in thresholds if t.baseline is not None)
    figures = []
    for metric, scope in wanted:
        row = _row(summary, scope)
        value = None if row is None else observe(row, metric, users)
        figures.append(BaselineFigure(metric=metric, scope=scope, value=value))
    return Baseline(run_id=run_id, figures=tuple(figures))


def _ratio(failures: float, requests: float) -> float | None:
    return failures / requests if requests > 0 else None


LIVE_WINDOW = timedelta(seconds=10)
"""The window of Locust's own current percentiles, used for exact live figures."""

_FRACTIONS = {"p50": 0.5, "median": 0.5, "p95": 0.95}


class _ExactWindow:
    """The exact percentile of a trailing window at each snapshot, from histograms.

    Asked about snapshots in time order, each snapshot's change enters the
    window once and leaves it once (:class:`~loadmanager.histograms.TrailingHistogram`):
    each window was looked up from the run's first snapshot on, and a
    24-hour run's verdict took minutes.
    """

    def __init__(self, snapshots: Sequence[MetricSnapshot], t: Threshold, span: timedelta) -> None:
        self._snapshots = snapshots
        self._fraction = _FRACTIONS.get(t.metric)
        self._key = t.scope or AGGREGATED
        self._window = TrailingHistogram(span)
        self._next = 0  # the first snapshot not yet added

    def at(self, i: int) -> float | bool | None:
        """The percentile of the requests in the window up to snapshot ``i``.

        ``False`` when that snapshot carries no histograms (fall back to live
        figures); ``None`` when no request fell in the window.
        """
        if self._fraction is None:
            return False
        while self._next <= i:
            entering = self._snapshots[self._next]
            # A snapshot without histograms (no plugin) counts nothing, and is
            # never judged from them: the window moves on those that have them.
            if entering.histograms:
                self._window.push(entering.timestamp, entering.histogram(self._key) or {})
            self._next += 1
        if not self._snapshots[i].histograms:
            return False
        value = percentile(self._window.histogram, self._fraction)
        return None if value is None else float(value)


def live_figure(snapshot: MetricSnapshot, t: Threshold) -> float | None:
    """The live figure a windowed criterion looks at in one snapshot."""
    if t.metric == "users":
        return float(snapshot.user_count)
    if t.scope is None:
        rps, fails = snapshot.current_rps, snapshot.current_fail_per_sec
        p50, p95 = snapshot.current_p50, snapshot.current_p95
    else:
        row = next((r for r in snapshot.endpoints if r.key == t.scope), None)
        if row is None:
            return None
        rps, fails = row.current_rps, row.current_fail_per_sec
        p50, p95 = row.median_response_time, row.p95_response_time
    return {
        "rps": rps,
        "fail_rps": fails,
        "error_rate": _ratio(fails, rps),
        "median": p50,
        "p50": p50,
        "p95": p95,
    }[t.metric]


@attrs.frozen
class Breach:
    """When a windowed criterion broke, and the figure that broke it."""

    threshold: Threshold
    observed: float
    at: datetime


def _judge_window(
    t: Threshold, limit: float, snapshots: Sequence[MetricSnapshot]
) -> tuple[Breach | None, float | None, bool]:
    """(first breach, last figure judged, whether the window ever filled)."""
    assert t.window is not None
    window = timedelta(seconds=t.window)
    holds = _OPS[t.op]
    filled = False
    last: float | None = None
    if t.window_mode == "for":
        streak_start: datetime | None = None
        live = _ExactWindow(snapshots, t, LIVE_WINDOW)
        for i, snap in enumerate(snapshots):
            exact = live.at(i)
            figure = live_figure(snap, t) if exact is False else exact
            if figure is None:
                continue  # no traffic to judge: neither breaks nor continues a streak
            last = figure
            if holds(figure, limit):
                streak_start = None
                continue
            streak_start = streak_start or snap.timestamp
            filled = True
            if snap.timestamp - streak_start >= window:
                return Breach(t, figure, snap.timestamp), figure, True
        return None, last, filled or bool(snapshots)
    first = snapshots[0].timestamp if snapshots else None
    exact_window = _ExactWindow(snapshots, t, window)
    oldest = 0  # the oldest snapshot inside the window: it only moves forward
    for i, snap in enumerate(snapshots):
        assert first is not None
        if snap.timestamp - first < window:
            continue
        filled = True
        exact = exact_window.at(i)
        if exact is not False:
            if exact is None:
                continue
            last = exact
            if not holds(exact, limit):
                return Breach(t, exact, snap.timestamp), exact, True
            continue
        while snap.timestamp - snapshots[oldest].timestamp >= window:
            oldest += 1
        recent = [f for s in snapshots[oldest : i + 1] if (f := live_figure(s, t)) is not None]
        if not recent:
            continue
        mean = sum(recent) / len(recent)
        last = mean
        if not holds(mean, limit):
            return Breach(t, mean, snap.timestamp), mean, True
    return None, last, filled


def _result(
    t: Threshold,
    outcome: Outcome,
    *,
    limit: float | None = None,
    observed: float | None = None,
    baseline: float | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> CriterionResult:
    return CriterionResult(
        criterion=render(t),
        metric=t.metric,
        op=t.op,
        threshold=limit,
        outcome=outcome,
        observed=observed,
        scope=t.scope,
        reason=reason,
        baseline=baseline,
        at=at,
    )


def _judge(
    t: Threshold,
    summary: RunSummary | None,
    snapshots: Sequence[MetricSnapshot],
    baseline: BaselineSource,
    users: int | None,
) -> CriterionResult:
    base_figure = None
    if t.baseline is not None:
        if baseline is None:
            return _result(t, Outcome.NOT_EVALUATED, reason="no baseline run to compare with")
        base_figure = _base_figure(t, baseline, users)
        if base_figure is None:
            return _result(t, Outcome.NOT_EVALUATED, reason="the baseline run has no figure for it")
    limit = t.limit(base_figure)
    assert limit is not None
    if t.windowed:
        breach, last, filled = _judge_window(t, limit, snapshots)
        if breach is not None:
            return _result(
                t, Outcome.FAILED, limit=limit, observed=breach.observed,
                baseline=base_figure, at=breach.at,
            )  # fmt: skip
        if not filled or last is None:
            return _result(
                t, Outcome.NOT_EVALUATED, limit=limit, baseline=base_figure,
                reason="the run was shorter than the window, or had no traffic",
            )  # fmt: skip
        return _result(t, Outcome.PASSED, limit=limit, observed=last, baseline=base_figure)
    row = _row(summary, t.scope)
    if row is None:
        return _result(
            t, Outcome.NOT_EVALUATED, limit=limit, baseline=base_figure,
            reason=f"the run has no endpoint {t.scope!r}" if summary else "the run has no summary",
        )  # fmt: skip
    observed = observe(row, t.metric, users)
    if observed is None:
        return _result(
            t, Outcome.NOT_EVALUATED, limit=limit, baseline=base_figure,
            reason="Locust reported no figure for it (no requests?)",
        )  # fmt: skip
    outcome = Outcome.PASSED if _OPS[t.op](observed, limit) else Outcome.FAILED
    return _result(t, outcome, limit=limit, observed=observed, baseline=base_figure)


def evaluate(
    thresholds: Sequence[Threshold],
    summary: RunSummary | None,
    snapshots: Sequence[MetricSnapshot] = (),
    *,
    baseline: BaselineSource = None,
    users: int | None = None,
) -> Verdict | None:
    """The verdict on a run; ``None`` when it has no criteria."""
    if not thresholds:
        return None
    return Verdict.of(_judge(t, summary, snapshots, baseline, users) for t in thresholds)


def first_abort(
    thresholds: Sequence[Threshold],
    snapshots: Sequence[MetricSnapshot],
    *,
    baseline: BaselineSource = None,
) -> Breach | None:
    """The first breach of a criterion marked ``abort``, if any."""
    for t in thresholds:
        if not t.abort_on_fail or not t.windowed:
            continue
        base_figure = None
        if t.baseline is not None:
            base_figure = _base_figure(t, baseline, None)
            if base_figure is None:
                continue  # cannot judge without its baseline: never abort on a guess
        limit = t.limit(base_figure)
        assert limit is not None
        breach, _, _ = _judge_window(t, limit, snapshots)
        if breach is not None:
            return breach
    return None
