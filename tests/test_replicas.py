"""Several host replicas on one store: stalls, takeovers and disjoint clusters.

The stall test injects a fault (a master whose answer hangs for three claim
expiries) with the fake master; the disjoint-registries test drives two real
Locust clusters.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import loadmanager as lm
from loadmanager.testing import FakeLocustMaster
from loadmanager.testing.seed import seed_load_test_body
from loadmanager.testing.target import TargetServer

ACTOR = "user@example.com"
LOCUSTFILE = Path(__file__).parent / "locustfiles" / "basic.py"


@pytest.fixture(params=["sqlite", "mongodb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lm.db'}"
    url: str = request.getfixturevalue("mongo_url")
    return url


@pytest.mark.slow
def test_a_master_stalling_past_three_claim_expiries_stores_no_slot_twice(
    store_url: str,
) -> None:
    interval = 0.5
    stall = 3 * 1.5 * interval
    master = FakeLocustMaster()
    stalled = threading.Event()

    def stall_once() -> None:
        # The first poll after the run is under way hangs; every later one answers.
        if master.calls.count("stats") == 2 and not stalled.is_set():
            stalled.set()
            time.sleep(stall)

    master.on_stats = stall_once
    registry = lm.ClusterRegistry({"cluster-1": "http://m1"})
    with lm.connect(store_url) as storage:
        replicas = [
            lm.Orchestrator(
                storage=storage,
                clusters=registry,
                client_factory=lambda config: master,
                poll_interval=interval,
                owner=name,
            )
            for name in ("a", "b")
        ]
        try:
            test = replicas[0].create_load_test(seed_load_test_body(), actor=ACTOR)
            run = replicas[0].start_run(test.id, actor=ACTOR)
            time.sleep(stall + 6 * interval)
            replicas[0].stop_run(run.id, actor=ACTOR)
            ended = replicas[1].wait(run.id, timeout=30)
        finally:
            for r in replicas:
                r.close()
        snapshots = storage.metrics.snapshots(run.id)
    assert stalled.is_set()
    assert ended.status is lm.RunStatus.STOPPED
    per_slot = Counter(s.slot for s in snapshots)
    assert per_slot
    assert max(per_slot.values()) == 1, per_slot
    # The stalled answer did come back: more answers were read than slots kept.
    assert master.calls.count("stats") > len(snapshots)
    assert len(snapshots) >= (stall + 4 * interval) / interval - 3  # the other replica polled


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer(slow_ms=20, fail_ratio=0.1) as server:
        yield server


@pytest.mark.slow
def test_replicas_with_disjoint_clusters_each_monitor_only_their_own_run(
    tmp_path: Path, target: TargetServer
) -> None:
    url = f"sqlite:///{tmp_path / 'lm.db'}"
    with (
        lm.LocalCluster(LOCUSTFILE, workers=1, host=target.url) as east_master,
        lm.LocalCluster(LOCUSTFILE, workers=1, host=target.url) as west_master,
        lm.connect(url) as storage,
        lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"east": east_master.url}),
            poll_interval=1.0,
            owner="east-service",
        ) as east,
        lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"west": west_master.url}),
            poll_interval=1.0,
            owner="west-service",
        ) as west,
    ):
        body = {**seed_load_test_body(), "targetUrl": target.url, "defaultRunTime": "6s"}
        body.update(defaultUsers=4, defaultSpawnRate=4)
        runs = {
            "east": east.start_run(
                east.create_load_test({**body, "locustClusterId": "east"}, actor=ACTOR).id,
                actor=ACTOR,
            ),
            "west": west.start_run(
                west.create_load_test({**body, "locustClusterId": "west"}, actor=ACTOR).id,
                actor=ACTOR,
            ),
        }
        owners: dict[str, set[str]] = {"east": set(), "west": set()}
        deadline = time.monotonic() + 60
        while any(storage.runs.get(r.id).is_active for r in runs.values()):
            for name, run in runs.items():
                claim = storage.runs.monitor_of(run.id)
                if claim is not None and storage.runs.get(run.id).is_active:
                    owners[name].add(claim.owner)
            assert time.monotonic() < deadline
            time.sleep(0.2)
        ended = {name: storage.runs.get(run.id) for name, run in runs.items()}
        finals = {"east": east_master, "west": west_master}
        for name, run in ended.items():
            assert run.status is lm.RunStatus.FINISHED, run.failure_reason
            assert run.summary is not None
            with lm.LocustClient(finals[name].url) as client:
                assert (*run.summary.endpoints, run.summary.aggregated) == client.stats_csv()
            assert storage.metrics.count(run.id) >= 3
    assert owners == {"east": {"east-service"}, "west": {"west-service"}}
