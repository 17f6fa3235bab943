"""Comparing a run with a baseline run, endpoint by endpoint.

Any two runs with summaries can be compared, not only runs of the same test.
Figures compared per endpoint (and for the aggregated row): request count, rps,
error ratio, median, p95 and p99. A figure is flagged as a regression when it got
worse by more than its tolerance:

=============  ===============================  =========================
figure         regression when                  default tolerance
=============  ===============================  =========================
median/p95/p99 run > baseline x (1 + pct/100)   10 % slower
rps            run < baseline x (1 - pct/100)   10 % less throughput
error_rate     run > baseline + abs             1 percentage point (0.01)
requests       never (informational)            -
=============  ===============================  =========================
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from . import _html, _units
from .errors import ValidationError
from .metrics import EndpointSummary, RunSummary

__all__ = ["Comparison", "EndpointComparison", "FigureDelta", "Tolerances", "compare"]

FIGURES = ("requests", "rps", "error_rate", "median", "p95", "p99")
# Which metric's unit each compared figure is shown in.
_UNIT_OF = {"requests": "requests", "rps": "rps", "error_rate": "error_rate"}


@attrs.frozen
class Tolerances:
    """How much worse a figure may get before it counts as a regression.

    Attributes:
        latency_pct: Allowed increase of median, p95 and p99, in percent.
        rps_pct: Allowed decrease of requests per second, in percent.
        error_rate_abs: Allowed increase of the error ratio, absolute (0.01 = 1 point).
    """

    latency_pct: float = 10.0
    rps_pct: float = 10.0
    error_rate_abs: float = 0.01


@attrs.frozen
class FigureDelta:
    """One figure of one endpoint in both runs."""

    figure: str
    baseline: float | None
    current: float | None
    regression: bool

    @property
    def delta(self) -> float | None:
        """``current - baseline`` (``None`` when either is missing)."""
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    def show(self, value: float | None) -> str:
        """A value of this figure in its unit (error rates in %)."""
        return _units.show(_UNIT_OF.get(self.figure, self.figure), value)

    @property
    def change(self) -> str:
        """The change as a person reads it: ``+12.5 %``, or ``+0.64 pp`` for error rates."""
        return _units.change(_UNIT_OF.get(self.figure, self.figure), self.baseline, self.current)

    @property
    def delta_pct(self) -> float | None:
        """The change in percent of the baseline (``None`` when undefined)."""
        if self.delta is None or not self.baseline:
            return None
        return 100.0 * self.delta / self.baseline


def _deltas(value: Iterable[FigureDelta]) -> tuple[FigureDelta, ...]:
    return tuple(value)


@attrs.frozen
class EndpointComparison:
    """Every compared figure of one endpoint (``key`` is ``"METHOD name"``)."""

    key: str
    figures: tuple[FigureDelta, ...] = attrs.field(converter=_deltas)

    @property
    def regression(self) -> bool:
        """True when any figure regressed."""
        return any(f.regression for f in self.figures)

    def figure(self, name: str) -> FigureDelta:
        """The delta of one figure (``"p95"``, ``"rps"`` ...)."""
        return next(f for f in self.figures if f.figure == name)


def _endpoints(value: Iterable[EndpointComparison]) -> tuple[EndpointComparison, ...]:
    return tuple(value)


def _keys(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Comparison:
    """A run against its baseline: shared endpoints, then those in only one."""

    run_id: str
    baseline_run_id: str
    aggregated: EndpointComparison
    endpoints: tuple[EndpointComparison, ...] = attrs.field(converter=_endpoints)
    only_in_run: tuple[str, ...] = attrs.field(converter=_keys)
    only_in_baseline: tuple[str, ...] = attrs.field(converter=_keys)
    tolerances: Tolerances = Tolerances()

    @property
    def regression(self) -> bool:
        """True when any figure of any endpoint, or of the total, regressed."""
        return self.aggregated.regression or any(e.regression for e in self.endpoints)

    def endpoint(self, key: str) -> EndpointComparison | None:
        """The comparison of one shared endpoint, or ``None``."""
        return next((e for e in self.endpoints if e.key == key), None)

    def rows(self) -> list[tuple[str, str, str, str, str, bool]]:
        """Every figure as a person reads it: endpoint, figure, baseline, run,
        change and whether it regressed (the aggregated row last)."""
        return [
            (e.key, f.figure, f.show(f.baseline), f.show(f.current), f.change, f.regression)
            for e in (*self.endpoints, self.aggregated)
            for f in e.figures
        ]

    def _repr_html_(self) -> str:
        rows = [[*row[:5], "REGRESSION" if row[5] else ""] for row in self.rows()]
        title = f"Run {self.run_id} vs baseline {self.baseline_run_id}"
        extra = ""
        if self.only_in_run or self.only_in_baseline:
            extra = _html.kv(
                [
                    ("only in run", ", ".join(self.only_in_run) or "-"),
                    ("only in baseline", ", ".join(self.only_in_baseline) or "-"),
                ]
            )
        table = _html.table(["endpoint", "figure", "baseline", "run", "change", ""], rows)
        return f"<h4>{_html.esc(title)}</h4>{table}{extra}"


def _figures(row: EndpointSummary) -> dict[str, float | None]:
    return {
        "requests": float(row.num_requests),
        "rps": row.requests_per_sec,
        "error_rate": row.error_rate,
        "median": row.median_response_time,
        "p95": row.percentiles.p95,
        "p99": row.percentiles.p99,
    }


def _regressed(figure: str, base: float | None, now: float | None, tol: Tolerances) -> bool:
    if base is None or now is None:
        return False
    if figure in ("median", "p95", "p99"):
        return now > base * (1 + tol.latency_pct / 100)
    if figure == "rps":
        return now < base * (1 - tol.rps_pct / 100)
    if figure == "error_rate":
        return now > base + tol.error_rate_abs
    return False


def compare_rows(
    key: str, run: EndpointSummary, base: EndpointSummary, tol: Tolerances
) -> EndpointComparison:
    """Compare one endpoint's final figures."""
    now, before = _figures(run), _figures(base)
    return EndpointComparison(
        key,
        [FigureDelta(f, before[f], now[f], _regressed(f, before[f], now[f], tol)) for f in FIGURES],
    )


def compare(
    run_id: str,
    summary: RunSummary | None,
    baseline_run_id: str,
    baseline: RunSummary | None,
    tolerances: Tolerances = Tolerances(),
) -> Comparison:
    """Compare a run's summary with a baseline's.

    Raises:
        ValidationError: either run has no summary yet (it has not ended).
    """
    if summary is None:
        raise ValidationError.single("runId", f"run {run_id!r} has no summary yet")
    if baseline is None:
        raise ValidationError.single("baseline", f"run {baseline_run_id!r} has no summary yet")
    base_rows = {r.key: r for r in baseline.endpoints}
    run_rows = {r.key: r for r in summary.endpoints}
    shared = [k for k in run_rows if k in base_rows]
    return Comparison(
        run_id=run_id,
        baseline_run_id=baseline_run_id,
        aggregated=compare_rows(
            summary.aggregated.key, summary.aggregated, baseline.aggregated, tolerances
        ),
        endpoints=[compare_rows(k, run_rows[k], base_rows[k], tolerances) for k in shared],
        only_in_run=[k for k in run_rows if k not in base_rows],
        only_in_baseline=[k for k in base_rows if k not in run_rows],
        tolerances=tolerances,
    )
