"""Valid model objects with sensible defaults, for tests and examples.

Every keyword overrides one field; the results pass the same validation as
objects built from input.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ..clock import new_id
from ..metrics import EndpointStats, EndpointSummary, MetricSnapshot, Percentiles, RunSummary
from ..models import LoadTest, LoadTestRun, LoadTestSpec, RunParameters
from ..status import RunStatus

__all__ = ["make_load_test", "make_run", "make_snapshot", "make_spec", "make_summary"]

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
_counter = itertools.count(1)


def make_spec(**changes: Any) -> LoadTestSpec:
    """A spec like the seed's example body."""
    fields: dict[str, Any] = {
        "name": "API Load Test",
        "description": "Tests API performance",
        "tags": ("api", "prod"),
        "tenant_id": "tenant-1",
        "env_id": "prod",
        "locust_cluster_id": "cluster-1",
        "target_url": "https://api.example.com",
        "locustfile": "loadtest.py",
        "default_users": 100,
        "default_spawn_rate": 10.0,
    }
    fields.update(changes)
    return LoadTestSpec(**fields)


def make_load_test(
    *,
    id: str | None = None,
    at: datetime | None = None,
    actor: str = "user@example.com",
    **changes: Any,
) -> LoadTest:
    """A stored-looking load test; ``at`` defaults to a fresh instant each call."""
    moment = at if at is not None else T0 + timedelta(milliseconds=next(_counter))
    return LoadTest.from_spec(make_spec(**changes), id=id or new_id(), at=moment, actor=actor)


def make_run(
    test: LoadTest,
    *,
    id: str | None = None,
    status: RunStatus = RunStatus.PENDING,
    at: datetime | None = None,
    actor: str = "user@example.com",
    **changes: Any,
) -> LoadTestRun:
    """A run of ``test`` brought to ``status`` through legal transitions."""
    moment = at if at is not None else T0 + timedelta(milliseconds=next(_counter))
    params = RunParameters(
        target_users=test.default_users,
        spawn_rate=test.default_spawn_rate,
        target_url=test.target_url,
        run_time=test.default_run_time,
    )
    run = LoadTestRun.new(test, params, id=id or new_id(), at=moment, actor=actor)
    path = {
        RunStatus.PENDING: [],
        RunStatus.RUNNING: [RunStatus.RUNNING],
        RunStatus.STOPPING: [RunStatus.RUNNING, RunStatus.STOPPING],
        RunStatus.FINISHED: [RunStatus.RUNNING, RunStatus.FINISHED],
        RunStatus.STOPPED: [RunStatus.RUNNING, RunStatus.STOPPED],
        RunStatus.FAILED: [RunStatus.FAILED],
    }[RunStatus(status)]
    for step in path:
        run = run.transition(step, at=moment, actor=actor)
    return attrs.evolve(run, **changes) if changes else run


def make_snapshot(run_id: str, at: datetime, **changes: Any) -> MetricSnapshot:
    """A snapshot of a run at ``at`` with two endpoints."""
    fields: dict[str, Any] = {
        "load_test_run_id": run_id,
        "timestamp": at,
        "state": "running",
        "user_count": 10,
        "worker_count": 2,
        "current_rps": 50.0,
        "current_fail_per_sec": 1.0,
        "total_requests": 1000,
        "total_failures": 20,
        "current_p50": 12.0,
        "current_p95": 40.0,
        "endpoints": (
            EndpointStats("GET", "/items", 800, 0, 40.0, 0.0, 11.5, 2.0, 90.0, 11.0, 38.0, 60.0),
            EndpointStats(
                "POST", "/orders", 200, 20, 10.0, 1.0, 25.0, 3.0, 120.0, 20.0, 70.0, 110.0
            ),
        ),
    }
    fields.update(changes)
    return MetricSnapshot(**fields)


def make_summary(at: datetime = T0, **changes: Any) -> RunSummary:
    """A plausible final summary with one endpoint."""
    pct = Percentiles(12, 15, 17, 19, 25, 38, 50, 60, 85, 90, 95)
    row = EndpointSummary("GET", "/items", 1000, 10, 14.2, 2.0, 95.0, 12.0, 512.0, 33.3, 0.3, pct)
    agg = attrs.evolve(row, method="", name="Aggregated")
    fields: dict[str, Any] = {"taken_at": at, "aggregated": agg, "endpoints": (row,)}
    fields.update(changes)
    return RunSummary(**fields)
