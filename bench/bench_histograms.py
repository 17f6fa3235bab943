"""What the plugin's histogram changes cost: bytes per snapshot and query times.

Stores one hour of snapshots (1,800 at Locust's 2 s resolution) for one run on a
SQLite file, with 10 and with 100 endpoints, each snapshot with and without
histogram changes (8 changed buckets per endpoint, about what a steady endpoint
shows in 2 s). Prints the stored bytes per snapshot (the file's growth), the
time of a 500-bucket series, of the whole run's exact percentiles of one
endpoint (the first and the last one stored: SQLite looks a change up
endpoint by endpoint) and of a 10-second trailing p95 series of all requests.
Snapshots hold their changes sorted by key, as the run lifecycle stores them.
Asserts nothing (it is not a test).

    python bench/bench_histograms.py
    python bench/bench_histograms.py --snapshots 600 --endpoints 10
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import loadmanager as lm
from loadmanager.metrics import EndpointStats, HistogramDelta
from loadmanager.status import MasterState, RunStatus
from loadmanager.testing import make_load_test, make_run

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def snapshot(run_id: str, n: int, endpoints: int, histograms: bool) -> lm.MetricSnapshot:
    rnd = random.Random(n)
    rows = tuple(
        EndpointStats("GET", f"/api/endpoint/{e}", 100 * n, n, 50.0, 0.5, p95_response_time=120.0)
        for e in range(endpoints)
    )
    deltas: tuple[HistogramDelta, ...] = ()
    if histograms:
        keys = [f"GET /api/endpoint/{e}" for e in range(endpoints)] + ["Aggregated"]
        deltas = tuple(
            HistogramDelta(k, {rnd.choice(range(5, 400, 5)): rnd.randint(1, 40) for _ in range(8)})
            for k in sorted(keys)
        )
    return lm.MetricSnapshot(
        load_test_run_id=run_id, timestamp=T0 + timedelta(seconds=2 * n), state=MasterState.RUNNING,
        user_count=100, worker_count=2, current_rps=50.0 * endpoints, current_fail_per_sec=0.5,
        total_requests=100 * n * endpoints, total_failures=n, current_p50=40.0, current_p95=120.0,
        endpoints=rows, slot=n, histograms=deltas,
    )  # fmt: skip


def timed(call: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def measure(
    count: int, endpoints: int, histograms: bool
) -> tuple[float, float, float, float, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        with lm.connect(f"sqlite:///{path}") as storage:
            test = storage.load_tests.add(make_load_test())
            run = storage.runs.add(make_run(test, status=RunStatus.FINISHED))
            before = path.stat().st_size + Path(f"{path}-wal").stat().st_size
            for start in range(0, count, 100):
                batch = [
                    snapshot(run.id, n, endpoints, histograms)
                    for n in range(start, min(count, start + 100))
                ]
                storage.metrics.add_many(batch)
            storage._db.run(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))  # type: ignore[attr-defined]
            size = path.stat().st_size - before
            with lm.Orchestrator(storage, lm.ClusterRegistry({}), monitor=False) as orch:
                series = timed(lambda: orch.series(run.id, 500))
                whole = timed(lambda: orch.percentiles(run.id, endpoint="GET /api/endpoint/0"))
                last = max(f"GET /api/endpoint/{e}" for e in range(endpoints))
                stored_last = timed(lambda: orch.percentiles(run.id, endpoint=last))
                trailing = timed(lambda: orch.percentile_series(run.id, window=10), repeat=3)
    return size / count, series, whole, stored_last, trailing


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--snapshots", type=int, default=1800)
    parser.add_argument("--endpoints", default="10,100")
    args = parser.parse_args()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"# histogram changes: {args.snapshots} snapshots on a SQLite file."
          f" {python}, {os.cpu_count()} cores")  # fmt: skip
    print(f"# reproduce: python {' '.join(sys.argv)}")
    print(f"{'endpoints':>9}{'histograms':>11}{'bytes/snap':>11}{'series ms':>10}"
          f"{'run pct ms':>11}{'last pct ms':>12}{'p95 series ms':>14}")  # fmt: skip
    for endpoints in map(int, args.endpoints.split(",")):
        base = None
        for histograms in (False, True):
            size, series, whole, last, trailing = measure(args.snapshots, endpoints, histograms)
            ratio = "" if base is None else f"  x{size / base:.2f} bytes"
            base = base or size
            print(f"{endpoints:>9}{'yes' if histograms else 'no':>11}{size:>11.0f}{series:>10.1f}"
                  f"{whole:>11.1f}{last:>12.1f}{trailing:>14.1f}{ratio}")  # fmt: skip


if __name__ == "__main__":
    main()
