"""What the end of a long run costs: its verdict, its snapshots, its workers' peak CPU.

A run of ``--snapshots`` snapshots (43,200: 24 hours at Locust's 2 s), 10
endpoint rows and two workers each, is stored on a SQLite file and in memory.
Printed: how long ``metrics.snapshots()`` and ``metrics.peak_worker_cpu()``
take on each (what the poll that ends a run reads), and how long judging one
windowed criterion over the whole run takes, with and without the plugin's
histogram changes. Asserts nothing (it is not a test).

    python bench/bench_long_run.py
    python bench/bench_long_run.py --snapshots 8000
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_metrics_storage import snapshots

import loadmanager as lm
from loadmanager import criteria
from loadmanager.grammar import parse
from loadmanager.metrics import HistogramDelta, WorkerHealth
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run, make_snapshot, make_summary
from loadmanager.testing.factories import T0

CRITERIA = ("rps > 1 over 30s", "p95 < 300ms over 30s", "p95 < 300ms for 10s")
WORKERS = (WorkerHealth("w1", "running", 50, 35.5), WorkerHealth("w2", "running", 50, 41.0))


def seconds(call: object) -> float:
    started = time.perf_counter()
    call()  # type: ignore[operator]
    return time.perf_counter() - started


def reads(count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for url in (f"sqlite:///{folder}/long.db", "memory://"):
            with lm.connect(url) as storage:
                test = storage.load_tests.add(make_load_test())
                run = storage.runs.add(make_run(test, status=RunStatus.RUNNING))
                stored = [attrs.evolve(s, workers=WORKERS) for s in snapshots(run.id, count, 10)]
                for start in range(0, count, 500):
                    storage.metrics.add_many(stored[start : start + 500])
                every = seconds(lambda: storage.metrics.snapshots(run.id))  # noqa: B023
                peak = seconds(lambda: storage.metrics.peak_worker_cpu(run.id))  # noqa: B023
                name = url.split(":")[0]
                print(f"{name:<8}{every:>16.3f}{peak:>20.3f}")


def verdicts(count: int) -> None:
    change = (HistogramDelta("Aggregated", {10: 5, 20: 1}),)
    for plugin in (False, True):
        run = [
            make_snapshot("r", T0 + timedelta(seconds=2 * i), histograms=change if plugin else ())
            for i in range(count)
        ]
        for text in CRITERIA:
            took = seconds(lambda: criteria.evaluate([parse(text)], make_summary(), run))  # noqa: B023
            print(f"{'yes' if plugin else 'no':<8}{text:<24}{took * 1000:>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--snapshots", type=int, default=43_200)
    args = parser.parse_args()
    print(f"# the end of a long run: {args.snapshots} snapshots, 10 endpoints, 2 workers."
          f" {platform.python_implementation()} {platform.python_version()}")  # fmt: skip
    print(f"# reproduce: python {' '.join(sys.argv)}")
    print(f"{'backend':<8}{'snapshots() s':>16}{'peak_worker_cpu() s':>20}")
    reads(args.snapshots)
    print(f"{'plugin':<8}{'criterion':<24}{'verdict ms':>12}")
    verdicts(args.snapshots)


if __name__ == "__main__":
    main()
