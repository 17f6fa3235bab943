"""Where a SQLite write's time goes, part by part, and what values-to-bytes costs.

The ingest goals of issue 18 (30,000 snapshots/s at 10 endpoint rows, 10,000/s
at 100) are budgets of 33 and 100 µs a snapshot of ``add_many`` alone. This
bench times, per snapshot and in batches of 100 of one run:

- **insert**: SQLite's insert of the backend's own rows, their parameters
  made beforehand (commits included, no fold);
- **pack models / pack tuples**: turning a snapshot's endpoint values into the
  stored bytes, read from the models (what the backend does) and from plain
  tuples (what a parser holding the values would do);
- **key**, **document**: the endpoint list's key and the snapshot's JSON;
- **add_many**: the backend's whole write, as it is and with packing and the
  key made free (cached by the models' identity: an experiment, not a path
  any caller has), interleaved, the median of ``--repeats``.

The last pair shows how much of the goals hangs on turning values into bytes;
``pack tuples`` shows that doing it elsewhere costs about the same.
Asserts nothing (it is not a test).

    python bench/bench_sqlite_write_parts.py --rows 10,100
"""

from __future__ import annotations

import argparse
import itertools
import operator
import os
import platform
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_metrics_storage import endpoint_values, snapshots

import loadmanager as lm
from loadmanager.clock import to_millis
from loadmanager.repositories import sqlite as backend
from loadmanager.repositories._packed import COUNTS, FIGURE_WIDTH, names_key, pack
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run

BATCH = 100


def best_per_snapshot(
    snaps: list[lm.MetricSnapshot], fn: Callable[[lm.MetricSnapshot], object]
) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for snap in snaps:
            fn(snap)
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / len(snaps)


@contextmanager
def stored_run(workdir: Path, name: str) -> Iterator[tuple[backend.SqliteStorage, str]]:
    with lm.connect(f"sqlite:///{workdir / name}.db") as storage:
        assert isinstance(storage, backend.SqliteStorage)
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.RUNNING))
        yield storage, run.id


def insert_alone(workdir: Path, count: int, rows: int) -> float:
    with stored_run(workdir, "insert") as (storage, run_id):
        storage.metrics.add(next(snapshots(run_id, 1, rows)))  # stores the endpoint list
        path = storage._db.path
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    (list_id,) = conn.execute("SELECT id FROM metrics_endpoint_lists").fetchone()
    params = [
        (
            s.load_test_run_id,
            to_millis(s.timestamp) + 1,  # after the snapshot stored above
            *(getattr(s, f) for f in backend.SERIES_FIELDS),
            s.slot,
            backend._document(s),
            list_id,
            pack(s.endpoints),
        )
        for s in snapshots(run_id, count, rows)
    ]
    started = time.perf_counter()
    for i in range(0, count, BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(backend._INSERT_SNAPSHOT, params[i : i + BATCH])
        conn.execute("COMMIT")
    spent = time.perf_counter() - started
    conn.close()
    return 1e6 * spent / count


def add_many(workdir: Path, name: str, count: int, rows: int) -> float:
    with stored_run(workdir, name) as (storage, run_id):
        snaps = list(snapshots(run_id, count, rows))
        started = time.perf_counter()
        for i in range(0, count, BATCH):
            storage.metrics.add_many(snaps[i : i + BATCH])
        return 1e6 * (time.perf_counter() - started) / count


@contextmanager
def values_to_bytes_free() -> Iterator[None]:
    """The backend's packing and key looked up by the rows' identity: the bench's
    snapshots share one tuple of rows, so each costs a dict lookup."""
    done: dict[int, tuple[object, bytes, str]] = {}

    def cached(endpoints: tuple[lm.EndpointStats, ...]) -> tuple[object, bytes, str]:
        found = done.get(id(endpoints))
        if found is None or found[0] is not endpoints:
            found = done[id(endpoints)] = (endpoints, pack(endpoints), names_key(endpoints))
        return found

    saved = backend.pack, backend.names_key
    backend.pack = lambda endpoints: cached(endpoints)[1]  # type: ignore[assignment]
    backend.names_key = lambda endpoints: cached(endpoints)[2]  # type: ignore[assignment]
    try:
        yield
    finally:
        backend.pack, backend.names_key = saved


def pack_from_tuples(rows: int) -> Callable[[lm.MetricSnapshot], bytes]:
    packer = struct.Struct(f"<{len(COUNTS) * rows}q{FIGURE_WIDTH * rows}d")
    counts = operator.itemgetter(slice(2, 2 + len(COUNTS)))
    figures = operator.itemgetter(slice(2 + len(COUNTS), None))
    chain = itertools.chain.from_iterable
    values = endpoint_values(rows)
    return lambda _snap: packer.pack(*chain(map(counts, values)), *chain(map(figures, values)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="10,100", help="endpoint rows per snapshot")
    parser.add_argument("--snapshots", type=int, default=20_000, help="at 10 rows; fewer at more")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"# a SQLite write, part by part: batches of {BATCH}, µs a snapshot."
        f" {platform.python_implementation()} {platform.python_version()},"
        f" {os.cpu_count()} cores, SQLite {sqlite3.sqlite_version}"
    )
    print(f"# reproduce: python {' '.join(sys.argv)}")
    print(
        f"{'rows':>5}{'insert':>8}{'pack models':>13}{'pack tuples':>13}{'key':>7}{'document':>10}"
        f"{'add_many':>10}{'bytes free':>12}{'add_many /s':>13}{'bytes free /s':>15}"
    )
    for rows in map(int, args.rows.split(",")):
        count = max(BATCH, args.snapshots * 10 // rows // BATCH * BATCH)
        snaps = list(snapshots("parts", count, rows))
        packing = best_per_snapshot(snaps, lambda s: pack(s.endpoints))
        from_tuples = best_per_snapshot(snaps, pack_from_tuples(rows))
        key = best_per_snapshot(snaps, lambda s: names_key(s.endpoints))
        document = best_per_snapshot(snaps, backend._document)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            insert = insert_alone(workdir, count, rows)
            whole: list[float] = []
            free: list[float] = []
            for i in range(args.repeats):
                for cached in (False, True) if i % 2 == 0 else (True, False):
                    if cached:
                        with values_to_bytes_free():
                            free.append(add_many(workdir, f"free{i}", count, rows))
                    else:
                        whole.append(add_many(workdir, f"whole{i}", count, rows))
        as_is, freed = statistics.median(whole), statistics.median(free)
        print(
            f"{rows:>5}{insert:>8.1f}{packing:>13.1f}{from_tuples:>13.1f}{key:>7.1f}{document:>10.1f}"
            f"{as_is:>10.1f}{freed:>12.1f}{1e6 / as_is:>13.0f}{1e6 / freed:>15.0f}"
        )


if __name__ == "__main__":
    main()
