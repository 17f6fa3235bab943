"""Pass/fail criteria against a real Locust cluster and a target we can break."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import loadmanager as lm
from loadmanager.criteria import live_figure
from loadmanager.grammar import parse
from loadmanager.testing.target import TargetServer

LOCUSTFILE = Path(__file__).parent / "locustfiles" / "basic.py"
INTERVAL = 1.0
ACTOR = "ci@example.com"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer(slow_ms=30, fail_ratio=0.25) as server:
        yield server


@pytest.fixture(autouse=True)
def healthy_target(target: TargetServer) -> Iterator[None]:
    yield
    target.fail_all, target.extra_delay_ms = False, 0


@pytest.fixture(scope="module")
def cluster(target: TargetServer) -> Iterator[lm.LocalCluster]:
    with lm.LocalCluster(LOCUSTFILE, workers=2, host=target.url) as running:
        yield running


@pytest.fixture
def orch(tmp_path: Path, cluster: lm.LocalCluster) -> Iterator[lm.Orchestrator]:
    with (
        lm.connect(f"sqlite:///{tmp_path / 'lm.db'}") as storage,
        lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"c1": cluster.url}),
            poll_interval=INTERVAL,
        ) as o,
    ):
        yield o


def body(target: TargetServer, thresholds: list[Any], run_time: str = "4s") -> dict[str, Any]:
    return {
        "name": "criteria", "tenantId": "t", "envId": "e", "locustClusterId": "c1",
        "targetUrl": target.url, "locustfile": "basic.py", "defaultUsers": 6,
        "defaultSpawnRate": 6, "defaultRunTime": run_time, "thresholds": thresholds,
    }  # fmt: skip


def run_once(orch: lm.Orchestrator, test: lm.LoadTest, **overrides: Any) -> lm.LoadTestRun:
    run = orch.start_run(test.id, {"userClasses": ["ApiUser"], **overrides}, actor=ACTOR)
    return orch.wait(run.id, timeout=90)


def test_final_criteria_are_judged_on_locusts_own_rows(
    orch: lm.Orchestrator, target: TargetServer
) -> None:
    test = orch.create_load_test(
        body(target, ["error_rate < 1%", "p95 < 10s", "GET /flaky: error_rate < 1%",
                      "GET /items: error_rate < 1%"]),
        actor=ACTOR,
    )  # fmt: skip
    run = run_once(orch, test)
    assert run.status is lm.RunStatus.FINISHED
    assert run.summary is not None
    assert run.verdict is not None
    results = {r.criterion: r for r in run.verdict.results}
    agg = run.summary.aggregated
    overall = results["error_rate < 1%"]
    assert overall.outcome is lm.Outcome.FAILED
    assert overall.observed == agg.num_failures / agg.num_requests
    assert overall.threshold == pytest.approx(0.01)
    assert results["p95 < 10s"].outcome is lm.Outcome.PASSED
    assert results["p95 < 10s"].observed == agg.percentiles.p95
    flaky = run.summary.endpoint("GET /flaky")
    assert flaky is not None
    assert results["GET /flaky: error_rate < 1%"].observed == flaky.error_rate
    assert results["GET /flaky: error_rate < 1%"].outcome is lm.Outcome.FAILED
    assert results["GET /items: error_rate < 1%"].outcome is lm.Outcome.PASSED
    assert run.verdict.exit_code == 1


def test_an_outage_aborts_the_run_soon_after_the_window_fills(
    orch: lm.Orchestrator, target: TargetServer
) -> None:
    criterion = "error_rate < 50% for 4s, abort"
    test = orch.create_load_test(body(target, [criterion], run_time="60s"), actor=ACTOR)
    run = orch.start_run(test.id, {"userClasses": ["ApiUser"]}, actor=ACTOR)

    time.sleep(4)
    target.fail_all = True  # everything answers 500 from now on
    done = orch.wait(run.id, timeout=50)
    assert done.status is lm.RunStatus.STOPPED
    assert (done.failure_reason or "").startswith(f"aborted: {criterion} broke with ")
    assert done.started_at is not None
    assert done.ended_at is not None
    assert done.ended_at - done.started_at < timedelta(seconds=40)  # long before 60 s
    assert done.verdict is not None
    [result] = done.verdict.results
    assert result.outcome is lm.Outcome.FAILED
    assert result.at is not None

    # Independently of the library: when did the window fill, when did load stop?
    snaps = orch.snapshots(run.id)
    threshold, filled, streak = parse(criterion), None, None
    for s in snaps:
        figure = live_figure(s, threshold)
        if figure is None:
            continue
        if figure < 0.5:
            streak = None
        else:
            streak = streak or s.timestamp
            if s.timestamp - streak >= timedelta(seconds=4):
                filled = s.timestamp
                break
    assert filled == result.at
    stopped = next(
        s.timestamp for s in snaps if s.timestamp > filled and s.state in ("stopping", "stopped")
    )
    # Two intervals, plus the master's 2 s cache before its answers show the stop.
    assert stopped - filled <= timedelta(seconds=2 * INTERVAL + 2.5)


def test_a_slower_run_fails_a_criterion_relative_to_its_baseline(
    orch: lm.Orchestrator, target: TargetServer
) -> None:
    test = orch.create_load_test(body(target, ["median <= baseline * 1.2"]), actor=ACTOR)
    first = run_once(orch, test)
    assert first.verdict is not None
    assert first.verdict.outcome is lm.Outcome.NOT_EVALUATED  # nothing to compare with yet
    assert orch.baseline(test.id) is None
    orch.set_baseline(test.id, first.id, actor=ACTOR)
    target.extra_delay_ms = 60
    second = run_once(orch, test)
    assert second.verdict is not None
    [result] = second.verdict.results
    assert first.summary is not None
    assert second.summary is not None
    assert result.baseline == first.summary.aggregated.median_response_time
    assert result.observed == second.summary.aggregated.median_response_time
    assert result.threshold == pytest.approx(1.2 * result.baseline)  # type: ignore[operator]
    assert result.outcome is lm.Outcome.FAILED
    assert second.verdict.exit_code == 1
