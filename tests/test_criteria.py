"""Judging criteria: final figures, windows (for/over), baselines, abort."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager import histograms as h
from loadmanager.criteria import (
    _OPS,
    LIVE_WINDOW,
    Breach,
    _judge_window,
    evaluate,
    first_abort,
    live_figure,
)
from loadmanager.grammar import parse
from loadmanager.metrics import EndpointStats, HistogramDelta
from loadmanager.models import Threshold
from loadmanager.testing import make_snapshot, make_summary

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
Outcome = lm.Outcome


def snaps(*error_rates: float | None, every: float = 1.0) -> list[lm.MetricSnapshot]:
    """One snapshot per second; rps 100 and failures/s from the given error ratio."""
    out = []
    for i, ratio in enumerate(error_rates):
        rps = 0.0 if ratio is None else 100.0
        out.append(
            make_snapshot(
                "r",
                T0 + timedelta(seconds=i * every),
                current_rps=rps,
                current_fail_per_sec=0.0 if ratio is None else 100.0 * ratio,
                current_p95=40.0 + i,
                endpoints=(
                    EndpointStats(
                        "GET", "/a", 10, 0, 50.0, 25.0, 1.0, 1.0, 1.0, 7.0, 70.0 + i, 90.0
                    ),
                ),
            )
        )
    return out


def judge(text: str, snapshots: list[lm.MetricSnapshot], **kw: object) -> lm.CriterionResult:
    verdict = evaluate([parse(text)], make_summary(), snapshots, **kw)  # type: ignore[arg-type]
    assert verdict is not None
    return verdict.results[0]


def test_no_criteria_no_verdict() -> None:
    assert evaluate([], make_summary()) is None


def test_for_breaks_only_after_the_whole_window_in_a_row() -> None:
    # violated at 2, 3 (streak 1 s), back to fine at 4, then 5..9 (streak 4 s at 9)
    rates = [0.0, 0.0, 0.9, 0.9, 0.0, 0.9, 0.9, 0.9, 0.9, 0.9]
    result = judge("error_rate < 50% for 4s", snaps(*rates))
    assert result.outcome is Outcome.FAILED
    assert result.at == T0 + timedelta(seconds=9)
    assert result.observed == pytest.approx(0.9)
    assert judge("error_rate < 50% for 5s", snaps(*rates)).outcome is Outcome.PASSED


def p95_series(*values: float) -> list[lm.MetricSnapshot]:
    return [
        make_snapshot("r", T0 + timedelta(seconds=i), current_p95=v) for i, v in enumerate(values)
    ]


def test_a_single_spike_does_not_break_a_for_window() -> None:
    assert judge("p95 < 50 for 2s", p95_series(40, 90, 40, 40)).outcome is Outcome.PASSED
    sustained = judge("p95 < 50 for 2s", p95_series(40, 90, 90, 90))
    assert sustained.outcome is Outcome.FAILED
    assert sustained.at == T0 + timedelta(seconds=3)


def test_over_judges_the_mean_of_the_last_window() -> None:
    rates = [0.0, 0.0, 0.0, 0.6, 0.6, 0.6, 0.6]
    # over 3 s at t=3: (0+0+0.6)/3 = 0.2 ... at t=5: 0.6 -> breaks at 5
    result = judge("error_rate < 50% over 3s", snaps(*rates))
    assert result.outcome is Outcome.FAILED
    assert result.at == T0 + timedelta(seconds=5)
    assert result.observed == pytest.approx(0.6)
    assert judge("error_rate < 70% over 3s", snaps(*rates)).outcome is Outcome.PASSED


def test_a_run_shorter_than_the_window_is_not_evaluated() -> None:
    result = judge("error_rate < 50% over 30s", snaps(0.9, 0.9, 0.9))
    assert result.outcome is Outcome.NOT_EVALUATED
    assert "shorter than the window" in (result.reason or "")


def test_per_endpoint_windows_use_that_endpoints_row() -> None:
    snapshot = snaps(0.0)[0]
    assert live_figure(snapshot, parse("GET /a: error_rate < 1% for 1s")) == 0.5
    assert live_figure(snapshot, parse("GET /a: p95 < 1 for 1s")) == 70
    assert live_figure(snapshot, parse("GET /nowhere: rps > 1 for 1s")) is None
    assert live_figure(snapshot, parse("users > 1 for 1s")) == snapshot.user_count


def test_final_criteria_use_the_summary_row() -> None:
    summary = make_summary()  # GET /items: 1000 requests, 10 failures, p95 38
    assert judge("error_rate < 1%", []).outcome is Outcome.FAILED  # exactly 1 %: not below
    assert judge("error_rate <= 1%", []).observed == pytest.approx(0.01)
    assert judge("GET /items: p95 < 40ms", []).outcome is Outcome.PASSED
    assert judge("GET /items: p95 < 0.03s", []).threshold == pytest.approx(30)
    assert summary.aggregated.num_requests == 1000


def test_relative_criteria_record_both_figures() -> None:
    baseline = make_summary()
    result = judge("p95 <= baseline * 0.9", [], baseline=baseline)
    assert (result.baseline, result.observed) == (38, 38)
    assert result.threshold == pytest.approx(34.2)
    assert result.outcome is Outcome.FAILED


def test_relative_criteria_without_baseline_are_not_evaluated_never_passed() -> None:
    result = judge("p95 <= baseline * 1.5", [])
    assert result.outcome is Outcome.NOT_EVALUATED
    assert result.reason == "no baseline run to compare with"
    verdict = evaluate([parse("p95 <= baseline * 1.5"), parse("p95 < 1000")], make_summary())
    assert verdict is not None
    assert verdict.outcome is Outcome.NOT_EVALUATED
    assert verdict.exit_code == 2


def test_first_abort_only_considers_abort_criteria() -> None:
    rates = [0.9] * 6
    assert first_abort([parse("error_rate < 50% for 3s")], snaps(*rates)) is None
    breach = first_abort([parse("error_rate < 50% for 3s, abort")], snaps(*rates))
    assert breach is not None
    assert breach.at == T0 + timedelta(seconds=3)
    assert first_abort([parse("p95 < baseline * 1 for 1s, abort")], snaps(*rates)) is None


# -- windows over long runs: the sliding window against the definition ---------


def _defined_exact(
    snapshots: list[lm.MetricSnapshot], i: int, t: Threshold, span: timedelta
) -> float | bool | None:
    """The window's percentile looked up from snapshot ``i`` backwards, as defined."""
    fraction = {"p50": 0.5, "median": 0.5, "p95": 0.95}.get(t.metric)
    if fraction is None or not snapshots[i].histograms:
        return False
    key = t.scope or "Aggregated"
    inside = []
    for s in reversed(snapshots[: i + 1]):
        if snapshots[i].timestamp - s.timestamp >= span:
            break
        inside.append(s.histogram(key) or {})
    value = h.percentile(h.merge(inside), fraction)
    return None if value is None else float(value)


def _defined_window(
    t: Threshold, limit: float, snapshots: list[lm.MetricSnapshot]
) -> tuple[Breach | None, float | None, bool]:
    """What _judge_window answers, each window looked up on its own (quadratic)."""
    assert t.window is not None
    window, holds = timedelta(seconds=t.window), _OPS[t.op]
    filled, last = False, None
    if t.window_mode == "for":
        streak_start = None
        for i, snap in enumerate(snapshots):
            exact = _defined_exact(snapshots, i, t, LIVE_WINDOW)
            figure = live_figure(snap, t) if exact is False else exact
            if figure is None:
                continue
            last = figure
            if holds(figure, limit):
                streak_start = None
                continue
            streak_start = streak_start or snap.timestamp
            filled = True
            if snap.timestamp - streak_start >= window:
                return Breach(t, figure, snap.timestamp), figure, True
        return None, last, filled or bool(snapshots)
    for i, snap in enumerate(snapshots):
        if snap.timestamp - snapshots[0].timestamp < window:
            continue
        filled = True
        exact = _defined_exact(snapshots, i, t, window)
        if exact is not False:
            if exact is None:
                continue
            last = exact
            if not holds(exact, limit):
                return Breach(t, exact, snap.timestamp), exact, True
            continue
        recent = [
            f
            for s in snapshots[: i + 1]
            if snap.timestamp - s.timestamp < window and (f := live_figure(s, t)) is not None
        ]
        if recent:
            last = sum(recent) / len(recent)
            if not holds(last, limit):
                return Breach(t, last, snap.timestamp), last, True
    return None, last, filled


_latencies = st.dictionaries(st.sampled_from([10, 20, 30, 60, 90]), st.integers(1, 9), max_size=3)


@st.composite
def _judged_runs(draw: st.DrawFn) -> list[lm.MetricSnapshot]:
    at, snapshots = 0, []
    for _ in range(draw(st.integers(0, 30))):
        at += draw(st.sampled_from([0, 1, 2, 2, 2, 5]))  # equal times and gaps too
        rps = draw(st.sampled_from([0.0, 40.0, 100.0]))
        p95 = draw(st.none() | st.sampled_from([20.0, 60.0]))
        changes = draw(st.dictionaries(st.sampled_from(["Aggregated", "GET /a"]), _latencies))
        with_histograms = draw(st.booleans())
        snapshots.append(
            make_snapshot(
                "r",
                T0 + timedelta(seconds=at),
                current_rps=rps,
                current_fail_per_sec=rps / 10,
                current_p95=p95,
                endpoints=(EndpointStats("GET", "/a", 10, 0, rps, 0.0, p95_response_time=p95),),
                histograms=tuple(HistogramDelta(k, v) for k, v in changes.items())
                if with_histograms
                else (),
            )
        )
    return snapshots


@settings(max_examples=300, deadline=None)
@given(
    _judged_runs(),
    st.sampled_from([
        "rps > 50 over 4s", "p95 < 50ms over 6s", "p95 < 50ms for 4s", "p50 < 25ms for 2s",
        "GET /a: p95 < 50ms over 6s", "GET /a: p95 < 50ms for 4s", "error_rate < 0.2 over 4s",
        "p95 < 50ms over 30s",
    ]),
)  # fmt: skip
def test_windows_slide_to_what_each_window_looked_up_alone_gives(
    snapshots: list[lm.MetricSnapshot], text: str
) -> None:
    """Judging a run moves each window along (linear in the run); the figures,
    breaches and fills are those of every window looked up on its own."""
    t = parse(text)
    assert t.value is not None
    assert _judge_window(t, t.value, snapshots) == _defined_window(t, t.value, snapshots)


class _CountedRun(list[lm.MetricSnapshot]):
    """A run's snapshots that count how many are read by index or slice."""

    read = 0

    def __getitem__(self, index: Any) -> Any:
        got = super().__getitem__(index)
        self.read += len(got) if isinstance(index, slice) else 1
        return got


@pytest.mark.parametrize("plugin", [False, True])
def test_a_long_runs_windows_cost_each_snapshot_a_window_not_the_run(
    plugin: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each window used to be looked up from the first snapshot on: a verdict
    on 24 hours (43,200 snapshots) with an `over` criterion took about a minute.
    Counted, not timed: each snapshot reads at most a window's worth."""
    histogram, changes = lm.MetricSnapshot.histogram, [0]

    def counted_histogram(snapshot: lm.MetricSnapshot, key: str) -> dict[int, int] | None:
        changes[0] += 1
        return histogram(snapshot, key)

    monkeypatch.setattr(lm.MetricSnapshot, "histogram", counted_histogram)
    n, change = 2_000, (HistogramDelta("Aggregated", {10: 5}),)
    for text in ("rps > 5 over 30s", "p95 < 300ms over 30s", "p95 < 300ms for 10s"):
        run = _CountedRun(
            make_snapshot("r", T0 + timedelta(seconds=2 * i), histograms=change if plugin else ())
            for i in range(n)
        )
        assert judge(text, run).outcome is Outcome.PASSED, text
        # a window (16 snapshots) and a few lookups each; quadratic: about 2 million
        assert run.read <= n * (30 // 2 + 10), (text, run.read)
    assert changes[0] <= 3 * 2 * n, changes  # each change into a window and out, once
