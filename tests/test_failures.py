"""Failures and load generator health: stored, queried, exported and shown.

The master is a fake built from a real run's answers (its errors and workers
rows are Locust's own); the real-Locust checks are in test_failures_real.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import loadmanager as lm
from loadmanager.testing import FakeLocustMaster, ManualClock
from loadmanager.testing.seed import seed_load_test_body

ACTOR = "user@example.com"
ERRORS = [
    {"method": "GET", "name": "/flaky", "error": "HTTPError('500 Server Error')", "occurrences": 7},
    {"method": "POST", "name": "/orders", "error": "<script>alert(1)</script>", "occurrences": 40},
] + [
    {"method": "GET", "name": f"/e{n}", "error": f"error {n}", "occurrences": 1} for n in range(120)
]


@pytest.fixture
def master() -> FakeLocustMaster:
    return FakeLocustMaster()


@pytest.fixture
def orch(master: FakeLocustMaster) -> Iterator[lm.Orchestrator]:
    with lm.connect("memory://") as storage, lm.Orchestrator(
        storage, lm.ClusterRegistry({"cluster-1": "http://m1"}), clock=ManualClock(),
        client_factory=lambda config: master, monitor=False,
    ) as o:  # fmt: skip
        yield o


def finished_run(orch: lm.Orchestrator, master: FakeLocustMaster, **figures: Any) -> lm.LoadTestRun:
    body = {**seed_load_test_body(), "defaultRunTime": "4s",
            "thresholds": [{"metric": "p95", "op": "<", "value": 100000}]}  # fmt: skip
    run = orch.start_run(orch.create_load_test(body, actor=ACTOR).id, actor=ACTOR)
    master.overrides.update(figures)
    for _ in range(3):
        orch.clock.advance(2.0)  # type: ignore[attr-defined]
        orch.refresh(run.id)
    master.state = "stopped"
    orch.clock.advance(2.0)  # type: ignore[attr-defined]
    return orch.refresh(run.id)


def test_live_failures_are_the_top_100_and_the_end_keeps_them_all(
    orch: lm.Orchestrator, master: FakeLocustMaster
) -> None:
    body = {**seed_load_test_body()}
    run = orch.start_run(orch.create_load_test(body, actor=ACTOR).id, actor=ACTOR)
    master.overrides["errors"] = ERRORS
    orch.clock.advance(2.5)  # type: ignore[attr-defined]
    orch.refresh(run.id)
    live = orch.failures(run.id)
    assert len(live) == 100
    assert [(f.key, f.occurrences) for f in live[:2]] == [("POST /orders", 40), ("GET /flaky", 7)]
    orch.stop_run(run.id, actor=ACTOR)
    master.state = "stopped"
    orch.clock.advance(3.0)  # type: ignore[attr-defined]
    ended = orch.refresh(run.id)
    assert ended.status is lm.RunStatus.STOPPED
    assert len(ended.failures) == len(ERRORS) == len(orch.failures(run.id))


def test_failures_export_to_csv_and_show_escaped_in_the_report(
    orch: lm.Orchestrator, master: FakeLocustMaster
) -> None:
    run = finished_run(orch, master, errors=ERRORS[:2])
    csv = lm.to_csv(orch.failures(run.id))
    assert csv.splitlines()[0] == "method,name,error,occurrences"
    assert csv.splitlines()[1] == "POST,/orders,<script>alert(1)</script>,40"
    html = lm.render_report(run, None, [])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    assert "Failures" in run._repr_html_()
    frame = lm.to_dataframe(orch.failures(run.id))
    assert list(frame["occurrences"]) == [40, 7]


def test_a_run_without_failures_says_so(orch: lm.Orchestrator, master: FakeLocustMaster) -> None:
    run = finished_run(orch, master, errors=[])
    assert run.failures == ()
    assert "No failures recorded." in lm.render_report(run, None, [])


def test_a_worker_past_90_percent_cpu_flags_the_run_and_its_verdict(
    orch: lm.Orchestrator, master: FakeLocustMaster
) -> None:
    workers = [
        {"id": "w1", "state": "running", "user_count": 5, "cpu_usage": 12.0, "memory_usage": 0},
        {"id": "w2", "state": "running", "user_count": 5, "cpu_usage": 97.5, "memory_usage": 0},
    ]
    run = finished_run(orch, master, workers=workers)
    assert run.saturated
    assert run.verdict is not None
    assert run.verdict.saturated
    assert run.verdict.passed  # the verdict still counts; the flag stands beside it
    assert "a load generator passed 90 % CPU" in lm.render_report(run, None, [])
    assert ("load generators", "saturated (over 90 % CPU)") in run.overview()
    snapshot = orch.snapshots(run.id)[-1]
    assert [w.cpu_usage for w in snapshot.workers] == [12.0, 97.5]
    assert lm.to_dict(run)["saturated"] is True


def test_healthy_workers_leave_the_run_unflagged(
    orch: lm.Orchestrator, master: FakeLocustMaster
) -> None:
    run = finished_run(orch, master)  # the captured run's workers idled at 0 % CPU
    assert not run.saturated
    assert run.verdict is not None
    assert not run.verdict.saturated


def test_exceptions_of_the_locustfile_are_kept_with_their_counts(
    orch: lm.Orchestrator, master: FakeLocustMaster
) -> None:
    from loadmanager.locust.stats import LocustExceptionRow

    master.exception_rows = [
        LocustExceptionRow(3, "ZeroDivisionError: division by zero", "File x.py, line 9", "w1"),
    ]
    run = finished_run(orch, master)
    assert [(e.count, e.message) for e in run.exceptions] == [
        (3, "ZeroDivisionError: division by zero")
    ]
    assert "ZeroDivisionError" in lm.render_report(run, None, [])
    assert lm.to_dict(run)["exceptions"][0]["count"] == 3
