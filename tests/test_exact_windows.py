"""Windowed percentile criteria are exact with histograms, per endpoint too.

Without histograms a per-endpoint p95 is Locust's cumulative (whole-run) one,
which barely moves once a run is long: the defect these tests pin down. The
snapshots are built here: for 20 minutes an endpoint takes 10 ms, then 800 ms.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from loadmanager import histograms as h
from loadmanager.criteria import first_abort, live_figure
from loadmanager.grammar import parse
from loadmanager.metrics import EndpointStats, HistogramDelta, MetricSnapshot
from loadmanager.status import MasterState

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
KEY = "GET /x"
SLOW_FROM = 600  # the snapshot from which the endpoint is slow: 20 minutes in
CHANGE = T0 + timedelta(seconds=2 * SLOW_FROM)


def snapshots(*, with_histograms: bool) -> list[MetricSnapshot]:
    made, cumulative = [], {}
    for n in range(SLOW_FROM + 60):  # every 2 s
        latency = 10 if n < SLOW_FROM else 800
        delta = {latency: 50}
        cumulative = h.merge([cumulative, delta])
        row = EndpointStats(
            method="GET", name="/x", num_requests=h.total(cumulative), num_failures=0,
            current_rps=25.0, current_fail_per_sec=0.0,
            p95_response_time=float(h.percentile(cumulative, 0.95) or 0),
            median_response_time=float(h.percentile(cumulative, 0.5) or 0),
        )  # fmt: skip
        made.append(
            MetricSnapshot(
                load_test_run_id="run-1",
                timestamp=T0 + timedelta(seconds=2 * n),
                state=MasterState.RUNNING,
                user_count=10,
                worker_count=1,
                current_rps=25.0,
                current_fail_per_sec=0.0,
                total_requests=h.total(cumulative),
                total_failures=0,
                slot=n,
                endpoints=(row,),
                histograms=(
                    (HistogramDelta(KEY, delta), HistogramDelta("Aggregated", delta))
                    if with_histograms
                    else ()
                ),
            )
        )
    return made


def test_with_histograms_a_per_endpoint_for_window_breaks_soon_after_the_change() -> None:
    t = parse("GET /x: p95 < 300ms for 10s, abort")
    breach = first_abort([t], snapshots(with_histograms=True))
    assert breach is not None
    assert breach.observed == 800
    # 10 s of the slow endpoint break the criterion, within two intervals.
    assert breach.at - CHANGE <= timedelta(seconds=10 + 2 * 2)


def test_without_histograms_the_cumulative_p95_lags_behind() -> None:
    t = parse("GET /x: p95 < 300ms for 10s, abort")
    plain = snapshots(with_histograms=False)
    breach = first_abort([t], plain)
    # The cumulative p95 only passes 300 ms once more than 5 % of all requests
    # were slow: later than with histograms, which is what the plugin fixes.
    exact = first_abort([t], snapshots(with_histograms=True))
    assert exact is not None
    assert breach is not None
    assert breach.at - CHANGE > timedelta(seconds=60)  # about a minute late
    assert breach.at - exact.at > timedelta(seconds=45)
    assert live_figure(plain[SLOW_FROM + 5], t) == 10.0  # 10 s into the slow part


def test_an_over_window_judges_every_request_in_it() -> None:
    t = parse("GET /x: p95 < 300ms over 20s, abort")
    breach = first_abort([t], snapshots(with_histograms=True))
    assert breach is not None
    # Over 20 s (10 snapshots) p95 passes 300 ms once more than 5 % are slow:
    # the first slow snapshot already makes 1 in 10.
    assert breach.at == CHANGE
