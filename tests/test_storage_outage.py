"""A storage outage loses no snapshot shorter than the buffer, and counts what it drops.

The first test stops a real MongoDB server (the nx-27017 stand-in, on a data
directory) for 8 s while a run is monitored, then starts it again on the same
port. The second injects the outage with a storage whose writes fail, to reach
the buffer's limit without waiting for it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mongo_server import _wait_until_serving, free_port

import loadmanager as lm
from loadmanager.testing import FakeLocustMaster, ManualClock
from loadmanager.testing.seed import seed_load_test_body

ACTOR = "user@example.com"


@contextmanager
def standin(port: int, data: Path, log: Path) -> Iterator[None]:
    exe = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
    proc = subprocess.Popen(
        [exe, "--data-dir", str(data), "--port", str(port), "--log-file", str(log),
         "--pid-file", str(data / "pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_until_serving(port, proc, log)
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("MONGODB_URI")),
    reason="stops and restarts a server of its own; a MONGODB_URI server is not ours to stop",
)
def test_a_mongodb_outage_of_8_seconds_loses_no_snapshot(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    data.mkdir()
    master = FakeLocustMaster()
    with standin(port, data, tmp_path / "log1"):
        storage = lm.connect(f"mongodb://127.0.0.1:{port}/outage", server_selection_timeout_ms=300)
        orch = lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"cluster-1": "http://m1"}),
            client_factory=lambda config: master,
            poll_interval=1.0,
        )
        run = orch.start_run(orch.create_load_test(seed_load_test_body(), actor=ACTOR).id,
                             actor=ACTOR)  # fmt: skip
        time.sleep(3)
    try:
        time.sleep(8)  # the server is down
        with pytest.raises(lm.RepositoryUnavailableError):
            storage.runs.get(run.id)
        with standin(port, data, tmp_path / "log2"):
            time.sleep(3)
            orch.stop_run(run.id, actor=ACTOR)
            ended = orch.wait(run.id, timeout=30)
            slots = sorted(s.slot or 0 for s in storage.metrics.snapshots(run.id))
    finally:
        orch.close()
        storage.close()
    assert ended.status is lm.RunStatus.STOPPED
    assert ended.snapshots_dropped == 0
    assert len(slots) >= 12
    assert slots == list(range(slots[0], slots[-1] + 1)), slots  # no slot missing


class FlakyStorage:
    """Memory storage whose snapshot writes fail while ``down`` (fault injection)."""

    def __init__(self) -> None:
        self.inner = lm.connect("memory://")
        self.down = False
        outer = self

        class Metrics:
            def __getattr__(self, name: str) -> Any:
                return getattr(outer.inner.metrics, name)

            def add_many(self, snapshots: Any) -> int:
                if outer.down:
                    raise lm.RepositoryUnavailableError("down for the test")
                return outer.inner.metrics.add_many(snapshots)

        self.metrics = Metrics()
        self.load_tests = self.inner.load_tests
        self.runs = self.inner.runs
        self.locustfiles = self.inner.locustfiles
        self.url = "flaky://"

    def close(self) -> None:
        self.inner.close()


def test_past_the_buffer_the_oldest_snapshots_are_dropped_and_counted() -> None:
    clock, master, storage = ManualClock(), FakeLocustMaster(), FlakyStorage()
    with lm.Orchestrator(
        storage=storage,  # type: ignore[arg-type]
        clusters=lm.ClusterRegistry({"cluster-1": "http://m1"}),
        client_factory=lambda config: master,
        clock=clock,
        monitor=False,
    ) as orch:
        orch._lifecycle.held.limit = 3
        run = orch.start_run(orch.create_load_test(seed_load_test_body(), actor=ACTOR).id,
                             actor=ACTOR)  # fmt: skip
        storage.down = True
        for _ in range(5):  # five polls while the store is down: two over the buffer
            clock.advance(2.0)
            orch.refresh(run.id)
        storage.down = False
        clock.advance(2.0)
        orch.refresh(run.id)
        kept = [s.slot for s in orch.snapshots(run.id)]
        orch.stop_run(run.id, actor=ACTOR)
        clock.advance(2.0)
        ended = orch.refresh(run.id)
    assert kept == [3, 4, 5, 6]  # slots 1 and 2 were the oldest held: dropped
    assert ended.status is lm.RunStatus.STOPPED
    assert ended.snapshots_dropped == 2
    assert lm.to_dict(ended)["snapshotsDropped"] == 2
