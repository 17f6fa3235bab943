"""What SQLite ingest could cost per snapshot, laid out three ways.

The ingest goals of issue 18 (30,000 snapshots/s at 10 endpoint rows, 10,000/s
at 100) are a budget of 33 and 100 µs a snapshot. This bench times, per
snapshot and in batches of 100 of one run, each part a write is made of, on
today's layout and on the two candidates for the next one, so that the choice
is measured before it is built:

- **rows**: schema 7's ``metrics_endpoints``, a row per endpoint (building the
  tuples from the models and ``executemany``, commits included);
- **packed**: one row per snapshot holding its endpoint figures as float64s
  (read with ``operator.attrgetter``, ``array('d')``), names beside them, as
  schema 8 stores them;
- **fold, lm**: the backend's own fold of the unfolded snapshots into the
  series cells (``SqliteStorage.metrics.fold()`` once after writing them all:
  a SQL ``GROUP BY`` up to schema 7, Python over the packed figures since);
- **fold, Python**: the finest cells' count, sum, min and max built from the
  models in a loop, as a writer could while it has them;
- **fold, numpy**: the same from the packed arrays, a batch at a time (numpy is
  not a dependency; skipped without it).

Asserts nothing (it is not a test).

    python bench/bench_sqlite_floors.py --rows 10,100
"""

from __future__ import annotations

import argparse
import array
import itertools
import math
import operator
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_metrics_storage import snapshots

import loadmanager as lm
from loadmanager.filters import ROLLUP_LEVELS_MS
from loadmanager.repositories import sqlite as sqlite_backend
from loadmanager.repositories._series import ENDPOINT_FIELDS
from loadmanager.repositories.sqlite import SqliteStorage
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run

BATCH = 100
COLUMNS = sqlite_backend._ENDPOINT_COLUMNS
FIGURES = COLUMNS[2:]  # the numeric ones
FINEST = ROLLUP_LEVELS_MS[0]


def per_snapshot(count: int, fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return 1e6 * (time.perf_counter() - started) / count


def _connection(workdir: Path, name: str) -> sqlite3.Connection:
    conn = sqlite3.connect(workdir / f"{name}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def rows_layout(snaps: list[lm.MetricSnapshot], workdir: Path) -> float:
    conn = _connection(workdir, "rows")
    conn.execute(
        f"CREATE TABLE e (snapshot INTEGER, position INTEGER, {', '.join(COLUMNS)},"
        " PRIMARY KEY (snapshot, position)) WITHOUT ROWID"
    )
    insert = f"INSERT INTO e VALUES (?, ?, {', '.join('?' * len(COLUMNS))})"
    row = operator.attrgetter(*COLUMNS)

    def write() -> None:
        for start in range(0, len(snaps), BATCH):
            batch = snaps[start : start + BATCH]
            conn.execute("BEGIN")
            conn.executemany(
                insert,
                [
                    (start + k, p, *row(e))
                    for k, s in enumerate(batch)
                    for p, e in enumerate(s.endpoints)
                ],
            )
            conn.execute("COMMIT")

    return per_snapshot(len(snaps), write)


def packed(
    snapshot: lm.MetricSnapshot, figures: Callable[[object], tuple[float | None, ...]]
) -> bytes:
    flat = list(itertools.chain.from_iterable(map(figures, snapshot.endpoints)))
    try:
        # Most rows have every figure: one C-level conversion, no test per value.
        return array.array("d", flat).tobytes()  # type: ignore[type-var]
    except TypeError:  # a missing figure (None): NaN, the slow way
        return array.array("d", [math.nan if v is None else v for v in flat]).tobytes()


def packed_layout(snaps: list[lm.MetricSnapshot], workdir: Path) -> float:
    conn = _connection(workdir, "packed")
    conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, names TEXT, figures BLOB)")
    figures = operator.attrgetter(*FIGURES)
    names = operator.attrgetter("method", "name")

    def write() -> None:
        for start in range(0, len(snaps), BATCH):
            batch = snaps[start : start + BATCH]
            conn.execute("BEGIN")
            # Names repeat from snapshot to snapshot: a layout would keep a run's
            # endpoint list once and point at it, so only a batch's first carries them.
            listed = "\n".join(" ".join(names(e)) for e in batch[0].endpoints)
            conn.executemany(
                "INSERT INTO p VALUES (?, ?, ?)",
                [
                    (start + k, listed if k == 0 else "", packed(s, figures))
                    for k, s in enumerate(batch)
                ],
            )
            conn.execute("COMMIT")

    return per_snapshot(len(snaps), write)


def sql_fold(snaps: list[lm.MetricSnapshot], workdir: Path) -> float:
    with SqliteStorage(str(workdir / "fold.db"), fold_every=10**12) as storage:
        test = storage.load_tests.add(make_load_test())
        storage.runs.add(make_run(test, id=snaps[0].load_test_run_id, status=RunStatus.RUNNING))
        for start in range(0, len(snaps), BATCH):
            storage.metrics.add_many(snaps[start : start + BATCH])
        return per_snapshot(len(snaps), storage.metrics.fold)


def python_fold(snaps: list[lm.MetricSnapshot]) -> float:
    figures = operator.attrgetter(*ENDPOINT_FIELDS)

    def fold() -> None:
        cells: dict[tuple[str, int], list[float]] = {}
        for s in snaps:
            cell = int(s.timestamp.timestamp() * 1000) // FINEST
            for e in s.endpoints:
                values = (s.user_count, *figures(e))
                acc = cells.get((e.name, cell))
                if acc is None:
                    cells[e.name, cell] = [1, *values, *values, *values]
                    continue
                acc[0] += 1
                for j, v in enumerate(values):
                    if v is None:
                        continue
                    acc[1 + j] += v
                    acc[6 + j] = min(acc[6 + j], v)
                    acc[11 + j] = max(acc[11 + j], v)

    return per_snapshot(len(snaps), fold)


def numpy_fold(snaps: list[lm.MetricSnapshot]) -> float | None:
    try:
        import numpy as np
    except ImportError:
        return None
    figures = operator.attrgetter(*FIGURES)
    blobs = [packed(s, figures) for s in snaps]  # as the packed layout stores them
    rows = len(snaps[0].endpoints)
    cells = np.array([int(s.timestamp.timestamp() * 1000) // FINEST for s in snaps])

    def fold() -> None:
        for start in range(0, len(snaps), BATCH):
            block = np.frombuffer(b"".join(blobs[start : start + BATCH]), dtype=np.float64)
            block = block.reshape(-1, rows, len(FIGURES))
            ids = cells[start : start + BATCH]
            bounds = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
            np.add.reduceat(np.nan_to_num(block), bounds, axis=0)
            np.fmin.reduceat(block, bounds, axis=0)
            np.fmax.reduceat(block, bounds, axis=0)
            np.add.reduceat(~np.isnan(block), bounds, axis=0)

    return per_snapshot(len(snaps), fold)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="10,100", help="endpoint rows per snapshot")
    parser.add_argument("--snapshots", type=int, default=10_000)
    args = parser.parse_args()
    print(
        f"# SQLite ingest floors: {args.snapshots} snapshots in batches of {BATCH}, µs a"
        f" snapshot. {platform.python_implementation()} {platform.python_version()},"
        f" {os.cpu_count()} cores, SQLite {sqlite3.sqlite_version}"
    )
    print(f"# reproduce: python {' '.join(sys.argv)}")
    print(
        f"{'rows':>5}{'rows':>8}{'packed':>8}{'fold lm':>10}{'fold py':>9}{'fold np':>9}"
        f"{'rows+lm/s':>10}{'packed+py /s':>14}{'packed+np /s':>14}"
    )
    for rows in map(int, args.rows.split(",")):
        count = max(BATCH, args.snapshots * 10 // rows // BATCH * BATCH)
        snaps = list(snapshots("floors", count, rows))
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            by_rows = rows_layout(snaps, workdir)
            by_packed = packed_layout(snaps, workdir)
            fold_sql = sql_fold(snaps, workdir)
        fold_py = python_fold(snaps)
        fold_np = numpy_fold(snaps)
        np_rate = f"{1e6 / (by_packed + fold_np):>14.0f}" if fold_np is not None else f"{'-':>14}"
        print(
            f"{rows:>5}{by_rows:>8.1f}{by_packed:>8.1f}{fold_sql:>10.1f}{fold_py:>9.1f}"
            f"{fold_np if fold_np is not None else math.nan:>9.1f}"
            f"{1e6 / (by_rows + fold_sql):>10.0f}{1e6 / (by_packed + fold_py):>14.0f}{np_rate}",
            flush=True,
        )


if __name__ == "__main__":
    main()
