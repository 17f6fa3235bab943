"""The host dies at each step of a run's life; an heir in this process settles it.

A subprocess drives a real run on a real master and SIGKILLs itself at one step
of :data:`loadmanager.lifecycle.STEPS` (the Orchestrator's ``checkpoint`` hook).
An heir replica then starts here, as a host restarted by its supervisor would,
and every case must end in the state the crash table of docs/concepts.md
documents: taken over within one claim expiry, no run left pending, and no
master left generating load without a monitored run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import loadmanager as lm
from loadmanager.lifecycle import CACHE_GUARD, STEPS
from loadmanager.providers.local import process_running
from loadmanager.testing.seed import seed_load_test_body
from loadmanager.testing.target import TargetServer

pytestmark = pytest.mark.slow

LOCUSTFILE = Path(__file__).parent / "locustfiles" / "basic.py"
INTERVAL = 1.0
TTL = 1.5 * INTERVAL  # the claim expiry
ACTOR = "user@example.com"

DOOMED = textwrap.dedent(
    """
    import os, signal, sys, time
    import loadmanager as lm

    url, cluster_url, test_id, step, state_dir, files = sys.argv[1:7]

    def checkpoint(name):
        if name == step:
            print("dying at", name, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    storage = lm.connect(url)
    made = lm.LocalProvider(state_dir=state_dir, max_workers=1)
    orch = lm.Orchestrator(
        storage=storage,
        clusters=lm.ClusterRegistry({"cluster-1": cluster_url, "made": made}),
        poll_interval=1.0,
        owner="doomed",
        checkpoint=checkpoint,
        locustfiles=[lm.LocustfileDirectory(files)],
    )
    run = orch.start_run(test_id, actor="doomed")
    if step == "stop-sent":
        orch.stop_run(run.id, actor="doomed")
    time.sleep(120)  # monitors until the checkpoint kills it
    """
)

# step -> (run time, what the heir must find: the documented outcome)
CASES = {
    "pending": (None, lm.RunStatus.FAILED),
    "cluster-made": (None, lm.RunStatus.FAILED),  # on a LocalProvider's cluster
    "swarm-accepted": ("4s", lm.RunStatus.FINISHED),
    "running": ("4s", lm.RunStatus.FINISHED),
    "stop-sent": (None, lm.RunStatus.STOPPED),
    "final-figures": ("3s", lm.RunStatus.FINISHED),
    "summary-written": ("3s", lm.RunStatus.FINISHED),
}


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer(slow_ms=20, fail_ratio=0.1) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(target: TargetServer) -> Iterator[lm.LocalCluster]:
    with lm.LocalCluster(LOCUSTFILE, workers=1, host=target.url) as running:
        yield running


def master_state(cluster: lm.LocalCluster) -> lm.MasterState:
    with lm.LocustClient(cluster.url) as client:
        return client.stats().state


def test_the_crash_table_has_a_case_for_every_step() -> None:
    assert set(CASES) == set(STEPS)
    table = (Path(__file__).parent.parent / "docs" / "concepts.md").read_text()
    for step in STEPS:
        assert f"`{step}`" in table, step


@pytest.mark.parametrize("step", list(CASES))
def test_a_host_killed_at_each_step_is_settled_by_an_heir(
    step: str, tmp_path: Path, target: TargetServer, cluster: lm.LocalCluster
) -> None:
    run_time, outcome = CASES[step]
    url = f"sqlite:///{tmp_path / 'lm.db'}"
    state_dir = tmp_path / "clusters"
    made = lm.LocalProvider(state_dir=state_dir, max_workers=1)
    registry = lm.ClusterRegistry({"cluster-1": cluster.url, "made": made})
    files = [lm.LocustfileDirectory(LOCUSTFILE.parent)]
    with lm.connect(url) as storage:
        with lm.Orchestrator(
            storage=storage, clusters=registry, monitor=False, locustfiles=files
        ) as setup:
            body = {**seed_load_test_body(), "targetUrl": target.url, "defaultUsers": 4}
            body["defaultSpawnRate"] = 4
            if step == "cluster-made":
                body.update(locustClusterId="made", locustfile=LOCUSTFILE.name)
            if run_time:
                body["defaultRunTime"] = run_time
            test = setup.create_load_test(body, actor=ACTOR)
        doomed = subprocess.run(
            [
                sys.executable,
                "-c",
                DOOMED,
                url,
                cluster.url,
                test.id,
                step,
                str(state_dir),
                str(LOCUSTFILE.parent),
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        died = time.monotonic()
        assert doomed.returncode == -9, doomed.stderr
        assert f"dying at {step}" in doomed.stdout
        [run] = storage.runs.find(lm.RunFilter(load_test_id=test.id))

        left = [int(p) for h in made.held() for p in h.handle.ref["pids"].split(",") if p]
        with lm.Orchestrator(
            storage=storage,
            clusters=registry,
            poll_interval=INTERVAL,
            owner="heir",
            locustfiles=files,
        ) as heir:
            heir.reconcile()
            # Within one claim expiry, the heir owns the run or it has ended; a
            # pending run may take Locust's 2 s cache longer to tell (plus a poll).
            deadline = died + TTL + CACHE_GUARD.total_seconds() + 2 * INTERVAL
            while True:
                current = storage.runs.get(run.id)
                claim = storage.runs.monitor_of(run.id)
                if current.status.is_terminal or (
                    current.status is not lm.RunStatus.PENDING
                    and claim is not None
                    and claim.owner == "heir"
                ):
                    break
                assert time.monotonic() < deadline, (step, current.status, claim)
                time.sleep(0.1)
            assert current.status is not lm.RunStatus.PENDING
            ended = heir.wait(run.id, timeout=60)

        assert ended.status is outcome, (step, ended.failure_reason)
        if outcome is not lm.RunStatus.FAILED:
            assert ended.summary is not None
            with lm.LocustClient(cluster.url) as client:
                assert ended.summary.aggregated == client.stats_csv()[-1]
        else:
            assert "interrupted" in (ended.failure_reason or "")
        assert not master_state(cluster).generating_load, step
        # A cluster made for the run is gone with it: no folder, no process.
        assert made.held() == []
        assert [p for p in left if process_running(p)] == [], step
        if step == "cluster-made":
            assert len(left) == 2  # the master and its worker outlived the host
