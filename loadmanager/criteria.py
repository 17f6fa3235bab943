"""Judging a run's final figures against its load test's thresholds.

Final criteria use Locust's own cumulative figures from the run summary, never
averages of snapshot percentiles.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

from .metrics import EndpointSummary, RunSummary
from .models import Threshold
from .verdicts import CriterionResult, Outcome, Verdict

__all__ = ["evaluate_final", "observe", "render"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

_DIRECT: dict[str, Callable[[EndpointSummary], float | None]] = {
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


def render(threshold: Threshold) -> str:
    """The threshold as text: ``[scope: ]metric op value``."""
    scope = f"{threshold.scope}: " if threshold.scope else ""
    return f"{scope}{threshold.metric} {threshold.op} {threshold.value:g}"


def observe(row: EndpointSummary, metric: str, users: int | None = None) -> float | None:
    """The figure ``metric`` names in a summary row (``None`` if Locust has none)."""
    if metric in _DIRECT:
        return _DIRECT[metric](row)
    if metric == "users":
        return None if users is None else float(users)
    field = metric.replace(".", "_")  # p99.9 -> p99_9
    value: float | None = getattr(row.percentiles, field)
    return value


def _result(t: Threshold, observed: float | None, reason: str | None = None) -> CriterionResult:
    if observed is None:
        outcome = Outcome.NOT_EVALUATED
    else:
        outcome = Outcome.PASSED if _OPS[t.op](observed, t.value) else Outcome.FAILED
    return CriterionResult(
        criterion=render(t),
        metric=t.metric,
        op=t.op,
        threshold=t.value,
        outcome=outcome,
        observed=observed,
        scope=t.scope,
        reason=reason,
    )


def evaluate_final(
    thresholds: Sequence[Threshold], summary: RunSummary, *, users: int | None = None
) -> Verdict | None:
    """Judge the final figures; ``None`` when there is nothing to judge."""
    if not thresholds:
        return None
    results = []
    for t in thresholds:
        row = summary.aggregated if t.scope is None else summary.endpoint(t.scope)
        if row is None:
            results.append(_result(t, None, f"the run has no endpoint {t.scope!r}"))
            continue
        observed = observe(row, t.metric, users)
        if observed is None:
            results.append(_result(t, None, "Locust reported no figure for it (no requests?)"))
            continue
        results.append(_result(t, observed))
    return Verdict.of(results)
