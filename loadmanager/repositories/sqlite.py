"""SQLite repositories: the embedded, persistent default (standard library only).

One file holds everything; WAL mode lets readers go on while one writer writes,
and several processes may share the file. Writes take the write lock up front
(``BEGIN IMMEDIATE``) so a transaction never fails half-way on a lock upgrade;
a lock held too long by another process is waited for (``busy_timeout``) and then
retried with backoff before RepositoryUnavailableError reaches the caller.

The cluster lease is a unique partial index on the cluster of active runs, so it
holds across processes without any Python lock. The schema is versioned with
``PRAGMA user_version`` and migrated forward when a file is opened.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

import tenacity

from .._naming import camel
from .._retries import with_retries
from .._serialization import compact_json, make_converter
from ..clock import from_millis, to_millis
from ..errors import (
    ActiveRunError,
    ClusterBusyError,
    DuplicateError,
    NotFoundError,
    RepositoryUnavailableError,
    StaleVersionError,
    ValidationError,
)
from ..filters import ROLLUP_LEVELS_MS, LoadTestFilter, RunFilter, SeriesWindow
from ..locustfiles import Locustfile
from ..metrics import AGGREGATED, EndpointStats, MetricSnapshot, SeriesBucket
from ..models import LoadTest, LoadTestRun
from ._protocols import AddsOne, MonitorClaim, bumped, checked
from ._rollups import WHOLE_RUN, endpoint_scope
from ._series import ENDPOINT_FIELDS, SERIES_FIELDS, assemble, endpoint_matches, window_for

__all__ = [
    "SCHEMA_VERSION",
    "SqliteLoadTestRepository",
    "SqliteLoadTestRunRepository",
    "SqliteMetricsRepository",
    "SqliteStorage",
]

T = TypeVar("T")

_ROLLUP_COLUMNS = [
    f"{part}_{field}" for field in SERIES_FIELDS for part in ("n", "sum", "min", "max")
]


def _rollup_figures(sources: Sequence[str]) -> str:
    """count, sum, min and max of each series figure, for a GROUP BY."""
    return ", ".join(f"COUNT({v}), TOTAL({v}), MIN({v}), MAX({v})" for v in sources)


def _rollups_table() -> str:
    types = {"n": "INTEGER NOT NULL", "sum": "REAL NOT NULL", "min": "REAL", "max": "REAL"}
    columns = "".join(f"{c} {types[c.split('_')[0]]}, " for c in _ROLLUP_COLUMNS)
    return (
        "CREATE TABLE metrics_rollups (run_id TEXT NOT NULL REFERENCES load_test_runs (id),"
        " level INTEGER NOT NULL, scope TEXT NOT NULL, cell INTEGER NOT NULL,"
        f" samples INTEGER NOT NULL, {columns}"
        " PRIMARY KEY (run_id, level, scope, cell)) WITHOUT ROWID"
    )


def _merge(column: str) -> str:
    if column.startswith(("n_", "sum_")):
        return f"{column} = {column} + excluded.{column}"
    # SQLite's two-argument min() and max() are NULL if either side is.
    pick = column.split("_")[0]
    return (
        f"{column} = {pick}(coalesce({column}, excluded.{column}),"
        f" coalesce(excluded.{column}, {column}))"
    )


_MERGE_INTO_CELLS = (
    " ON CONFLICT (run_id, level, scope, cell) DO UPDATE SET"
    " samples = samples + excluded.samples, " + ", ".join(_merge(c) for c in _ROLLUP_COLUMNS)
)
"""How rows inserted into metrics_rollups merge with cells already there."""

_LEVELS = f"levels (level) AS (VALUES {', '.join(f'({n})' for n in ROLLUP_LEVELS_MS)})"


def _roll_up_into(source: str, scope: str, values: Sequence[str], cte: str = "") -> str:
    """The upsert that folds ``source``'s rows into ``metrics_rollups``, every level."""
    return (
        f"WITH {cte}{_LEVELS} INSERT INTO metrics_rollups"  # noqa: S608 - fixed text
        f" SELECT run_id, level, {scope} AS scope, ts_ms / level AS cell, COUNT(*),"
        f" {_rollup_figures(values)} FROM {source}, levels WHERE true"
        " GROUP BY run_id, level, scope, cell" + _MERGE_INTO_CELLS
    )


_ENDPOINT_COLUMNS = (
    "method",
    "name",
    "num_requests",
    "num_failures",
    "current_rps",
    "current_fail_per_sec",
    "avg_response_time",
    "min_response_time",
    "max_response_time",
    "median_response_time",
    "p95_response_time",
    "p99_response_time",
)
"""EndpointStats' fields, in its order: the columns of ``metrics_endpoints`` as
migration 7 made them. A field added to EndpointStats needs a migration that
adds its column here too (a test holds the two equal)."""

_SNAPSHOT_COLUMNS = ("run_id", "ts_ms", *SERIES_FIELDS, "slot", "doc")
_COLUMN_FIELDS = ("load_test_run_id", "timestamp", *SERIES_FIELDS, "slot")
"""The snapshot fields _SNAPSHOT_COLUMNS holds (all but the document), in order:
what the document leaves out, with the endpoint rows."""


def _row_scope(method: str, name: str) -> str:
    """_rollups.row_scope, in SQL."""
    return f"'@' || CASE WHEN {method} = '' THEN {name} ELSE {method} || ' ' || {name} END"


_ENDPOINT_SCOPE = _row_scope("e.method", "e.name")
_ENDPOINT_FIGURES = ("m.user_count", *(f"e.{f}" for f in ENDPOINT_FIELDS))
"""An endpoint row's figures in SERIES_FIELDS order: the snapshot's user count
beside the row's own rates and response times (see _rollups.scoped_figures)."""

_UNFOLDED = "m.id > (SELECT through FROM metrics_folded)"

_ALWAYS_PRESENT = ("user_count", "current_rps", "current_fail_per_sec")
"""Series figures no row lacks: NOT NULL in metrics_timeseries (schema 7) and, for
an endpoint row, in metrics_endpoints (its user count is the snapshot's)."""


def _fold() -> str:
    finest = ROLLUP_LEVELS_MS[0]
    # Coarser cells merge the finest ones, which is exact only if each finest
    # cell lies inside one cell of every level.
    assert all(level % finest == 0 for level in ROLLUP_LEVELS_MS)
    whole = ", ".join(f"m.{f}" for f in SERIES_FIELDS)
    # A figure every row has is counted by the sample count: one aggregate
    # step fewer per row and figure, a third of the grouping's cost.
    fine = ", ".join(
        ("" if f in _ALWAYS_PRESENT else f"COUNT({f}) AS n_{f}, ")
        + f"TOTAL({f}) AS sum_{f}, MIN({f}) AS min_{f}, MAX({f}) AS max_{f}"
        for f in SERIES_FIELDS
    )
    merged = ", ".join(
        f"SUM({'samples' if f in _ALWAYS_PRESENT else f'n_{f}'}), TOTAL(sum_{f}),"
        f" MIN(min_{f}), MAX(max_{f})"
        for f in SERIES_FIELDS
    )
    return (
        "WITH unfolded (run_id, ts_ms, scope, " + ", ".join(SERIES_FIELDS) + ") AS ("  # noqa: S608 - fixed text
        f"SELECT m.run_id, m.ts_ms, '{WHOLE_RUN}', {whole} FROM metrics_timeseries m"
        f" WHERE {_UNFOLDED} UNION ALL SELECT m.run_id, m.ts_ms, {_ENDPOINT_SCOPE},"
        f" {', '.join(_ENDPOINT_FIGURES)} FROM metrics_timeseries m"
        f" JOIN metrics_endpoints e ON e.snapshot = m.id WHERE {_UNFOLDED}),"
        f" fine AS MATERIALIZED (SELECT run_id, scope, ts_ms / {finest} AS cell,"
        f" COUNT(*) AS samples, {fine} FROM unfolded GROUP BY run_id, scope, cell), {_LEVELS}"
        " INSERT INTO metrics_rollups"
        f" SELECT run_id, level, scope, cell * {finest} / level AS wide, SUM(samples), {merged}"
        " FROM fine, levels WHERE true GROUP BY run_id, level, scope, wide" + _MERGE_INTO_CELLS
    )


_FOLD = (
    _fold(),
    "UPDATE metrics_folded SET through = coalesce("
    "(SELECT seq FROM sqlite_sequence WHERE name = 'metrics_timeseries'), through)",
)
"""Folds every snapshot not yet in the series cells into them, at every level.

Writes store snapshots alone and fold them in batches, the way TimescaleDB's
real-time aggregates keep a raw tail beside their materialised buckets: an
upsert per cell per snapshot cost the Monitor's one-snapshot write 0.6 ms of
its 1 ms. Series read the cells and the unfolded tail in one statement
(``_rolled_up_series``), so they never wait for a fold, and a crash between a
write and its fold loses nothing: the next fold, by any writer, takes the rows.
Rows are grouped once, into the finest cells, and the coarser levels merge
those: the aggregate steps were the fold's whole cost."""

_INSERT_SNAPSHOT_IF_FREE = (
    f"INSERT OR IGNORE INTO metrics_timeseries ({', '.join(_SNAPSHOT_COLUMNS)})"  # noqa: S608 - fixed text
    f" VALUES ({', '.join('?' * len(_SNAPSHOT_COLUMNS))})"
)
_INSERT_SNAPSHOT_WITH_ID = (
    f"INSERT INTO metrics_timeseries (id, {', '.join(_SNAPSHOT_COLUMNS)})"  # noqa: S608 - fixed text
    f" VALUES (?, {', '.join('?' * len(_SNAPSHOT_COLUMNS))})"
)
_INSERT_ENDPOINT = (
    f"INSERT INTO metrics_endpoints VALUES (?, ?, {', '.join('?' * len(_ENDPOINT_COLUMNS))})"  # noqa: S608 - fixed text
)


def _backfill() -> str:
    """Migration 6: the rollups of every snapshot already stored."""
    row = "json_extract(e.value, '$.{}')"
    scope = _row_scope(row.format("method"), row.format("name"))
    return ";\n".join(
        [
            _roll_up_into("metrics_timeseries", "''", SERIES_FIELDS),
            _roll_up_into(
                "(SELECT m.run_id AS run_id, m.ts_ms AS ts_ms, m.doc AS doc, m.user_count"
                " AS user_count FROM metrics_timeseries m) m, json_each(m.doc, '$.endpoints') e",
                scope,
                ["m.user_count", *(row.format(camel(f)) for f in ENDPOINT_FIELDS)],
            ),
        ]
    )


def _split_endpoints() -> str:
    """Migration 7: endpoint rows out of the snapshot documents, into columns."""
    kinds = {"method": "TEXT NOT NULL", "name": "TEXT NOT NULL", "num_requests": "INTEGER NOT NULL"}
    kinds |= {"num_failures": "INTEGER NOT NULL", "current_rps": "REAL NOT NULL"}
    kinds["current_fail_per_sec"] = "REAL NOT NULL"
    columns = ", ".join(f"{c} {kinds.get(c, 'REAL')}" for c in _ENDPOINT_COLUMNS)
    series = ", ".join(SERIES_FIELDS)
    extracted = ", ".join(f"json_extract(e.value, '$.{camel(c)}')" for c in _ENDPOINT_COLUMNS)
    # What the columns hold exactly leaves the document.
    dropped = ", ".join(f"'$.{camel(field)}'" for field in (*_COLUMN_FIELDS, "endpoints"))
    return f"""
    CREATE TABLE metrics_timeseries_7 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES load_test_runs (id),
        ts_ms INTEGER NOT NULL,
        {", ".join(f"{f} REAL{' NOT NULL' * (f in _ALWAYS_PRESENT)}" for f in SERIES_FIELDS)},
        slot INTEGER,
        doc TEXT NOT NULL
    );
    INSERT INTO metrics_timeseries_7 (id, run_id, ts_ms, {series}, slot, doc)
        SELECT rowid, run_id, ts_ms, {series}, slot, json_remove(doc, {dropped})
        FROM metrics_timeseries ORDER BY rowid;
    CREATE TABLE metrics_endpoints (
        snapshot INTEGER NOT NULL,
        position INTEGER NOT NULL,
        {columns},
        PRIMARY KEY (snapshot, position)
    ) WITHOUT ROWID;
    INSERT INTO metrics_endpoints
        SELECT m.rowid, e.key, {extracted}
        FROM metrics_timeseries m, json_each(m.doc, '$.endpoints') e;
    DROP TABLE metrics_timeseries;
    ALTER TABLE metrics_timeseries_7 RENAME TO metrics_timeseries;
    CREATE INDEX metrics_timeseries_series ON metrics_timeseries (run_id, ts_ms, {series});
    CREATE UNIQUE INDEX metrics_timeseries_slot ON metrics_timeseries (run_id, slot)
        WHERE slot IS NOT NULL;
    CREATE INDEX metrics_timeseries_unfolded ON metrics_timeseries (run_id, id);
    CREATE TABLE metrics_folded (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        through INTEGER NOT NULL
    );
    INSERT INTO metrics_folded VALUES (0, (SELECT coalesce(max(id), 0) FROM metrics_timeseries))
    """  # noqa: S608 - fixed text


_MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema. Documents are the camelCase JSON of the models; the
    # columns beside them exist only to filter, order and aggregate in SQL.
    """
    CREATE TABLE load_tests (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        env_id TEXT NOT NULL,
        name TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX load_tests_order ON load_tests (created_ms, id);
    CREATE INDEX load_tests_tenant ON load_tests (tenant_id, env_id, created_ms, id);
    CREATE INDEX load_tests_creator ON load_tests (created_by, created_ms, id);
    CREATE TABLE load_test_tags (
        tag TEXT NOT NULL,
        load_test_id TEXT NOT NULL REFERENCES load_tests (id) ON DELETE CASCADE,
        PRIMARY KEY (tag, load_test_id)
    ) WITHOUT ROWID;
    CREATE INDEX load_test_tags_test ON load_test_tags (load_test_id);
    CREATE TABLE load_test_runs (
        id TEXT PRIMARY KEY,
        load_test_id TEXT NOT NULL REFERENCES load_tests (id),
        tenant_id TEXT NOT NULL,
        env_id TEXT NOT NULL,
        cluster_id TEXT NOT NULL,
        status TEXT NOT NULL,
        active INTEGER NOT NULL,
        started_ms INTEGER,
        created_ms INTEGER NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE UNIQUE INDEX load_test_runs_cluster_lease ON load_test_runs (cluster_id)
        WHERE active = 1;
    CREATE INDEX load_test_runs_test ON load_test_runs (load_test_id, created_ms, id);
    CREATE INDEX load_test_runs_tenant ON load_test_runs (tenant_id, env_id, created_ms, id);
    CREATE INDEX load_test_runs_status ON load_test_runs (status, created_ms, id);
    CREATE INDEX load_test_runs_started ON load_test_runs (started_ms);
    CREATE INDEX load_test_runs_order ON load_test_runs (created_ms, id);
    CREATE TABLE metrics_timeseries (
        run_id TEXT NOT NULL REFERENCES load_test_runs (id),
        ts_ms INTEGER NOT NULL,
        user_count REAL,
        current_rps REAL,
        current_fail_per_sec REAL,
        current_p50 REAL,
        current_p95 REAL,
        doc TEXT NOT NULL
    );
    CREATE INDEX metrics_timeseries_run_ts ON metrics_timeseries (run_id, ts_ms);
    """,
    # 2: who monitors an active run, and until when (several host replicas).
    """
    ALTER TABLE load_test_runs ADD COLUMN monitor_owner TEXT;
    ALTER TABLE load_test_runs ADD COLUMN monitor_expires_ms INTEGER;
    """,
    # 3: a covering index, so a series is computed from the index alone instead
    # of visiting every snapshot's row (about 2x faster at 43,200 snapshots).
    """
    CREATE INDEX metrics_timeseries_series ON metrics_timeseries (
        run_id, ts_ms, user_count, current_rps, current_fail_per_sec, current_p50, current_p95
    );
    DROP INDEX metrics_timeseries_run_ts;
    """,
    # 4: poll slots. A run keeps one snapshot per slot, so two replicas polling
    # in the same slot store it once; snapshots without a slot are not limited.
    """
    ALTER TABLE metrics_timeseries ADD COLUMN slot INTEGER;
    CREATE UNIQUE INDEX metrics_timeseries_slot ON metrics_timeseries (run_id, slot)
        WHERE slot IS NOT NULL;
    """,
    # 5: runs on provisioned clusters hold no cluster lease (each has a cluster
    # of its own), and stored locustfiles, one row per version.
    """
    ALTER TABLE load_test_runs ADD COLUMN exclusive INTEGER NOT NULL DEFAULT 1;
    DROP INDEX load_test_runs_cluster_lease;
    CREATE UNIQUE INDEX load_test_runs_cluster_lease ON load_test_runs (cluster_id)
        WHERE active = 1 AND exclusive = 1;
    CREATE TABLE locustfiles (
        tenant_id TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (tenant_id, name, version)
    ) WITHOUT ROWID;
    """,
    # 6: rollups (issue 18). Per run, level and scope, one row per level cell
    # holding mergeable figures, upserted with the snapshots, so a series of
    # wide buckets reads a few thousand cells instead of every snapshot and its
    # JSON. The snapshots already stored are rolled up here.
    ";\n".join([_rollups_table(), _backfill()]),
    # 7: endpoint rows in columns, one row each, instead of inside the snapshot
    # document: a write no longer serialises them to JSON, a snapshot takes a
    # third of the bytes, and one endpoint's series reads columns. Snapshots
    # get an id that never comes back (AUTOINCREMENT), which the rows point at
    # and which metrics_folded.through counts cells up to. Every cell is up to
    # date at schema 6, so everything stored is folded.
    _split_endpoints(),
)
SCHEMA_VERSION = len(_MIGRATIONS)

FOLD_EVERY = 4096
"""Rows one run may leave unfolded before a write folds, by default: about 370
snapshots of ten endpoint rows, or 40 of a hundred, so a series' tail stays a
few thousand rows."""

_FOLD_ALL = 16
"""Rows of all runs together may reach this many times ``fold_every`` first. A
Monitor writes a snapshot of each of hundreds of runs in turn, and folding
after a few hundred snapshots gave each cell one snapshot per fold: 33 cell
upserts a snapshot, as if nothing were deferred."""

_CONVERTER = make_converter("iso")
_SERIES_COLUMNS = ", ".join(f"MIN({f}), AVG({f}), MAX({f})" for f in SERIES_FIELDS)


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def _default_retrying() -> tenacity.Retrying:
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_lock_error),
        wait=tenacity.wait_random_exponential(multiplier=0.01, max=0.5),
        stop=tenacity.stop_after_delay(30),
        reraise=True,
    )


def _dumps(model: Any) -> str:
    return json.dumps(_CONVERTER.unstructure(model), separators=(",", ":"))


def _loads(doc: str, cls: type[T]) -> T:
    return _CONVERTER.structure(json.loads(doc), cls, subject=f"stored {cls.__name__}")


@functools.lru_cache(maxsize=65_536)
def _run_from_doc(doc: str) -> LoadTestRun:
    # The Monitor lists every active run twice an interval; decoding 500 run
    # documents each time was an eighth of its CPU. Runs are immutable, and a
    # changed run has a changed document, so the text is the key. The cache
    # must hold every active run: at 4,096 entries, 5,000 runs evicted each
    # other on every listing and the Monitor spent its core decoding them.
    return _loads(doc, LoadTestRun)


class _Database:
    """One writing connection, serialised by a lock, and a reading connection per thread.

    WAL lets readers and the writer work at once: a series a dashboard or a
    notebook computes for a second never holds up the Monitor's writes, and a
    reader sees every transaction committed before its own began. An in-memory
    database exists only on its one connection, so there reads share it.
    """

    def __init__(self, path: str, retrying: Callable[[], tenacity.Retrying]) -> None:
        self.path = path
        self._retrying = retrying
        self._lock = threading.RLock()
        self._memory = path == ":memory:" or "mode=memory" in path
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._conn = self._connect()
        self._closed = False
        self._locked(self._configure)
        self.write(self._migrate)

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                self.path,
                timeout=10.0,
                isolation_level=None,  # we issue BEGIN ourselves
                check_same_thread=False,  # the writer is guarded by self._lock
                uri=self.path.startswith("file:"),
            )
        except sqlite3.Error as exc:
            raise RepositoryUnavailableError(
                f"cannot open SQLite database {self.path!r}: {exc}"
            ) from exc

    @staticmethod
    def _configure(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        # Read inside the write transaction: two processes opening a new file at
        # once must not both apply migration 1.
        (current,) = conn.execute("PRAGMA user_version").fetchone()
        if current > SCHEMA_VERSION:
            raise RepositoryUnavailableError(
                f"database schema {current} is newer than this loadmanager ({SCHEMA_VERSION});"
                " upgrade loadmanager"
            )
        for number in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[number - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")

    def _checked(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("this SQLite storage is closed")
        return self._conn

    def _locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock, _mapped(self.path):
            conn = self._checked()
            return with_retries(lambda: fn(conn), self._retrying)

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            with self._lock:
                self._checked()
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read with lock retries.

        Each statement reads its own committed state: an explicit read
        transaction around every read cost the Monitor a third more lost polls
        at N = 500 (bench_monitor_fanout), so reads that take two statements
        bound the second by what the first saw.
        """
        if self._memory:
            return self._locked(fn)
        self._checked()
        with _mapped(self.path):
            conn = self._reader()
            return with_retries(lambda: fn(conn), self._retrying)

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one IMMEDIATE transaction, retried whole on lock errors."""
        with self._lock, _mapped(self.path):
            conn = self._checked()

            def transaction() -> T:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result

            return with_retries(transaction, self._retrying)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
                for reader in self._readers:
                    reader.close()
                self._readers.clear()


@contextmanager
def _mapped(path: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise RepositoryUnavailableError(f"SQLite database {path!r} unavailable: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise RepositoryUnavailableError(f"SQLite database {path!r} failed: {exc}") from exc


class SqliteLoadTestRepository:
    """Load tests in the ``load_tests`` table, tags in ``load_test_tags``."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    def add(self, test: LoadTest) -> LoadTest:
        def insert(conn: sqlite3.Connection) -> LoadTest:
            try:
                conn.execute(
                    "INSERT INTO load_tests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        test.id,
                        test.tenant_id,
                        test.env_id,
                        test.name,
                        test.audit.created_by,
                        to_millis(test.audit.created_at),
                        test.version,
                        _dumps(test),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateError("LoadTest", test.id) from exc
            self._write_tags(conn, test)
            return test

        return self._db.write(insert)

    @staticmethod
    def _write_tags(conn: sqlite3.Connection, test: LoadTest) -> None:
        conn.execute("DELETE FROM load_test_tags WHERE load_test_id = ?", (test.id,))
        conn.executemany(
            "INSERT OR IGNORE INTO load_test_tags VALUES (?, ?)",
            [(tag, test.id) for tag in test.tags],
        )

    @checked
    def get(self, test_id: str) -> LoadTest:
        row = self._db.run(
            lambda conn: conn.execute(
                "SELECT doc FROM load_tests WHERE id = ?", (test_id,)
            ).fetchone()
        )
        if row is None:
            raise NotFoundError("LoadTest", test_id)
        return _loads(row[0], LoadTest)

    def update(self, test: LoadTest) -> LoadTest:
        stored = bumped(test)

        def change(conn: sqlite3.Connection) -> LoadTest:
            cursor = conn.execute(
                "UPDATE load_tests SET tenant_id = ?, env_id = ?, name = ?, version = ?,"
                " doc = ? WHERE id = ? AND version = ?",
                (
                    stored.tenant_id,
                    stored.env_id,
                    stored.name,
                    stored.version,
                    _dumps(stored),
                    test.id,
                    test.version,
                ),
            )
            if cursor.rowcount == 0:
                _raise_missing_or_stale(conn, "load_tests", "LoadTest", test.id, test.version)
            self._write_tags(conn, stored)
            return stored

        return self._db.write(change)

    @checked
    def delete(self, test_id: str) -> None:
        def remove(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM load_tests WHERE id = ?", (test_id,)).fetchone() is None:
                raise NotFoundError("LoadTest", test_id)
            active = conn.execute(
                "SELECT id FROM load_test_runs WHERE load_test_id = ? AND active = 1",
                (test_id,),
            ).fetchone()
            if active is not None:
                raise ActiveRunError(test_id, active[0])
            conn.execute(
                "DELETE FROM metrics_endpoints WHERE snapshot IN (SELECT m.id FROM"
                " metrics_timeseries m JOIN load_test_runs r ON r.id = m.run_id"
                " WHERE r.load_test_id = ?)",
                (test_id,),
            )
            for table in ("metrics_timeseries", "metrics_rollups"):
                conn.execute(
                    f"DELETE FROM {table} WHERE run_id IN"  # noqa: S608 - table is ours
                    " (SELECT id FROM load_test_runs WHERE load_test_id = ?)",
                    (test_id,),
                )
            conn.execute("DELETE FROM load_test_runs WHERE load_test_id = ?", (test_id,))
            conn.execute("DELETE FROM load_tests WHERE id = ?", (test_id,))

        self._db.write(remove)

    def find(self, filter: LoadTestFilter) -> list[LoadTest]:  # noqa: A002
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("tenant_id", filter.tenant_id),
            ("env_id", filter.env_id),
            ("created_by", filter.created_by),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if filter.tenant_ids is not None:
            where.append(_in("tenant_id", filter.tenant_ids, params))
        if filter.name_contains is not None:
            # instr, not LIKE: '%' and '_' in a caller's text stay literal.
            where.append("instr(name, ?) > 0")
            params.append(filter.name_contains)
        if filter.tags:
            tags = sorted(set(filter.tags))
            where.append(
                "id IN (SELECT load_test_id FROM load_test_tags WHERE "  # noqa: S608 - placeholders only
                + _in("tag", tags, params)
                + " GROUP BY load_test_id HAVING COUNT(*) = ?)"
            )
            params.append(len(tags))
        sql = "SELECT doc FROM load_tests"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_ms, id LIMIT ?"
        params.append(filter.limit)
        rows = self._db.run(lambda conn: conn.execute(sql, params).fetchall())
        return [_loads(doc, LoadTest) for (doc,) in rows]


class SqliteLoadTestRunRepository:
    """Runs in ``load_test_runs``; the lease is the partial unique index."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    def add(self, run: LoadTestRun) -> LoadTestRun:
        def insert(conn: sqlite3.Connection) -> LoadTestRun:
            try:
                conn.execute(
                    "INSERT INTO load_test_runs (id, load_test_id, tenant_id, env_id, cluster_id,"
                    " status, active, started_ms, created_ms, version, doc, exclusive)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.id,
                        run.load_test_id,
                        run.tenant_id,
                        run.env_id,
                        run.locust_cluster_id,
                        run.status.value,
                        int(run.is_active),
                        None if run.started_at is None else to_millis(run.started_at),
                        to_millis(run.audit.created_at),
                        run.version,
                        _dumps(run),
                        int(run.exclusive),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                self._raise_integrity(conn, run, exc)
            return run

        return self._db.write(insert)

    def _raise_integrity(
        self, conn: sqlite3.Connection, run: LoadTestRun, exc: sqlite3.IntegrityError
    ) -> NoReturn:
        message = str(exc)
        if "FOREIGN KEY" in message:
            raise NotFoundError("LoadTest", run.load_test_id) from exc
        if "load_test_runs.id" in message:
            raise DuplicateError("LoadTestRun", run.id) from exc
        holder = conn.execute(
            "SELECT id FROM load_test_runs WHERE cluster_id = ? AND active = 1 AND exclusive = 1",
            (run.locust_cluster_id,),
        ).fetchone()
        raise ClusterBusyError(run.locust_cluster_id, holder[0] if holder else None) from exc

    @checked
    def get(self, run_id: str) -> LoadTestRun:
        row = self._db.run(
            lambda conn: conn.execute(
                "SELECT doc FROM load_test_runs WHERE id = ?", (run_id,)
            ).fetchone()
        )
        if row is None:
            raise NotFoundError("LoadTestRun", run_id)
        return _run_from_doc(row[0])

    def update(self, run: LoadTestRun) -> LoadTestRun:
        stored = bumped(run)

        def change(conn: sqlite3.Connection) -> LoadTestRun:
            try:
                cursor = conn.execute(
                    "UPDATE load_test_runs SET status = ?, active = ?, started_ms = ?,"
                    " version = ?, doc = ? WHERE id = ? AND version = ?",
                    (
                        stored.status.value,
                        int(stored.is_active),
                        None if stored.started_at is None else to_millis(stored.started_at),
                        stored.version,
                        _dumps(stored),
                        run.id,
                        run.version,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                self._raise_integrity(conn, run, exc)
            if cursor.rowcount == 0:
                _raise_missing_or_stale(conn, "load_test_runs", "LoadTestRun", run.id, run.version)
            return stored

        return self._db.write(change)

    def find(self, filter: RunFilter) -> list[LoadTestRun]:  # noqa: A002
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("load_test_id", filter.load_test_id),
            ("tenant_id", filter.tenant_id),
            ("env_id", filter.env_id),
            ("cluster_id", filter.locust_cluster_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if filter.tenant_ids is not None:
            where.append(_in("tenant_id", filter.tenant_ids, params))
        if filter.statuses is not None:
            where.append(_in("status", [s.value for s in filter.statuses], params))
        if filter.started_after is not None:
            where.append("started_ms >= ?")
            params.append(to_millis(filter.started_after))
        if filter.started_before is not None:
            where.append("started_ms < ?")
            params.append(to_millis(filter.started_before))
        sql = "SELECT doc FROM load_test_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_ms, id LIMIT ?"
        params.append(filter.limit)
        rows = self._db.run(lambda conn: conn.execute(sql, params).fetchall())
        return [_run_from_doc(doc) for (doc,) in rows]

    @checked
    def active_on_cluster(self, cluster_id: str) -> LoadTestRun | None:
        row = self._db.run(
            lambda conn: conn.execute(
                "SELECT doc FROM load_test_runs"
                " WHERE cluster_id = ? AND active = 1 AND exclusive = 1",
                (cluster_id,),
            ).fetchone()
        )
        return None if row is None else _run_from_doc(row[0])

    @checked
    def claim_monitor(self, run_id: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        now_ms = to_millis(now)
        until_ms = to_millis(now + ttl)

        def claim(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE load_test_runs SET monitor_owner = ?, monitor_expires_ms = ?"
                " WHERE id = ? AND active = 1 AND (monitor_owner IS NULL"
                " OR monitor_owner = ? OR monitor_expires_ms < ?)",
                (owner, until_ms, run_id, owner, now_ms),
            )
            return cursor.rowcount == 1

        return self._db.write(claim)

    @checked
    def claim_monitors(
        self, run_ids: Collection[str], owner: str, *, now: datetime, ttl: timedelta
    ) -> set[str]:
        wanted = sorted(set(run_ids))
        now_ms, until_ms = to_millis(now), to_millis(now + ttl)

        def claim(conn: sqlite3.Connection) -> set[str]:
            taken: set[str] = set()
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                marks = ", ".join("?" * len(part))
                conn.execute(
                    "UPDATE load_test_runs SET monitor_owner = ?, monitor_expires_ms = ?"  # noqa: S608 - placeholders only
                    f" WHERE id IN ({marks}) AND active = 1 AND (monitor_owner IS NULL"
                    " OR monitor_owner = ? OR monitor_expires_ms < ?)",
                    (owner, until_ms, *part, owner, now_ms),
                )
                # Inside the same write transaction nobody else can claim, so
                # what now carries this owner and expiry is what was taken.
                taken.update(
                    run_id
                    for (run_id,) in conn.execute(
                        f"SELECT id FROM load_test_runs WHERE id IN ({marks})"  # noqa: S608 - placeholders only
                        " AND active = 1 AND monitor_owner = ? AND monitor_expires_ms = ?",
                        (*part, owner, until_ms),
                    )
                )
            return taken

        return self._db.write(claim) if wanted else set()

    @checked
    def release_monitor(self, run_id: str, owner: str) -> None:
        self._db.write(
            lambda conn: conn.execute(
                "UPDATE load_test_runs SET monitor_owner = NULL, monitor_expires_ms = NULL"
                " WHERE id = ? AND monitor_owner = ?",
                (run_id, owner),
            )
        )

    @checked
    def monitor_of(self, run_id: str) -> MonitorClaim | None:
        row = self._db.run(
            lambda conn: conn.execute(
                "SELECT monitor_owner, monitor_expires_ms FROM load_test_runs WHERE id = ?",
                (run_id,),
            ).fetchone()
        )
        if row is None or row[0] is None:
            return None
        return MonitorClaim(row[0], from_millis(row[1]))


class SqliteMetricsRepository(AddsOne):
    """Snapshots in ``metrics_timeseries``, their endpoint rows in ``metrics_endpoints``.

    Series are a GROUP BY in SQL: over the snapshots for narrow buckets, over
    the rolled-up cells and the tail not yet folded into them for wide ones.

    Args:
        db: The database.
        fold_every: How many rows this repository stores before a write also
            folds every unfolded snapshot into the series cells (see
            ``_FOLD``); a snapshot counts one row, and each of its endpoint rows
            one more. Fewer makes writes dearer; more makes wide series read a
            longer tail.
    """

    def __init__(self, db: _Database, *, fold_every: int = FOLD_EVERY) -> None:
        if fold_every < 1:
            raise ValueError(f"fold_every must be at least 1, not {fold_every}")
        self._db = db
        self._fold_every = fold_every
        # Counted per process, the total from what was left unfolded at
        # opening, so a string of short-lived writers (a CLI run each) cannot
        # grow the tail without end; each writer folds the rows of every writer.
        self._by_run = self._tail()
        self._unfolded = sum(self._by_run.values())
        self._wrote = False

    def _tail(self) -> dict[str, int]:
        """Each run's unfolded rows (a snapshot and each of its endpoint rows)."""
        found = self._db.run(
            lambda conn: conn.execute(
                "SELECT m.run_id, COUNT(*) + TOTAL((SELECT COUNT(*) FROM metrics_endpoints e"  # noqa: S608 - fixed text
                f" WHERE e.snapshot = m.id)) FROM metrics_timeseries m WHERE {_UNFOLDED}"
                " GROUP BY m.run_id"
            ).fetchall()
        )
        return {run_id: int(rows) for run_id, rows in found}

    def fold(self) -> None:
        """Fold every snapshot not yet in the series cells into them, now.

        Writes do this every ``fold_every`` rows and closing a storage
        that wrote does it too, so callers need not; series are exact either way.
        """
        self._db.write(self._fold)

    def _fold(self, conn: sqlite3.Connection) -> None:
        for statement in _FOLD:
            conn.execute(statement)
        self._unfolded = 0
        self._by_run.clear()

    def _close(self) -> None:
        if self._wrote and self._unfolded:
            # Unavailable now, the tail stays exact to read; the next writer folds it.
            with suppress(RepositoryUnavailableError):
                self.fold()

    def add_many(self, snapshots: Iterable[MetricSnapshot]) -> int:
        items = list(snapshots)
        rows = [
            (
                s.load_test_run_id,
                to_millis(s.timestamp),
                s.user_count,
                s.current_rps,
                s.current_fail_per_sec,
                s.current_p50,
                s.current_p95,
                s.slot,
                compact_json(_snapshot_doc(s)),
            )
            for s in items
        ]

        def insert(conn: sqlite3.Connection) -> int:
            try:
                if len(rows) == 1:  # the Monitor's write: one statement fewer
                    cursor = conn.execute(_INSERT_SNAPSHOT_IF_FREE, rows[0])
                    kept, ids = ([0], [cursor.lastrowid]) if cursor.rowcount == 1 else ([], [])
                else:
                    kept = _unslotted_or_free(conn, items)
                    # Ids given, not taken, so the endpoint rows can point at them;
                    # the write lock is held, so nobody takes them meanwhile.
                    after = conn.execute(
                        "SELECT coalesce(max(seq), 0) FROM sqlite_sequence"
                        " WHERE name = 'metrics_timeseries'"
                    ).fetchone()[0]
                    ids = list(range(after + 1, after + 1 + len(kept)))
                    conn.executemany(
                        _INSERT_SNAPSHOT_WITH_ID,
                        [(i, *rows[k]) for i, k in zip(ids, kept, strict=True)],
                    )
            except sqlite3.IntegrityError as exc:  # foreign key: a run that is not stored
                known = {r[0] for r in conn.execute("SELECT id FROM load_test_runs")}
                missing = sorted({row[0] for row in rows} - known)
                raise NotFoundError("LoadTestRun", missing[0] if missing else "?") from exc
            if not kept:
                return 0
            conn.executemany(
                _INSERT_ENDPOINT,
                [
                    (snapshot_id, position, *_endpoint_row(row))
                    for snapshot_id, k in zip(ids, kept, strict=True)
                    for position, row in enumerate(items[k].endpoints)
                ],
            )
            # Counted before the fold, so a fold that fails retries the whole
            # write and a retry that succeeds counts it again: early, never late.
            by_run, most = self._by_run, 0
            for k in kept:
                run_id, added = items[k].load_test_run_id, 1 + len(items[k].endpoints)
                by_run[run_id] = count = by_run.get(run_id, 0) + added
                most = max(most, count)
                self._unfolded += added
            self._wrote = True
            if most >= self._fold_every or self._unfolded >= _FOLD_ALL * self._fold_every:
                self._fold(conn)
            return len(kept)

        return self._db.write(insert) if rows else 0

    @checked
    def snapshots(
        self,
        run_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[MetricSnapshot]:
        sql, params = self._range(f"SELECT id, {', '.join(_SNAPSHOT_COLUMNS)}", run_id, start, end)
        sql += " ORDER BY ts_ms, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        # One statement, so a snapshot and its endpoint rows are read together.
        sql = (
            f"SELECT m.*, {', '.join(f'e.{c}' for c in _ENDPOINT_COLUMNS)}"  # noqa: S608 - fixed text
            f" FROM ({sql}) m LEFT JOIN metrics_endpoints e ON e.snapshot = m.id"
            " ORDER BY m.ts_ms, m.id, e.position"
        )
        rows = self._db.run(lambda conn: conn.execute(sql, params).fetchall())
        found = []
        width = 1 + len(_SNAPSHOT_COLUMNS)  # the id, then the snapshot's columns
        for _, group in itertools.groupby(rows, key=operator.itemgetter(0)):
            first, *more = group
            *columns, text = first[1:width]
            columns[1] = from_millis(columns[1])
            doc = json.loads(text)
            doc.update(zip(_COLUMN_KEYS, columns, strict=True))
            if first[width] is not None:
                doc["endpoints"] = _endpoint_rows([row[width:] for row in (first, *more)])
            found.append(_CONVERTER.structure(doc, MetricSnapshot, subject="stored MetricSnapshot"))
        return found

    @staticmethod
    def _range(
        select: str, run_id: str, start: datetime | None, end: datetime | None
    ) -> tuple[str, list[Any]]:
        sql = f"{select} FROM metrics_timeseries WHERE run_id = ?"
        params: list[Any] = [run_id]
        if start is not None:
            sql += " AND ts_ms >= ?"
            params.append(to_millis(start))
        if end is not None:
            sql += " AND ts_ms < ?"
            params.append(to_millis(end))
        return sql, params

    @checked
    def series(
        self,
        run_id: str,
        buckets: int,
        *,
        endpoint: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SeriesBucket]:
        # Two subqueries, not MIN and MAX in one: SQLite answers a lone MIN or
        # MAX from the index's ends, but scans the run's rows for both at once.
        low_sql, low_params = self._range("SELECT MIN(ts_ms)", run_id, start, end)
        high_sql, high_params = self._range("SELECT MAX(ts_ms)", run_id, start, end)
        bounds_sql = f"SELECT ({low_sql}), ({high_sql})"
        bounds_params = [*low_params, *high_params]

        def query(conn: sqlite3.Connection) -> list[SeriesBucket]:
            first, last = conn.execute(bounds_sql, bounds_params).fetchone()
            window = window_for(start, end, first, last, buckets)
            if window is None:
                return []
            if window.level_ms:
                return self._rolled_up(conn, run_id, window, endpoint)
            # Bound by the window the first statement saw: a snapshot stored
            # between the two statements must not add a bucket past its end.
            low, high = from_millis(window.start_ms), from_millis(window.end_ms)
            if endpoint is None:
                sql, params = self._range(
                    f"SELECT (ts_ms - ?) / ? AS bucket, COUNT(*), {_SERIES_COLUMNS}",
                    run_id,
                    low,
                    high,
                )
            else:
                sql, params = self._endpoint_series_sql(run_id, endpoint, low, high)
            sql += " GROUP BY bucket"
            rows = conn.execute(sql, [window.start_ms, window.width_ms, *params]).fetchall()
            return assemble(window, [(r[0], r[1], r[2:]) for r in rows])

        return self._db.run(query)

    @staticmethod
    def _rolled_up(
        conn: sqlite3.Connection, run_id: str, window: SeriesWindow, endpoint: str | None
    ) -> list[SeriesBucket]:
        level = window.level_ms
        rows = conn.execute(
            _ROLLED_UP_SERIES[endpoint is not None],
            {
                "level": level,
                "start": window.start_ms,
                "width": window.width_ms,
                "run": run_id,
                "scope": WHOLE_RUN if endpoint is None else endpoint_scope(endpoint),
                "low": window.start_ms // level,
                "high": window.end_ms // level,
            },
        ).fetchall()
        return assemble(window, [(r[0], r[1], r[2:]) for r in rows])

    @staticmethod
    def _endpoint_series_sql(
        run_id: str, endpoint: str, start: datetime | None, end: datetime | None
    ) -> tuple[str, list[Any]]:
        figures = ", ".join(f"MIN({v}), AVG({v}), MAX({v})" for v in _ENDPOINT_FIGURES)
        pairs = endpoint_matches(endpoint)
        match = " OR ".join("(e.method = ? AND e.name = ?)" for _ in pairs)
        sql = (
            f"SELECT (m.ts_ms - ?) / ? AS bucket, COUNT(*), {figures}"  # noqa: S608 - fixed text
            " FROM metrics_timeseries m JOIN metrics_endpoints e ON e.snapshot = m.id"
            f" WHERE m.run_id = ? AND ({match})"
        )
        params: list[Any] = [run_id, *(v for pair in pairs for v in pair)]
        if start is not None:
            sql += " AND m.ts_ms >= ?"
            params.append(to_millis(start))
        if end is not None:
            sql += " AND m.ts_ms < ?"
            params.append(to_millis(end))
        return sql, params

    @checked
    def histogram_changes(
        self,
        run_id: str,
        *,
        endpoint: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[tuple[datetime, dict[int, int]]]:
        # SQLite's JSON functions pick the one change out of each document in
        # C: structuring whole snapshots to read it cost 0.4 ms a snapshot.
        sql, params = self._range(_HISTOGRAM_CHANGE, run_id, start, end)
        sql += " AND json_array_length(doc, '$.histograms') > 0 ORDER BY ts_ms, id"
        params.insert(0, endpoint or AGGREGATED)
        rows = self._db.run(lambda conn: conn.execute(sql, params).fetchall())
        loads = json.loads
        return [(from_millis(ts), dict(loads(buckets)) if buckets else {}) for ts, buckets in rows]

    @checked
    def peak_worker_cpu(self, run_id: str) -> float | None:
        (peak,) = self._db.run(
            lambda conn: conn.execute(
                "SELECT MAX(json_extract(w.value, '$.cpuUsage')) FROM metrics_timeseries m,"
                " json_each(m.doc, '$.workers') w WHERE m.run_id = ?",
                (run_id,),
            ).fetchone()
        )
        return None if peak is None else float(peak)

    @checked
    def count(self, run_id: str) -> int:
        row = self._db.run(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM metrics_timeseries WHERE run_id = ?", (run_id,)
            ).fetchone()
        )
        return int(row[0])


_COLUMN_KEYS = tuple(camel(f) for f in _COLUMN_FIELDS)
# What the columns and the endpoint rows hold exactly is not written twice.
_snapshot_doc = _CONVERTER.unstructurer(MetricSnapshot, omit=(*_COLUMN_FIELDS, "endpoints"))
_endpoint_row = operator.attrgetter(*_ENDPOINT_COLUMNS)
_ENDPOINT_KEYS = tuple(camel(c) for c in _ENDPOINT_COLUMNS)


def _endpoint_rows(rows: list[tuple[Any, ...]]) -> list[EndpointStats] | list[dict[str, Any]]:
    """A snapshot's endpoint rows as read: the models, made straight from the columns.

    The columns hold EndpointStats' fields in its order, already typed, and
    the constructor checks them: going through the converter field by field
    checked each twice and was most of reading a snapshot (48 of 246 us a
    row). A row that fails the checks goes through the converter, whose error
    names the field.
    """
    try:
        return [EndpointStats(*row) for row in rows]
    except (ValidationError, TypeError):
        return [dict(zip(_ENDPOINT_KEYS, row, strict=True)) for row in rows]


_HISTOGRAM_CHANGE = (
    "SELECT ts_ms, (SELECT json_extract(h.value, '$.buckets')"
    " FROM json_each(doc, '$.histograms') h WHERE json_extract(h.value, '$.key') = ?)"
)
"""A snapshot's time and the buckets of one key's histogram change (NULL if it has none)."""


def _in(column: str, values: Iterable[Any], params: list[Any]) -> str:
    items = list(values)
    params.extend(items)
    if not items:
        return "0"
    return f"{column} IN ({', '.join('?' * len(items))})"


def _unslotted_or_free(conn: sqlite3.Connection, items: Sequence[MetricSnapshot]) -> list[int]:
    """Indexes of the snapshots to store: any without a slot, the first of a free slot."""
    wanted = sorted({(s.load_test_run_id, s.slot) for s in items if s.slot is not None})
    taken: set[tuple[str, int]] = set()
    # One statement for every run in the batch: the Monitor's group writes
    # hold one snapshot of each of many runs, and a query per run was a
    # quarter of their cost.
    for i in range(0, len(wanted), 400):  # 800 parameters, under SQLite's oldest limit
        part = wanted[i : i + 400]
        found = conn.execute(
            f"SELECT m.run_id, m.slot FROM (VALUES {', '.join(['(?, ?)'] * len(part))}) v"  # noqa: S608 - placeholders only
            " JOIN metrics_timeseries m ON m.run_id = v.column1 AND m.slot = v.column2"
            " AND m.slot IS NOT NULL",
            [value for pair in part for value in pair],
        )
        taken.update(found)
    kept = []
    for i, snap in enumerate(items):
        if snap.slot is not None:
            key = (snap.load_test_run_id, snap.slot)
            if key in taken:
                continue
            taken.add(key)
        kept.append(i)
    return kept


def _rolled_up_series(tail_source: str, tail_figures: Sequence[str], tail_scope: str) -> str:
    """A series of wide buckets: the cells, and the unfolded tail, in one statement,
    so a fold committed meanwhile can neither hide nor double a snapshot."""
    figures = ", ".join(
        f"MIN(min_{f}), SUM(sum_{f}) / NULLIF(SUM(n_{f}), 0), MAX(max_{f})" for f in SERIES_FIELDS
    )
    cells = ", ".join(f"n_{f}, sum_{f}, min_{f}, max_{f}" for f in SERIES_FIELDS)
    tail = ", ".join(f"{v} IS NOT NULL, coalesce({v}, 0.0), {v}, {v}" for v in tail_figures)
    return (
        f"SELECT (cell * :level - :start) / :width AS bucket, SUM(samples), {figures}"  # noqa: S608 - fixed text
        f" FROM (SELECT cell, samples, {cells} FROM metrics_rollups"
        " WHERE run_id = :run AND level = :level AND scope = :scope"
        " AND cell >= :low AND cell < :high"
        f" UNION ALL SELECT m.ts_ms / :level, 1, {tail} FROM {tail_source}"
        # The unary plus keeps the planner on (run, id), the run's short
        # tail, rather than (run, time), which would walk all its snapshots.
        f" WHERE m.run_id = :run AND {_UNFOLDED} AND {tail_scope}"
        " AND +m.ts_ms >= :low * :level AND +m.ts_ms < :high * :level)"
        " GROUP BY bucket"
    )


_ROLLED_UP_SERIES = (
    _rolled_up_series("metrics_timeseries m", [f"m.{f}" for f in SERIES_FIELDS], "true"),
    _rolled_up_series(
        "metrics_timeseries m JOIN metrics_endpoints e ON e.snapshot = m.id",
        _ENDPOINT_FIGURES,
        # The scope a fold gives the row, so folding never changes a series.
        f"{_ENDPOINT_SCOPE} = :scope",
    ),
)
"""The whole run's series, and one endpoint's."""


def _raise_missing_or_stale(
    conn: sqlite3.Connection, table: str, kind: str, object_id: str, expected: int
) -> NoReturn:
    row = conn.execute(f"SELECT version FROM {table} WHERE id = ?", (object_id,)).fetchone()  # noqa: S608 - table is ours
    if row is None:
        raise NotFoundError(kind, object_id)
    raise StaleVersionError(kind, object_id, expected, row[0])


class SqliteLocustfileRepository:
    """Locustfile versions in ``locustfiles``, one row each; the key is the version."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    def add(self, locustfile: Locustfile) -> Locustfile:
        lf = locustfile

        def insert(conn: sqlite3.Connection) -> Locustfile:
            (latest,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM locustfiles"
                " WHERE tenant_id = ? AND name = ?",
                (lf.tenant_id, lf.name),
            ).fetchone()
            if lf.version != latest + 1:
                raise StaleVersionError("Locustfile", lf.name, lf.version - 1, latest)
            conn.execute(
                "INSERT INTO locustfiles (tenant_id, name, version, doc) VALUES (?, ?, ?, ?)",
                (lf.tenant_id, lf.name, lf.version, _dumps(lf)),
            )
            return lf

        return self._db.write(insert)

    @checked
    def get(self, tenant_id: str, name: str, version: int | None = None) -> Locustfile:
        sql = "SELECT doc FROM locustfiles WHERE tenant_id = ? AND name = ?"
        params: list[Any] = [tenant_id, name]
        if version is not None:
            sql += " AND version = ?"
            params.append(version)
        sql += " ORDER BY version DESC LIMIT 1"
        row = self._db.run(lambda conn: conn.execute(sql, params).fetchone())
        if row is None:
            raise NotFoundError("Locustfile", name if version is None else f"{name}@{version}")
        return _loads(row[0], Locustfile)

    @checked
    def find(self, tenant_id: str) -> list[Locustfile]:
        rows = self._db.run(
            lambda conn: conn.execute(
                "SELECT doc FROM locustfiles AS f WHERE tenant_id = ? AND version = ("
                " SELECT MAX(version) FROM locustfiles"
                " WHERE tenant_id = f.tenant_id AND name = f.name) ORDER BY name",
                (tenant_id,),
            ).fetchall()
        )
        return [_loads(doc, Locustfile) for (doc,) in rows]

    @checked
    def versions(self, tenant_id: str, name: str) -> list[int]:
        rows = self._db.run(
            lambda conn: conn.execute(
                "SELECT version FROM locustfiles WHERE tenant_id = ? AND name = ? ORDER BY version",
                (tenant_id, name),
            ).fetchall()
        )
        return [v for (v,) in rows]

    @checked
    def delete(self, tenant_id: str, name: str) -> int:
        def remove(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM locustfiles WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            )
            if cursor.rowcount == 0:
                raise NotFoundError("Locustfile", name)
            return int(cursor.rowcount)

        return self._db.write(remove)


class SqliteStorage:
    """The SQLite backend (``sqlite:///path.db``, or ``sqlite://`` in memory).

    Args:
        path: A file path, or ``":memory:"`` for a private in-memory database.
        retrying: Factory of the tenacity policy for lock contention (tests pass
            one that records instead of sleeping).
        fold_every: How many rows this storage writes between folds of the
            unfolded snapshots into the series cells (see SqliteMetricsRepository).
    """

    def __init__(
        self,
        path: str,
        *,
        retrying: Callable[[], tenacity.Retrying] = _default_retrying,
        fold_every: int = FOLD_EVERY,
    ) -> None:
        self.path = path
        self.url = "sqlite://" if path == ":memory:" else f"sqlite:///{path}"
        self._db = _Database(path, retrying)
        self.load_tests = SqliteLoadTestRepository(self._db)
        self.runs = SqliteLoadTestRunRepository(self._db)
        self.metrics = SqliteMetricsRepository(self._db, fold_every=fold_every)
        self.locustfiles = SqliteLocustfileRepository(self._db)

    @property
    def schema_version(self) -> int:
        """The schema version stored in the file (``PRAGMA user_version``)."""
        return int(self._db.run(lambda conn: conn.execute("PRAGMA user_version").fetchone()[0]))

    def close(self) -> None:
        """Fold what this storage wrote into the series cells, and close the
        connection; further use raises RuntimeError."""
        if not self._db.closed:
            self.metrics._close()
        self._db.close()

    def __enter__(self) -> SqliteStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStorage({self.url!r})"
