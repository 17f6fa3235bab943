"""loadmanager's Locust plugin on a real master with real workers.

The master merges every worker's response-time histograms; the plugin brings
them out. Percentiles computed from them must equal Locust's own final CSV for
every endpoint and the aggregated row, exactly.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import loadmanager as lm
from loadmanager import histograms as h
from loadmanager.testing.seed import seed_load_test_body
from loadmanager.testing.target import TargetServer

pytestmark = pytest.mark.slow

LOCUSTFILE = Path(__file__).parent / "locustfiles" / "basic.py"
FIELDS = ("p50", "p66", "p75", "p80", "p90", "p95", "p98", "p99", "p99_9", "p99_99", "p100")


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer(slow_ms=30, fail_ratio=0.2) as server:
        yield server


def test_histogram_percentiles_equal_locusts_final_csv_for_every_endpoint(
    target: TargetServer,
) -> None:
    sent: list[str] = []
    with lm.LocalCluster(LOCUSTFILE, workers=2, host=target.url) as cluster:
        http = httpx.Client(
            base_url=cluster.url + "/",
            event_hooks={"request": [lambda request: sent.append(request.url.path)]},
        )
        with http, lm.LocustClient(cluster.url, client=http) as client:
            client.reset_stats()
            client.swarm(8, 8, host=target.url)
            time.sleep(5)
            client.stop()
            time.sleep(4)  # the workers' last reports (every 3 s) reach the master
            del sent[:]
            polled = client.poll()
            assert sent == ["/loadmanager/v1/figures"]  # the statistics came with it
            rows = client.stats_csv()
            client.reset_stats()
            fresh = client.poll()  # within Locust's 2 s cache of /stats/requests
    assert fresh.stats.aggregated is not None
    assert fresh.stats.aggregated.num_requests == 0  # of this moment, not the cache's
    figures = polled.figures
    counted = {e.key: e.num_requests for e in polled.stats.endpoints}
    assert counted == {r.key: r.num_requests for r in rows[:-1]}  # Locust's own statistics
    assert polled.stats.state == "stopped"
    assert polled.figures_error is None
    assert figures is not None
    assert figures.locustfiles == {"basic.py": hashlib.sha256(LOCUSTFILE.read_bytes()).hexdigest()}
    assert len(figures.workers) == 2
    compared = 0
    for row in rows:
        found = figures.histogram(row.key)
        assert found is not None, row.key
        assert found.num_requests == row.num_requests, row.key
        assert h.total(found.histogram) == row.num_requests, row.key
        ours = h.percentiles(found.histogram)
        theirs = [getattr(row.percentiles, f) for f in FIELDS]
        assert [None if v is None else float(v) for v in ours.values()] == theirs, row.key
        compared += 1
    assert compared == len(rows) >= 4  # three endpoints and the aggregated row


def test_a_master_without_the_plugin_answers_none_once(target: TargetServer) -> None:
    sent: list[str] = []
    with lm.LocalCluster(LOCUSTFILE, workers=1, host=target.url, plugin=False) as cluster:
        http = httpx.Client(
            base_url=cluster.url + "/",
            event_hooks={"request": [lambda request: sent.append(request.url.path)]},
        )
        with http, lm.LocustClient(cluster.url, client=http) as client:
            assert client.figures() is None
            assert client.figures() is None
            polled = client.poll()
    assert sent == ["/loadmanager/v1/figures", "/stats/requests"]  # remembered: asked once
    assert polled.figures is None
    assert polled.figures_error is None
    assert polled.stats.state == "ready"


def test_stored_histograms_give_the_whole_run_and_merged_runs_exactly(
    tmp_path: Path, target: TargetServer
) -> None:
    with lm.LocalCluster(LOCUSTFILE, workers=2, host=target.url) as cluster, lm.connect(
        f"sqlite:///{tmp_path / 'lm.db'}"
    ) as storage, lm.Orchestrator(
        storage, lm.ClusterRegistry({"cluster-1": cluster.url}), poll_interval=1.0
    ) as orch:  # fmt: skip
        body = {**seed_load_test_body(), "targetUrl": target.url, "defaultUsers": 6,
                "defaultSpawnRate": 6, "defaultRunTime": "5s"}  # fmt: skip
        test = orch.create_load_test(body, actor="user@example.com")
        runs = []
        for _ in range(2):
            run = orch.start_run(test.id, actor="user@example.com")
            runs.append(orch.wait(run.id, timeout=60))
        assert all(s.histograms for s in orch.snapshots(runs[0].id)[1:])
        for run in runs:
            assert run.summary is not None
            for row in (*run.summary.endpoints, run.summary.aggregated):
                endpoint = None if row.key == "Aggregated" else row.key
                assert orch.percentiles(run.id, endpoint=endpoint) == row.percentiles, row.key
        merged = orch.merged_percentiles([r.id for r in runs])
        window = orch.percentiles(runs[0].id, end=runs[0].started_at)  # before it began
    assert window is None
    assert merged is not None
    assert merged.p100 == max(r.summary.aggregated.percentiles.p100 for r in runs)  # type: ignore[union-attr,type-var]


def test_a_windowed_endpoint_percentile_shows_a_slowdown_the_cumulative_one_hides(
    tmp_path: Path,
) -> None:
    # /slow takes 10 ms for the first 10 s of the run, then 300 ms for 14 s.
    with TargetServer(slow_ms=10, fail_ratio=0.0) as target, lm.LocalCluster(
        LOCUSTFILE, workers=1, host=target.url
    ) as cluster, lm.connect("memory://") as storage, lm.Orchestrator(
        storage, lm.ClusterRegistry({"cluster-1": cluster.url}), poll_interval=1.0
    ) as orch:  # fmt: skip
        body = {**seed_load_test_body(), "targetUrl": target.url, "defaultUsers": 6,
                "defaultSpawnRate": 6, "defaultRunTime": "24s"}  # fmt: skip
        run = orch.start_run(orch.create_load_test(body, actor="user@example.com").id,
                             actor="user@example.com")  # fmt: skip
        time.sleep(10)
        target.slow_ms = 300
        changed = lm.utc_now()
        ended = orch.wait(run.id, timeout=60)
        p95 = orch.percentile_series(run.id, endpoint="GET /slow", fraction=0.95, window=10)
        p50 = orch.percentile_series(run.id, endpoint="GET /slow", fraction=0.5, window=10)
        snapshots = {s.timestamp: s for s in orch.snapshots(run.id)}
    assert ended.status is lm.RunStatus.FINISHED
    first_slow = next((at for at, v in p95 if at > changed and v is not None and v >= 250), None)
    assert first_slow is not None, p95
    # Within two poll intervals, once a worker's report (every 3 s) has it.
    assert (first_slow - changed).total_seconds() <= 2 * 1.0 + 3.0, (changed, p95)
    # Once the whole window is past the change, the windowed median is slow,
    # while Locust's cumulative median for the endpoint still reads fast (the
    # slow requests are fewer: each takes 300 ms).
    late = [(at, v) for at, v in p50 if (at - changed).total_seconds() >= 11.5 and v is not None]
    assert late
    at, windowed = late[0]
    row = next(r for r in snapshots[at].endpoints if r.key == "GET /slow")
    assert windowed >= 250
    assert row.median_response_time is not None
    assert row.median_response_time < 100
