"""Ingest and query speed of the metrics repository, per backend.

Stores 43,200 snapshots (24 hours at Locust's 2 s resolution) with 10 endpoint
rows each for one run, in batches of 100, then asks for a 500-bucket series five
times. Prints snapshots/s and query times; asserts nothing (it is not a test).
``snap/s`` counts building the snapshots (as the issue's first figures did);
``stored/s`` is ``add_many`` alone, the backend's own share.

    python bench/bench_metrics_storage.py                 # memory, sqlite file, mongodb stand-in
    python bench/bench_metrics_storage.py --backends sqlite --snapshots 10000
    MONGODB_URI=mongodb://127.0.0.1:27017 python bench/bench_metrics_storage.py --backends mongodb
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import loadmanager as lm
from loadmanager.metrics import EndpointStats
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def endpoint_values(rows: int) -> list[tuple[object, ...]]:
    """The bench's endpoint rows as plain values, EndpointStats' fields in order."""
    figures = (0.1, 12.5, 1.0, 250.0, 11.0, 40.0, 90.0)  # fail/s, then the response times
    return [("GET", f"/api/endpoint/{n}", 1000 * n, n, 10.0 + n, *figures) for n in range(rows)]


def snapshots(run_id: str, count: int, rows_per_snapshot: int = 10) -> Iterator[lm.MetricSnapshot]:
    rows = tuple(EndpointStats(*values) for values in endpoint_values(rows_per_snapshot))
    for i in range(count):
        yield lm.MetricSnapshot(
            load_test_run_id=run_id,
            timestamp=T0 + timedelta(seconds=2 * i),
            state="running",
            user_count=100 + i % 50,
            worker_count=4,
            current_rps=500.0 + (i % 97),
            current_fail_per_sec=float(i % 7),
            total_requests=500 * i,
            total_failures=3 * i,
            current_p50=10.0 + i % 13,
            current_p95=40.0 + i % 31,
            endpoints=rows,
        )


@contextmanager
def open_backend(name: str, workdir: Path) -> Iterator[lm.Storage]:
    if name == "memory":
        with lm.connect("memory://") as storage:
            yield storage
    elif name == "sqlite":
        with lm.connect(f"sqlite:///{workdir / 'bench.db'}") as storage:
            yield storage
    elif name == "mongodb":
        from mongo_server import database_uri, fresh_database_name, mongo_base_uri

        with mongo_base_uri(workdir) as base:
            import pymongo

            name = fresh_database_name()
            with lm.connect(database_uri(base, name)) as storage:
                yield storage
            client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(base)
            client.drop_database(name)
            client.close()
    else:
        raise SystemExit(f"unknown backend {name!r}")


def bench(name: str, count: int, batch: int, buckets: int, rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, open_backend(name, Path(tmp)) as storage:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.RUNNING))
        started = time.perf_counter()
        storing = 0.0  # add_many alone: the rest is the caller building snapshots
        pending: list[lm.MetricSnapshot] = []
        for snap in snapshots(run.id, count, rows):
            pending.append(snap)
            if len(pending) == batch:
                t = time.perf_counter()
                storage.metrics.add_many(pending)
                storing += time.perf_counter() - t
                pending = []
        if pending:
            t = time.perf_counter()
            storage.metrics.add_many(pending)
            storing += time.perf_counter() - t
        ingest = time.perf_counter() - started
        assert storage.metrics.count(run.id) == count

        def timed(endpoint: str | None) -> list[float]:
            times = []
            for _ in range(5):
                t = time.perf_counter()
                series = storage.metrics.series(run.id, buckets, endpoint=endpoint)
                times.append(time.perf_counter() - t)
                assert 0 < len(series) <= buckets
            return times

        whole = timed(None)
        endpoint = timed("GET /api/endpoint/3")
        t = time.perf_counter()
        storage.metrics.add(next(snapshots(run.id, 1, rows)))
        single = time.perf_counter() - t
        size = sum(f.stat().st_size for f in Path(tmp).glob("bench.db*"))
        return {
            "ingest_s": ingest,
            "snapshots_per_s": count / ingest,
            "stored_per_s": count / storing,
            "single_add_ms": single * 1000,
            "series_median_ms": statistics.median(whole) * 1000,
            "series_min_ms": min(whole) * 1000,
            "endpoint_median_ms": statistics.median(endpoint) * 1000,
            "bytes_per_snapshot": size / count,
        }


_TARGET_LOCUSTFILE = """
from locust import HttpUser, constant_throughput, task

class Reader(HttpUser):
    wait_time = constant_throughput(5)

    @task
    def endpoints(self):
        for n in range(ROWS):
            self.client.get(f"/items?e={n}", name=f"/api/endpoint/{n}")
"""


def locust_history_bytes(rows: int, seconds: int = 20) -> float:
    """Bytes per interval of the ``--csv-full-history`` file Locust itself writes
    for a real, bounded run (10 users, ``seconds`` long) against the local
    target, with ``rows`` endpoints."""
    import csv
    import subprocess

    from loadmanager.testing.target import TargetServer

    with TargetServer() as target, tempfile.TemporaryDirectory() as tmp:
        locustfile = Path(tmp) / "locustfile.py"
        locustfile.write_text(_TARGET_LOCUSTFILE.replace("ROWS", str(rows)))
        subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
             "-u", "10", "-r", "10", "-t", f"{seconds}s", "--only-summary",
             "--host", target.url, "--csv", f"{tmp}/run", "--csv-full-history"],
            check=True, capture_output=True, timeout=seconds + 60,
        )  # fmt: skip
        history = Path(f"{tmp}/run_stats_history.csv")
        with history.open() as f:
            intervals = {row[0] for row in csv.reader(f)} - {"Timestamp"}
        return history.stat().st_size / len(intervals)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="memory,sqlite,mongodb")
    parser.add_argument("--snapshots", type=int, default=43_200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--buckets", type=int, default=500)
    parser.add_argument("--rows", type=int, default=10, help="endpoint rows per snapshot")
    args = parser.parse_args()
    print(
        f"# metrics storage: {args.snapshots} snapshots x {args.rows} endpoint rows,"
        f" batches of {args.batch},"
    )
    print(
        f"# {args.buckets}-bucket series (median of 5). {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"
    )
    print(f"# reproduce: python {' '.join(sys.argv)}")
    print(
        f"{'backend':<9}{'ingest s':>10}{'snap/s':>10}{'stored/s':>10}{'1 add ms':>10}"
        f"{'series ms':>11}{'min ms':>9}{'1 endpoint ms':>15}{'bytes/snap':>12}"
    )
    results = {}
    for name in args.backends.split(","):
        r = bench(name, args.snapshots, args.batch, args.buckets, args.rows)
        results[name] = r
        print(
            f"{name:<9}{r['ingest_s']:>10.2f}{r['snapshots_per_s']:>10.0f}{r['stored_per_s']:>10.0f}"
            f"{r['single_add_ms']:>10.2f}"
            f"{r['series_median_ms']:>11.1f}{r['series_min_ms']:>9.1f}"
            f"{r['endpoint_median_ms']:>15.1f}{r['bytes_per_snapshot'] or float('nan'):>12.0f}"
        )
    csv_bytes = locust_history_bytes(args.rows)
    print(
        f"# Locust's own --csv-full-history, {args.rows} endpoints: {csv_bytes:.0f} bytes/interval"
    )
    for name, r in results.items():
        if r["bytes_per_snapshot"]:
            print(f"# bytes vs Locust's CSV: {name} {r['bytes_per_snapshot'] / csv_bytes:.2f}x")
    if "memory" in results:
        base = results["memory"]["series_median_ms"]
        for name, r in results.items():
            print(f"# series time vs memory: {name} {r['series_median_ms'] / base:.2f}x")


if __name__ == "__main__":
    main()
