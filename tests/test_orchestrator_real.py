"""The Orchestrator end to end: a real Locust master and workers, a real target,
SQLite storage, the Monitor thread. Every load is bounded (few users, seconds).
"""

from __future__ import annotations

import itertools
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import loadmanager as lm
from loadmanager.testing.target import TargetServer

LOCUSTFILE = Path(__file__).parent / "locustfiles" / "basic.py"
INTERVAL = 1.0
ACTOR = "user@example.com"

pytestmark = pytest.mark.slow


def seed_body(target: TargetServer, **changes: Any) -> dict[str, Any]:
    body = {
        "name": "API Load Test",
        "description": "Tests API performance",
        "tags": ["api", "prod"],
        "tenantId": "tenant-1",
        "envId": "prod",
        "locustClusterId": "cluster-1",
        "targetUrl": target.url,
        "locustfile": "basic.py",
        "defaultUsers": 6,
        "defaultSpawnRate": 6,
        "createdBy": ACTOR,
    }
    body.update(changes)
    return body


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer(slow_ms=30, fail_ratio=0.25) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(target: TargetServer) -> Iterator[lm.LocalCluster]:
    with lm.LocalCluster(LOCUSTFILE, workers=2, host=target.url) as running:
        yield running


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lm.db'}"


@pytest.fixture
def orch(db_url: str, cluster: lm.LocalCluster) -> Iterator[lm.Orchestrator]:
    with lm.connect(db_url) as storage:
        registry = lm.ClusterRegistry({"cluster-1": cluster.url})
        with lm.Orchestrator(storage=storage, clusters=registry, poll_interval=INTERVAL) as o:
            yield o
            for run in o.list_runs(statuses=["running", "stopping", "pending"]):
                with lm.LocustClient(cluster.url) as client:  # never leave load behind
                    client.stop()
                o.wait(run.id, timeout=30)


def test_a_run_with_defaults_goes_pending_running_finished_with_metrics(
    orch: lm.Orchestrator, target: TargetServer, cluster: lm.LocalCluster
) -> None:
    test = orch.create_load_test(seed_body(target, defaultRunTime="4s"), actor=ACTOR)
    run = orch.start_run(test.id, actor=ACTOR)
    assert run.status is lm.RunStatus.RUNNING
    assert run.version == 2  # pending was recorded first
    assert run.parameters.target_users == 6
    done = orch.wait(run.id, timeout=60)
    assert done.status is lm.RunStatus.FINISHED
    assert done.started_at is not None
    assert done.ended_at is not None
    assert done.ended_at > done.started_at
    assert done.audit.created_by == ACTOR
    assert done.audit.updated_by == "loadmanager"
    assert done.verdict is None  # no thresholds, so no verdict (not "passed")
    assert orch.storage.runs.active_on_cluster("cluster-1") is None
    # Polls after the first went on the Monitor's one-thread loop, not the pool.
    assert orch.monitor.polls_looped >= 1

    snaps = orch.snapshots(run.id)
    assert len(snaps) >= 3
    assert {s.load_test_run_id for s in snaps} == {run.id}
    assert max(s.user_count for s in snaps) == 6
    assert any(s.state == "running" for s in snaps)
    series = orch.series(run.id, 3)
    assert 0 < len(series) <= 3
    assert sum(b.samples for b in series) == len(snaps)
    assert max(b.user_count.max or 0 for b in series) == 6

    # The summary is Locust's own final figures, to the last digit.
    summary = done.summary
    assert summary is not None
    with lm.LocustClient(cluster.url) as client:
        rows = client.stats_csv()
        assert (*summary.endpoints, summary.aggregated) == rows
        time.sleep(2.1)  # past the master's cache of /stats/requests
        stats = client.stats()
    json_rows = {r.key: r for r in [*stats.endpoints, stats.aggregated] if r is not None}
    for row in (*summary.endpoints, summary.aggregated):
        j = json_rows[row.key]
        assert (row.num_requests, row.num_failures) == (j.num_requests, j.num_failures)
        assert row.median_response_time == j.median_response_time
        assert row.avg_response_time == j.avg_response_time
        assert row.requests_per_sec == j.total_rps
        assert row.failures_per_sec == j.total_fail_per_sec
        assert row.percentiles.p95 == int(j.p95_response_time or 0)
        assert row.percentiles.p99 == int(j.p99_response_time or 0)
    assert summary.aggregated.num_requests > 20
    flaky = summary.endpoint("GET /flaky")
    assert flaky is not None
    assert flaky.num_failures > 0


def test_a_run_with_overrides_and_a_verdict(orch: lm.Orchestrator, target: TargetServer) -> None:
    test = orch.create_load_test(
        seed_body(
            target,
            thresholds=[
                {"metric": "p95", "op": "<", "value": 5000},
                {"metric": "error_rate", "op": "<", "value": 0.01, "scope": "GET /flaky"},
                {"metric": "requests", "op": ">", "value": 0, "scope": "GET /nowhere"},
            ],
        ),
        actor=ACTOR,
    )
    run = orch.start_run(
        test.id,
        {"targetUsers": 3, "spawnRate": 3, "runTime": "3s", "userClasses": ["ApiUser"]},
        actor=ACTOR,
    )
    assert (run.parameters.target_users, run.parameters.run_time) == (3, "3s")
    done = orch.wait(run.id, timeout=60)
    assert done.status is lm.RunStatus.FINISHED
    assert max(s.user_count for s in orch.snapshots(run.id)) == 3
    assert done.verdict is not None
    results = {r.criterion: r for r in done.verdict.results}
    assert results["p95 < 5000"].outcome is lm.Outcome.PASSED
    flaky = results["GET /flaky: error_rate < 0.01"]
    assert flaky.outcome is lm.Outcome.FAILED
    row = done.summary.endpoint("GET /flaky")  # type: ignore[union-attr]
    assert row is not None
    assert flaky.observed == row.num_failures / row.num_requests
    assert results["GET /nowhere: requests > 0"].outcome is lm.Outcome.NOT_EVALUATED
    assert done.verdict.outcome is lm.Outcome.FAILED
    assert done.verdict.exit_code == 1


def test_stop_a_running_test(orch: lm.Orchestrator, target: TargetServer) -> None:
    test = orch.create_load_test(seed_body(target), actor=ACTOR)  # no run time: until stopped
    run = orch.start_run(test.id, actor=ACTOR)
    time.sleep(3)
    stopping = orch.stop_run(run.id, actor="bob@example.com")
    assert stopping.status is lm.RunStatus.STOPPING
    done = orch.wait(run.id, timeout=60)
    assert done.status is lm.RunStatus.STOPPED
    assert done.summary is not None
    assert done.summary.aggregated.num_requests > 0
    assert orch.storage.runs.active_on_cluster("cluster-1") is None


def test_a_second_start_on_a_busy_cluster_is_refused(
    orch: lm.Orchestrator, target: TargetServer
) -> None:
    test = orch.create_load_test(seed_body(target, defaultRunTime="3s"), actor=ACTOR)
    first = orch.start_run(test.id, actor=ACTOR)
    with pytest.raises(lm.ClusterBusyError) as info:
        orch.start_run(test.id, actor=ACTOR)
    assert info.value.active_run_id == first.id
    assert orch.wait(first.id, timeout=60).status is lm.RunStatus.FINISHED
    assert orch.list_runs(load_test_id=test.id) == [orch.get_run(first.id)]


def test_a_killed_master_fails_the_run_keeping_its_snapshots(
    db_url: str, target: TargetServer
) -> None:
    with (
        lm.LocalCluster(LOCUSTFILE, workers=1, host=target.url) as doomed,
        lm.connect(db_url) as storage,
        lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"cluster-1": doomed.url}),
            poll_interval=INTERVAL,
            client_factory=quick_giving_up,
        ) as orch,
    ):
        test = orch.create_load_test(seed_body(target), actor=ACTOR)
        run = orch.start_run(test.id, actor=ACTOR)
        deadline = time.monotonic() + 20
        while len(orch.snapshots(run.id)) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        kept = orch.snapshots(run.id)
        doomed.kill_master()
        done = orch.wait(run.id, timeout=60)
        assert done.status is lm.RunStatus.FAILED
        assert "unreachable" in (done.failure_reason or "")
        assert orch.monitor.polls_looped >= 2  # the loop's failed answer went to the pool
        assert orch.storage.runs.active_on_cluster("cluster-1") is None
        assert orch.snapshots(run.id)[: len(kept)] == kept
        assert len(kept) >= 3


def quick_giving_up(config: lm.ClusterConfig) -> lm.LocustClient:
    import tenacity

    return lm.LocustClient(
        config.url,
        timeout=2,
        retrying=lambda: tenacity.Retrying(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_fixed(0.2),
            reraise=True,
        ),
    )


RACER = textwrap.dedent(
    """
    import sys, time
    import loadmanager as lm
    url, cluster_url, test_id, go = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    results = []
    with lm.connect(url) as storage, lm.Orchestrator(
        storage=storage, clusters=lm.ClusterRegistry({"cluster-1": cluster_url}), monitor=False
    ) as orch:
        while time.time() < go:
            time.sleep(0.001)
        for _ in range(10):
            try:
                results.append("started:" + orch.start_run(test_id, actor="racer").id)
            except lm.ClusterBusyError:
                results.append("busy")
    print(" ".join(results))
    """
)


def test_two_processes_racing_20_starts_get_exactly_one_running(
    orch: lm.Orchestrator, db_url: str, target: TargetServer, cluster: lm.LocalCluster
) -> None:
    test = orch.create_load_test(seed_body(target, defaultRunTime="3s"), actor=ACTOR)
    go = time.time() + 2.5
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, db_url, cluster.url, test.id, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=120)[0].split() for r in racers]
    assert [r.returncode for r in racers] == [0, 0]
    words = [w for out in outputs for w in out]
    assert len(words) == 20
    started = [w.split(":")[1] for w in words if w.startswith("started:")]
    assert len(started) == 1, words
    assert [r.id for r in orch.list_runs(load_test_id=test.id)] == started
    assert orch.wait(started[0], timeout=60).status is lm.RunStatus.FINISHED


MONITOR_PROCESS = textwrap.dedent(
    """
    import sys, time
    import loadmanager as lm
    url, cluster_url, test_id = sys.argv[1], sys.argv[2], sys.argv[3]
    storage = lm.connect(url)
    orch = lm.Orchestrator(storage=storage, clusters=lm.ClusterRegistry({"cluster-1": cluster_url}),
                           poll_interval=1.0, owner="doomed")
    run = orch.start_run(test_id, actor="doomed")
    print(run.id, flush=True)
    time.sleep(600)  # monitors until killed
    """
)


def test_a_killed_monitor_process_is_taken_over_by_reconcile(
    db_url: str, target: TargetServer, cluster: lm.LocalCluster
) -> None:
    with lm.connect(db_url) as storage:
        registry = lm.ClusterRegistry({"cluster-1": cluster.url})
        setup = lm.Orchestrator(storage=storage, clusters=registry, monitor=False)
        test = setup.create_load_test(seed_body(target, defaultRunTime="6s"), actor=ACTOR)
        setup.close()
        proc = subprocess.Popen(
            [sys.executable, "-c", MONITOR_PROCESS, db_url, cluster.url, test.id],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            run_id = proc.stdout.readline().strip()
            time.sleep(2.5)
            assert len(storage.metrics.snapshots(run_id)) >= 1  # it was monitoring
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        with lm.Orchestrator(
            storage=storage, clusters=registry, poll_interval=INTERVAL, monitor=False, owner="heir"
        ) as heir:
            deadline = time.monotonic() + 2 * INTERVAL * 1.5 + 5
            while not storage.runs.claim_monitor(
                run_id, "probe", now=lm.utc_now(), ttl=timedelta(0)
            ):
                assert time.monotonic() < deadline, "the dead replica's claim never lapsed"
                time.sleep(0.2)
            heir.reconcile()
            done = heir.wait(run_id, timeout=60)
        assert done.status is lm.RunStatus.FINISHED
        assert done.summary is not None
        with lm.LocustClient(cluster.url) as client:
            assert (*done.summary.endpoints, done.summary.aggregated) == client.stats_csv()


def test_two_orchestrators_on_one_database_store_each_snapshot_once(
    db_url: str, target: TargetServer, cluster: lm.LocalCluster
) -> None:
    registry = lm.ClusterRegistry({"cluster-1": cluster.url})
    with (
        lm.connect(db_url) as storage_a,
        lm.connect(db_url) as storage_b,
        lm.Orchestrator(
            storage=storage_a, clusters=registry, poll_interval=INTERVAL, owner="a"
        ) as a,
        lm.Orchestrator(
            storage=storage_b, clusters=registry, poll_interval=INTERVAL, owner="b"
        ) as b,
    ):
        test = a.create_load_test(seed_body(target, defaultRunTime="6s"), actor=ACTOR)
        run = b.start_run(test.id, actor=ACTOR)
        done = a.wait(run.id, timeout=60)
        assert done.status is lm.RunStatus.FINISHED
        stamps = [s.timestamp for s in a.snapshots(run.id)]
        assert len(stamps) == len(set(stamps))
        assert len(stamps) >= 4
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
        assert max(gaps) <= 2 * INTERVAL + 0.5, gaps


def test_two_real_runs_compare_plot_and_report(
    orch: lm.Orchestrator, target: TargetServer, tmp_path: Path
) -> None:
    test = orch.create_load_test(seed_body(target, defaultRunTime="4s"), actor=ACTOR)
    baseline = orch.wait(orch.start_run(test.id, actor=ACTOR).id, timeout=60)
    target.extra_delay_ms = 80  # the "new release" is slower everywhere
    try:
        slower = orch.wait(orch.start_run(test.id, actor=ACTOR).id, timeout=60)
    finally:
        target.extra_delay_ms = 0
    assert (baseline.status, slower.status) == (lm.RunStatus.FINISHED, lm.RunStatus.FINISHED)

    comparison = orch.compare(slower.id, baseline.id)
    assert comparison.aggregated.figure("median").regression
    assert comparison.regression
    items = comparison.endpoint("GET /items")
    assert items is not None
    assert items.figure("median").current >= 80  # type: ignore[operator]

    trend = orch.trend(test.id)
    assert [p.run_id for p in trend] == [baseline.id, slower.id]
    assert trend[1].median > trend[0].median  # type: ignore[operator]

    rows = orch.endpoint_stats(slower.id)
    assert rows[-1].name == "Aggregated"
    slow_series = orch.series(slower.id, 10, endpoint="GET /slow")
    assert slow_series
    assert all((b.current_p50.avg or 0) >= 80 for b in slow_series if b.current_p50.avg)

    run_png, cmp_png = tmp_path / "run.png", tmp_path / "comparison.png"
    lm.save_png(lm.plot_run(orch.series(slower.id, 50), title="slower run"), run_png)
    lm.save_png(lm.plot_comparison(comparison, "median"), cmp_png)
    for png, size in ((run_png, (900, 650)), (cmp_png, (900, 450))):
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == size
        assert png.stat().st_size > 10_000

    report = lm.write_report(orch, slower.id, tmp_path / "report.html").read_text()
    assert slower.summary is not None
    agg = slower.summary.aggregated
    assert f">{agg.num_requests:,}</td>" in report
    assert f">{agg.num_failures:,}</td>" in report
    assert '"id":"endpoints"' in report  # per-endpoint response times over time
