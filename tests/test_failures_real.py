"""Failures and worker health from a real Locust master and workers.

The failures a run stores are checked against Locust's own ``failures.csv`` of
the same master, read and parsed here with the csv module, not the library's
parser; a locustfile that busy-loops saturates its worker and the run says so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import loadmanager as lm
from loadmanager.testing.seed import seed_load_test_body
from loadmanager.testing.target import TargetServer

pytestmark = pytest.mark.slow

FILES = Path(__file__).parent / "locustfiles"
ACTOR = "user@example.com"


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer(slow_ms=5, fail_ratio=0.3) as server:
        yield server


def run_on(
    tmp_path: Path, target: TargetServer, locustfile: str, **body: object
) -> tuple[lm.LoadTestRun, str]:
    with lm.LocalCluster(FILES / locustfile, workers=1, host=target.url) as cluster, lm.connect(
        "memory://"
    ) as storage, lm.Orchestrator(
        storage, lm.ClusterRegistry({"cluster-1": cluster.url}), poll_interval=1.0
    ) as orch:  # fmt: skip
        test_body = {
            **seed_load_test_body(), "targetUrl": target.url, "locustfile": locustfile,
            "defaultUsers": 4, "defaultSpawnRate": 4, "defaultRunTime": "6s", **body,
        }  # fmt: skip
        run = orch.start_run(orch.create_load_test(test_body, actor=ACTOR).id, actor=ACTOR)
        ended = orch.wait(run.id, timeout=60)
        raw = httpx.get(f"{cluster.url}/stats/failures/csv", timeout=10).text
    return ended, raw


def test_the_failures_stored_equal_locusts_failures_csv(
    tmp_path: Path, target: TargetServer
) -> None:
    run, raw = run_on(tmp_path, target, "basic.py")
    assert run.status is lm.RunStatus.FINISHED
    theirs = {
        (row["Method"], row["Name"], row["Error"], int(row["Occurrences"]))
        for row in csv.DictReader(io.StringIO(raw))
    }
    ours = {(f.method, f.name, f.error, f.occurrences) for f in run.failures}
    assert theirs  # /flaky fails 30 % of the time: the table is not empty
    assert ours == theirs


def test_a_busy_looping_locustfile_saturates_its_worker_and_the_run_says_so(
    tmp_path: Path, target: TargetServer
) -> None:
    # busy.py has its workers read their CPU every second, not every 10 s.
    run, _ = run_on(tmp_path, target, "busy.py", defaultUsers=8, defaultSpawnRate=8,
                    defaultRunTime="6s")  # fmt: skip
    assert run.status is lm.RunStatus.FINISHED
    assert run.saturated, "a worker spinning 8 users should pass 90 % CPU"
