"""The LocalProvider end to end: real masters and workers made per run, then taken away.

Every process here is real: the provider starts ``python -m locust`` masters and
workers on 127.0.0.1 running the content that resolved, against a real local
target; the host that dies is a real process SIGKILLed mid-run.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import loadmanager as lm
from loadmanager.providers.local import process_running
from loadmanager.testing.seed import seed_load_test_body
from loadmanager.testing.target import TargetServer

pytestmark = pytest.mark.slow

ACTOR = "user@example.com"
ITEMS = textwrap.dedent(
    """
    from locust import FastHttpUser, constant, task

    class ItemsUser(FastHttpUser):
        wait_time = constant(0.05)

        @task
        def items(self):
            self.client.get("/items")
    """
)
ORDERS = textwrap.dedent(
    """
    from locust import FastHttpUser, constant, task

    class OrdersUser(FastHttpUser):
        wait_time = constant(0.05)

        @task
        def order(self):
            self.client.post("/orders", json={"sku": "x"})
    """
)


def pids_of(run: lm.LoadTestRun) -> list[int]:
    assert run.cluster is not None
    return [int(p) for p in run.cluster.ref["pids"].split(",")]


@pytest.fixture(autouse=True)
def nothing_left(tmp_path: Path) -> Iterator[None]:
    """Whatever a failing test leaves in its state folder is released afterwards."""
    yield
    for held in lm.LocalProvider(state_dir=tmp_path / "clusters").held():
        lm.LocalProvider(state_dir=tmp_path / "clusters").release(held.handle)


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer(slow_ms=10, fail_ratio=0.0) as server:
        yield server


def test_two_tests_run_at_once_on_their_own_clusters_and_leave_nothing(
    tmp_path: Path, target: TargetServer
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "items.py").write_text(ITEMS)
    provider = lm.LocalProvider(state_dir=tmp_path / "clusters", max_workers=1)
    with lm.connect(f"sqlite:///{tmp_path / 'lm.db'}") as storage, lm.Orchestrator(
        storage,
        lm.ClusterRegistry({"local": provider}),
        poll_interval=1.0,
        locustfiles=[lm.LocustfileDirectory(files)],
    ) as orch:  # fmt: skip
        stored = orch.put_locustfile("orders.py", ORDERS, tenant_id="tenant-1", actor=ACTOR)
        common = {**seed_load_test_body(), "locustClusterId": "local", "targetUrl": target.url,
                  "defaultUsers": 3, "defaultSpawnRate": 3, "defaultRunTime": "4s"}  # fmt: skip
        items = orch.create_load_test(
            {**common, "name": "items", "locustfile": "items.py"}, actor=ACTOR
        )
        orders = orch.create_load_test(
            {**common, "name": "orders", "locustfile": "orders.py"}, actor=ACTOR
        )
        first = orch.start_run(items.id, actor=ACTOR)
        second = orch.start_run(orders.id, actor=ACTOR)
        both_running = {r.status for r in (orch.get_run(first.id), orch.get_run(second.id))}
        assert both_running == {lm.RunStatus.RUNNING}
        assert first.cluster is not None
        assert second.cluster is not None
        assert first.cluster.master_url != second.cluster.master_url
        assert len(provider.held()) == 2
        made = pids_of(first) + pids_of(second)
        assert all(process_running(p) for p in made)
        done = [orch.wait(r.id, timeout=60) for r in (first, second)]
        # The made masters load the plugin: their polls on the loop carry histograms.
        assert orch.monitor.polls_looped >= 2
        assert any(s.histograms for s in orch.snapshots(first.id)[1:])  # after the pool's poll

    assert [r.status for r in done] == [lm.RunStatus.FINISHED, lm.RunStatus.FINISHED]
    items_run, orders_run = done
    assert items_run.summary is not None
    assert orders_run.summary is not None
    assert {e.key for e in items_run.summary.endpoints} == {"GET /items"}
    assert {e.key for e in orders_run.summary.endpoints} == {"POST /orders"}
    assert items_run.parameters.locustfile_sha256 == hashlib.sha256(ITEMS.encode()).hexdigest()
    assert items_run.parameters.locustfile_version is None
    assert orders_run.parameters.locustfile_sha256 == stored.sha256
    assert orders_run.parameters.locustfile_version == 1
    assert items_run.parameters.workers == 1
    deadline = time.monotonic() + 10
    while any(process_running(p) for p in made) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in made if process_running(p)] == []
    assert provider.held() == []
    assert list((tmp_path / "clusters").iterdir()) == []


def test_a_locustfile_that_fails_to_load_fails_the_run_with_its_log(
    tmp_path: Path, target: TargetServer
) -> None:
    provider = lm.LocalProvider(state_dir=tmp_path / "clusters", max_workers=1, startup_timeout=30)
    with lm.connect("memory://") as storage, lm.Orchestrator(
        storage, lm.ClusterRegistry({"local": provider}), monitor=False
    ) as orch:  # fmt: skip
        orch.put_locustfile("bad.py", "raise SystemExit('broken on purpose')\n",
                            tenant_id="tenant-1", actor=ACTOR)  # fmt: skip
        body = {**seed_load_test_body(), "locustClusterId": "local", "locustfile": "bad.py",
                "targetUrl": target.url}  # fmt: skip
        test = orch.create_load_test(body, actor=ACTOR)
        with pytest.raises(lm.ProvisioningError) as info:
            orch.start_run(test.id, actor=ACTOR)
        run = orch.get_run(info.value.run_id or "")
    assert run.status is lm.RunStatus.FAILED
    assert "broken on purpose" in (run.failure_reason or "")
    assert provider.held() == []


DOOMED = textwrap.dedent(
    """
    import os, signal, sys, time
    import loadmanager as lm
    from loadmanager.locustfiles import ResolvedLocustfile

    url, state_dir, long_id, short_id, target = sys.argv[1:6]
    made = lm.LocalProvider(state_dir=state_dir, max_workers=1)
    orch = lm.Orchestrator(lm.connect(url), lm.ClusterRegistry({"local": made}), poll_interval=1.0)
    runs = [orch.start_run(long_id, actor="doomed"), orch.start_run(short_id, actor="doomed")]
    # A cluster made for a run that was never recorded (a start cut short).
    idle = "from locust import User\\nclass Idle(User):\\n    pass\\n"
    code = ResolvedLocustfile("ghost.py", idle, None, "test")
    made.provision(lm.ProvisionRequest("ghost-run", "t", "tenant-1", code, 1, target))
    print(" ".join(r.id for r in runs), flush=True)
    time.sleep(1.5)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_host_killed_mid_run_is_adopted_by_reconcile_and_leaves_nothing(
    tmp_path: Path, target: TargetServer
) -> None:
    url = f"sqlite:///{tmp_path / 'lm.db'}"
    state_dir = tmp_path / "clusters"
    provider = lm.LocalProvider(state_dir=state_dir, max_workers=1)
    registry = lm.ClusterRegistry({"local": provider})
    with lm.connect(url) as storage:
        with lm.Orchestrator(storage, registry, monitor=False) as setup:
            for name, content in (("long.py", ITEMS), ("short.py", ORDERS)):
                setup.put_locustfile(name, content, tenant_id="tenant-1", actor=ACTOR)
            common = {**seed_load_test_body(), "locustClusterId": "local",
                      "targetUrl": target.url, "defaultUsers": 2,
                      "defaultSpawnRate": 2}  # fmt: skip
            long = setup.create_load_test(
                {**common, "locustfile": "long.py", "defaultRunTime": "10s"}, actor=ACTOR
            )
            short = setup.create_load_test(
                {**common, "locustfile": "short.py", "defaultRunTime": "2s"}, actor=ACTOR
            )
        doomed = subprocess.run(
            [sys.executable, "-c", DOOMED, url, str(state_dir), long.id, short.id, target.url],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert doomed.returncode == -9, doomed.stderr
        long_id, short_id = doomed.stdout.split()
        held = {h.run_id: h for h in provider.held()}
        assert set(held) == {long_id, short_id, "ghost-run"}  # all outlived their host
        left = [int(p) for h in held.values() for p in h.handle.ref["pids"].split(",") if p]
        time.sleep(3)  # the short run's own run time ends while nobody watches

        with lm.Orchestrator(storage, registry, poll_interval=1.0, owner="heir") as heir:
            active = heir.reconcile()
            assert "ghost-run" not in {h.run_id for h in provider.held()}
            assert long_id in {r.id for r in active if r.status is lm.RunStatus.RUNNING}
            ended_long = heir.wait(long_id, timeout=60)
            ended_short = heir.wait(short_id, timeout=60)

    assert ended_long.status is lm.RunStatus.FINISHED, ended_long.failure_reason
    assert ended_short.status is lm.RunStatus.FINISHED, ended_short.failure_reason
    assert ended_long.summary is not None
    assert ended_long.summary.aggregated.num_requests > 0
    assert provider.held() == []
    deadline = time.monotonic() + 10
    while any(process_running(p) for p in left) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in left if process_running(p)] == []
