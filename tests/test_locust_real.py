"""LocustClient and LocalCluster against a real master, real workers, a real target."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import loadmanager as lm
from loadmanager.locust import LocustClient, LocustStats
from loadmanager.locust.local import LocalCluster, LocalClusterError
from loadmanager.testing.target import TargetServer

LOCUSTFILE = Path(__file__).parent / "locustfiles" / "basic.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer(slow_ms=40, fail_ratio=0.25) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(target: TargetServer) -> Iterator[LocalCluster]:
    with LocalCluster(LOCUSTFILE, workers=2, host=target.url) as running:
        yield running


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[LocustClient]:
    with LocustClient(cluster.url, timeout=5) as c:
        yield c
        c.stop()  # leave the master idle for the next test
        wait_for(c, lambda s: s.state in ("stopped", "ready"), timeout=15)


def wait_for(
    client: LocustClient, condition: Callable[[LocustStats], bool], timeout: float
) -> LocustStats:
    deadline = time.monotonic() + timeout
    while True:
        stats = client.stats()
        if condition(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.5)


def test_the_cluster_has_its_workers(client: LocustClient) -> None:
    assert client.worker_count() == 2


def test_swarm_runs_every_endpoint_and_stop_stops(
    client: LocustClient, target: TargetServer
) -> None:
    client.reset_stats()
    result = client.swarm(10, 10, host=target.url, user_classes=["ApiUser"])
    assert result.user_classes == ("ApiUser",)  # the classes the master selected
    stats = wait_for(
        client,
        lambda s: (
            s.state == "running"
            and s.user_count == 10
            and len(s.endpoints) == 3
            and (s.aggregated is not None and s.aggregated.num_requests > 50)
        ),
        timeout=20,
    )
    assert (stats.state, stats.user_count, stats.worker_count) == ("running", 10, 2)
    assert {r.key for r in stats.endpoints} == {"GET /items", "GET /slow", "GET /flaky"}
    flaky = stats.endpoint("GET /flaky")
    assert flaky is not None
    assert flaky.num_failures > 0
    assert stats.endpoint("GET /items").num_failures == 0  # type: ignore[union-attr]
    assert any(e.name == "/flaky" for e in stats.errors)
    slow = stats.endpoint("GET /slow")
    assert slow is not None
    assert slow.median_response_time >= 40
    client.stop()
    stopped = wait_for(client, lambda s: s.state == "stopped", timeout=10)
    assert stopped.state == "stopped"
    assert client.failures()[0].name == "/flaky"


def test_a_timed_run_stops_by_itself(client: LocustClient, target: TargetServer) -> None:
    client.reset_stats()
    result = client.swarm(4, 4, host=target.url, run_time="3s", user_classes=["ApiUser"])
    assert result.run_time_seconds == 3
    wait_for(client, lambda s: s.state == "running", timeout=10)
    stats = wait_for(client, lambda s: s.state == "stopped", timeout=15)
    assert stats.state == "stopped"


def test_csv_percentiles_agree_with_the_json_for_the_same_moment(
    client: LocustClient, target: TargetServer
) -> None:
    client.reset_stats()
    client.swarm(8, 8, host=target.url, run_time="3s", user_classes=["ApiUser"])
    wait_for(client, lambda s: s.state == "running", timeout=10)  # fresh, not cached
    wait_for(
        client,
        lambda s: (
            s.state == "stopped" and s.aggregated is not None and s.aggregated.num_requests > 0
        ),
        timeout=20,
    )
    time.sleep(2.2)  # let the master's 2 s cache of /stats/requests expire
    stats = client.stats()
    rows = client.stats_csv()
    assert rows[-1].name == "Aggregated"
    by_key = {r.key: r for r in rows}
    for row in [*stats.endpoints, stats.aggregated]:
        assert row is not None
        csv_row = by_key[row.key]
        assert csv_row.num_requests == row.num_requests
        assert csv_row.num_failures == row.num_failures
        assert csv_row.median_response_time == row.median_response_time
        # The CSV writes percentiles as whole milliseconds, the JSON does not.
        assert csv_row.percentiles.p95 == int(row.p95_response_time or 0)
        assert csv_row.percentiles.p99 == int(row.p99_response_time or 0)
        assert csv_row.percentiles.p100 is not None
        assert csv_row.percentiles.p50 <= csv_row.percentiles.p95 <= csv_row.percentiles.p100  # type: ignore[operator]


def test_user_classes_choose_who_runs(client: LocustClient, target: TargetServer) -> None:
    client.reset_stats()
    client.swarm(2, 2, host=target.url, user_classes=["OrderUser"])
    # "running" proves the answer is fresh: the master caches /stats/requests
    # for 2 s, and the cached answer is the previous test's, already stopped.
    stats = wait_for(
        client,
        lambda s: (
            s.state == "running" and s.aggregated is not None and s.aggregated.num_requests >= 5
        ),
        timeout=20,
    )
    assert {r.key for r in stats.endpoints} == {"POST /orders"}


def test_an_invalid_spawn_rate_is_refused_with_locusts_message(client: LocustClient) -> None:
    with pytest.raises(lm.LocustRejectedError) as info:
        client.swarm(5, -1)
    assert "spawn_rate" in info.value.message


def test_report_and_exceptions_are_available(client: LocustClient) -> None:
    assert "<html" in client.report_html().lower()
    assert client.exceptions() == ()


def test_a_cluster_that_cannot_start_says_why_and_leaves_no_process(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemExit('this locustfile is broken on purpose')\n")
    cluster = LocalCluster(broken, workers=1, startup_timeout=30)
    with pytest.raises(LocalClusterError) as info:
        cluster.start()
    assert "broken on purpose" in info.value.log_tail
    assert cluster.master is None
    assert cluster.worker_processes == []


def test_processes_are_stopped_even_when_the_body_raises(target: TargetServer) -> None:
    cluster = LocalCluster(LOCUSTFILE, workers=1, host=target.url)
    procs: list[object] = []

    def body() -> None:
        with cluster:
            procs.extend([cluster.master, *cluster.worker_processes])
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        body()
    assert len(procs) == 2
    assert all(p.poll() is not None for p in procs)  # type: ignore[attr-defined]
