"""What the SQLite backend's fold costs to compute its cells, in Python and with numpy.

A fold reads back the snapshots not yet in the series cells and computes
their cells at every level (``loadmanager.repositories._folding.cells``: the
whole run's a row each, the endpoints' packed a row per cell) before storing
them. This times that computation alone, per snapshot, on the shapes the
backend meets, and counts the rows a fold stores per snapshot:

- the Monitor's: a few snapshots of each of thousands of runs (it writes one
  snapshot of each run in turn, and folds once all runs together have
  ``64 * fold_every`` rows);
- a bulk import's: hundreds of snapshots of one run;
- many endpoints: tens of snapshots of 100 endpoints (``fold_every`` rows).

Best of ``--repeat`` runs; numpy's column is empty without numpy. Asserts
nothing (it is not a test); the cells of both ways are compared by
``tests/test_storage_sqlite.py``.

    python bench/bench_sqlite_fold.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_metrics_storage import snapshots

from loadmanager.clock import to_millis
from loadmanager.repositories._folding import cells
from loadmanager.repositories._packed import pack
from loadmanager.repositories._rollups import row_scope

SHAPES = ((2000, 3, 10), (1, 400, 10), (1, 40, 100), (200, 20, 100))
"""(runs, snapshots a run, endpoints)."""


def rows_of(runs: int, each: int, endpoints: int) -> tuple[list[tuple[object, ...]], list[str]]:
    found: list[tuple[object, ...]] = []
    scopes: list[str] = []
    for run in range(runs):
        for snap in snapshots(f"run-{run:05d}", each, endpoints):
            scopes = [row_scope(e.method, e.name) for e in snap.endpoints]
            found.append(
                (
                    snap.load_test_run_id,
                    to_millis(snap.timestamp),
                    float(snap.user_count),
                    snap.current_rps,
                    snap.current_fail_per_sec,
                    snap.current_p50,
                    snap.current_p95,
                    1,
                    pack(snap.endpoints),
                )
            )
    return found, scopes


def best(repeat: int, rows: list[tuple[object, ...]], scopes: list[str], numpy: bool) -> float:
    fastest = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        cells(rows, {1: scopes}, use_numpy=numpy)
        fastest = min(fastest, time.perf_counter() - started)
    return 1e6 * fastest / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    try:
        import numpy  # noqa: F401
    except ImportError:
        has_numpy = False
    else:
        has_numpy = True
    print(
        f"# the SQLite fold's cells, us a snapshot (best of {args.repeat})."
        f" {platform.python_implementation()} {platform.python_version()},"
        f" {os.cpu_count()} cores"
    )
    print(f"# reproduce: python {' '.join(sys.argv)}")
    print(f"{'runs':>6}{'each':>6}{'endpoints':>11}{'rows/snap':>12}{'python':>9}{'numpy':>9}")
    for runs, each, endpoints in SHAPES:
        rows, scopes = rows_of(runs, each, endpoints)
        whole, packed = cells(rows, {1: scopes}, use_numpy=False)
        made = (len(whole) + len(packed)) / len(rows)
        python = best(args.repeat, rows, scopes, numpy=False)
        vectorised = f"{best(args.repeat, rows, scopes, numpy=True):>9.1f}" if has_numpy else "-"
        print(f"{runs:>6}{each:>6}{endpoints:>11}{made:>12.2f}{python:>9.1f}{vectorised:>9}")


if __name__ == "__main__":
    main()
