"""Judging criteria: final figures, windows (for/over), baselines, abort."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import loadmanager as lm
from loadmanager.criteria import evaluate, first_abort, live_figure
from loadmanager.grammar import parse
from loadmanager.metrics import EndpointStats
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
