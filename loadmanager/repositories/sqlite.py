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
from typing import Any, NoReturn, TypeVar, cast

import attrs
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
from ._folding import EndpointCell, cells, combine, empty, merge, merged_by_bucket, summary
from ._packed import (
    CELL_BYTES,
    COMPACT_BYTES,
    FIGURES,
    ROW_BYTES,
    cell_fits,
    figures_of,
    full_cells,
    names_key,
    names_of,
    names_text,
    pack,
    pack_cell,
    pack_rows,
    scopes_of,
    scopes_text,
    unpack,
)
from ._protocols import AddsOne, MonitorClaim, bumped, checked
from ._rollups import WHOLE_RUN, endpoint_scope, row_scope
from ._series import (
    ENDPOINT_FIELDS,
    SERIES_FIELDS,
    assemble,
    endpoint_matches,
    python_series,
    window_for,
)

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
migration 7 made them and migration 8 reads them, spelt out rather than taken
from the model, so that those migrations never change. A test holds them equal
to the model's fields and to ``_packed``'s layout; a field added to
EndpointStats needs a migration that packs it."""

_SNAPSHOT_COLUMNS = (
    "run_id",
    "ts_ms",
    *SERIES_FIELDS,
    "slot",
    "doc",
    "endpoint_list",
    "endpoint_figures",
)
_COLUMN_FIELDS = ("load_test_run_id", "timestamp", *SERIES_FIELDS, "slot")
"""The snapshot fields _SNAPSHOT_COLUMNS holds in columns of their own, in order:
what the document leaves out, with the endpoint rows (packed, see _packed)."""


def _row_scope(method: str, name: str) -> str:
    """_rollups.row_scope, in SQL."""
    return f"'@' || CASE WHEN {method} = '' THEN {name} ELSE {method} || ' ' || {name} END"


_UNFOLDED = "m.id > (SELECT through FROM metrics_folded)"

_ALWAYS_PRESENT = ("user_count", "current_rps", "current_fail_per_sec")
"""Series figures no snapshot lacks: NOT NULL in metrics_timeseries since schema 7."""


_UPSERT_CELL = (
    f"INSERT INTO metrics_rollups VALUES ({', '.join('?' * (5 + len(_ROLLUP_COLUMNS)))})"  # noqa: S608 - fixed text
    + _MERGE_INTO_CELLS
)
_UNFOLDED_ROWS = (
    f"SELECT run_id, ts_ms, {', '.join(SERIES_FIELDS)}, endpoint_list, endpoint_figures"  # noqa: S608 - fixed text
    " FROM metrics_timeseries WHERE id > (SELECT through FROM metrics_folded)"
)
_FOLDED_THROUGH_LAST = (
    "UPDATE metrics_folded SET through = coalesce("
    "(SELECT seq FROM sqlite_sequence WHERE name = 'metrics_timeseries'), through)"
)
"""Folding every snapshot not yet in the series cells into them, at every level:
read them (``_UNFOLDED_ROWS``), compute their cells (``_folding.cells``),
upsert the whole run's (``_UPSERT_CELL``), merge the endpoints' packed cells
with those stored (``_store_endpoint_cells``) and move the mark
(``_FOLDED_THROUGH_LAST``).

Writes store snapshots alone and fold them in batches, the way TimescaleDB's
real-time aggregates keep a raw tail beside their materialised buckets: an
upsert per cell per snapshot cost the Monitor's one-snapshot write 0.6 ms of
its 1 ms. Series read the cells and the unfolded tail together, so they never
wait for a fold, and a crash between a write and its fold loses nothing: the
next fold, by any writer, takes the rows. The cells are computed in Python
from the packed figures: SQLite's GROUP BY over a row per endpoint was two
thirds of a write."""

_CREATE_ENDPOINT_LISTS = (
    "CREATE TABLE metrics_endpoint_lists (id INTEGER PRIMARY KEY, names TEXT NOT NULL UNIQUE)"
)


_CREATE_SCOPE_LISTS = (
    "CREATE TABLE metrics_scope_lists (id INTEGER PRIMARY KEY, scopes TEXT NOT NULL UNIQUE)"
)
_CREATE_ENDPOINT_CELLS = (
    "CREATE TABLE metrics_endpoint_cells (run_id TEXT NOT NULL REFERENCES load_test_runs (id),"
    " level INTEGER NOT NULL, cell INTEGER NOT NULL,"
    " scopes INTEGER NOT NULL REFERENCES metrics_scope_lists (id), figures BLOB NOT NULL)",
    "CREATE INDEX metrics_endpoint_cells_at"
    " ON metrics_endpoint_cells (run_id, level, cell, scopes)",
)
"""A table with rowids, not WITHOUT ROWID: a row of the latter keeps at most
about 1,000 bytes in its page, and a cell of ten scopes (1,680 bytes) spilt
the rest into a page of its own, half again the bytes of a snapshot. The
index holds each cell's list, so a series finds the lists of its window
without reading the cells; it is not unique because a fold deletes a cell it
rewrites (one row a cell all the same)."""


class _StoredLists:
    """Lists kept once each in a table of ``(id, text)`` that rows point at, as far as seen.

    A stored list never changes and is never deleted, so what was read stays
    true. One a write inserts is learnt only once that write commits
    (``learn``): a rolled-back insert's id may be given to another list.
    """

    def __init__(self, table: str, column: str, decode: Callable[[str], list[Any]]) -> None:
        self._insert = f"INSERT OR IGNORE INTO {table} ({column}) VALUES (?)"  # noqa: S608 - ours
        self._find = f"SELECT id FROM {table} WHERE {column} = ?"  # noqa: S608 - ours
        self._read = f"SELECT {column} FROM {table} WHERE id = ?"  # noqa: S608 - ours
        self._table = table
        self._decode = decode
        self._ids: dict[str, int] = {}
        self._items: dict[int, list[Any]] = {}

    def ids(self, conn: sqlite3.Connection, keys: Iterable[str]) -> dict[str, int]:
        """The ids of the lists ``keys`` (their stored text), stored if new.

        Runs inside the caller's write transaction; ``learn`` the result after it commits.
        """
        found = {}
        for key in keys:
            known = self._ids.get(key)
            if known is None:
                conn.execute(self._insert, (key,))
                (known,) = conn.execute(self._find, (key,)).fetchone()
            found[key] = known
        return found

    def learn(self, ids: dict[str, int]) -> None:
        self._ids.update(ids)

    def items(self, conn: sqlite3.Connection, list_id: int) -> list[Any]:
        """The list stored as ``list_id``."""
        known = self._items.get(list_id)
        if known is None:
            row = conn.execute(self._read, (list_id,)).fetchone()
            if row is None:
                raise ValidationError.single(
                    "endpoints", f"names a missing list {list_id} of {self._table}", subject=_STORED
                )
            known = self._items[list_id] = self._decode(row[0])
        return known


class _EndpointLists(_StoredLists):
    """The endpoint lists snapshots point at (``metrics_endpoint_lists``): ``(method, name)``s."""

    def __init__(self) -> None:
        super().__init__("metrics_endpoint_lists", "names", names_of)
        self._scopes: dict[int, list[str]] = {}

    def names(self, conn: sqlite3.Connection, list_id: int) -> list[tuple[str, str]]:
        return self.items(conn, list_id)

    def scopes(self, conn: sqlite3.Connection, list_id: int) -> list[str]:
        """The scope each row of the list rolls up into, in order."""
        known = self._scopes.get(list_id)
        if known is None:
            names = self.names(conn, list_id)
            known = self._scopes[list_id] = [row_scope(m, n) for m, n in names]
        return known


def _scope_lists() -> _StoredLists:
    """The scopes packed endpoint cells hold, in order (``metrics_scope_lists``)."""
    return _StoredLists("metrics_scope_lists", "scopes", scopes_of)


_STORED = "stored MetricSnapshot"

_INSERT_SNAPSHOT_IF_FREE = (
    f"INSERT OR IGNORE INTO metrics_timeseries ({', '.join(_SNAPSHOT_COLUMNS)})"  # noqa: S608 - fixed text
    f" VALUES ({', '.join('?' * len(_SNAPSHOT_COLUMNS))})"
)
_INSERT_SNAPSHOT = (
    f"INSERT INTO metrics_timeseries ({', '.join(_SNAPSHOT_COLUMNS)})"  # noqa: S608 - fixed text
    f" VALUES ({', '.join('?' * len(_SNAPSHOT_COLUMNS))})"
)
_LIST = _SNAPSHOT_COLUMNS.index("endpoint_list")
_FIGURE_WIDTH = len(FIGURES)
_ENDPOINT_OFFSETS = tuple(FIGURES.index(f) for f in ENDPOINT_FIELDS)


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


def _pack_endpoints(conn: sqlite3.Connection) -> None:
    """Migration 8: each snapshot's endpoint rows packed into one value (see _packed)."""
    conn.execute(_CREATE_ENDPOINT_LISTS)
    conn.execute(
        "ALTER TABLE metrics_timeseries ADD COLUMN endpoint_list INTEGER"
        " REFERENCES metrics_endpoint_lists (id)"
    )
    conn.execute("ALTER TABLE metrics_timeseries ADD COLUMN endpoint_figures BLOB")
    lists = _EndpointLists()
    rows = conn.execute(
        f"SELECT snapshot, {', '.join(_ENDPOINT_COLUMNS)} FROM metrics_endpoints"  # noqa: S608 - fixed text
        " ORDER BY snapshot, position"
    )
    packed = []
    for snapshot_id, group in itertools.groupby(rows, key=operator.itemgetter(0)):
        members = [row[1:] for row in group]
        key = names_text([row[:2] for row in members])
        found = lists.ids(conn, [key])
        lists.learn(found)  # this transaction's own, and thrown away with it
        listed = found[key]
        packed.append((listed, pack_rows([row[2:] for row in members]), snapshot_id))
    conn.executemany(
        "UPDATE metrics_timeseries SET endpoint_list = ?, endpoint_figures = ? WHERE id = ?",
        packed,
    )
    conn.execute("DROP TABLE metrics_endpoints")


def _store_endpoint_cells(
    conn: sqlite3.Connection, lists: _StoredLists, found: list[EndpointCell]
) -> None:
    """Merge packed endpoint cells into those stored (Python merges them: SQL cannot)."""
    grouped: dict[tuple[str, int, int], list[tuple[Sequence[str], bytes]]] = {}
    spans: dict[tuple[str, int], list[int]] = {}
    for run_id, level, cell, scopes, packed in found:
        parts = grouped.setdefault((run_id, level, cell), [])
        parts.append((scopes, packed))
        span = spans.get((run_id, level))
        if span is None:
            spans[run_id, level] = [cell, cell]
        elif cell < span[0]:
            span[0] = cell
        elif cell > span[1]:
            span[1] = cell
    rewritten: list[tuple[str, int, int]] = []
    for (run_id, level), (low, high) in spans.items():
        # Usually the one cell the last fold left open, at each level.
        for cell, listed, packed in conn.execute(_STORED_CELLS, (run_id, level, low, high)):
            into = grouped.get((run_id, level, cell))
            if into is None:
                continue
            rewritten.append((run_id, level, cell))
            stored = lists.items(conn, listed)
            # A value that does not fit its list (damaged) gives way to the new one.
            if cell_fits(packed, len(stored)):
                into.insert(0, (stored, packed))
    conn.executemany(
        "DELETE FROM metrics_endpoint_cells WHERE run_id = ? AND level = ? AND cell = ?",
        rewritten,
    )
    merged = {key: combine(parts) for key, parts in grouped.items()}
    texts = {scopes: scopes_text(scopes) for scopes, _ in merged.values()}
    ids = lists.ids(conn, set(texts.values()))
    conn.executemany(
        _PUT_CELL,
        [(*key, ids[texts[scopes]], packed) for key, (scopes, packed) in merged.items()],
    )


def _pack_endpoint_cells(conn: sqlite3.Connection) -> None:
    """Migration 9: the endpoint scopes' cells of metrics_rollups, one packed row a cell."""
    conn.execute(_CREATE_SCOPE_LISTS)
    for statement in _CREATE_ENDPOINT_CELLS:
        conn.execute(statement)
    lists = _scope_lists()
    rows = conn.execute(
        f"SELECT run_id, level, cell, scope, samples, {', '.join(_ROLLUP_COLUMNS)}"  # noqa: S608 - fixed text
        f" FROM metrics_rollups WHERE scope <> '{WHOLE_RUN}' ORDER BY run_id, level, cell, scope"
    )
    packed = []
    for (run_id, level, cell), group in itertools.groupby(rows, key=operator.itemgetter(0, 1, 2)):
        scopes: list[str] = []
        values: list[float | None] = []
        for row in group:
            scopes.append(row[3])
            values += row[4:]
        key = scopes_text(scopes)
        found = lists.ids(conn, [key])
        lists.learn(found)  # this transaction's own, and thrown away with it
        packed.append((run_id, level, cell, found[key], pack_cell(values)))
    conn.executemany(_PUT_CELL, packed)
    conn.execute(f"DELETE FROM metrics_rollups WHERE scope <> '{WHOLE_RUN}'")  # noqa: S608


def _recount_doubled_keys(conn: sqlite3.Connection) -> None:
    """Migration 10: the endpoint cells of runs with two rows one key matches, made again.

    Until schema 10 a fold counted both rows (``("GET", "/a")`` and the
    method-less ``("", "GET /a")``) where the snapshots themselves count the
    first. Only the runs whose snapshots point at such a list are refolded,
    a bounded batch of snapshots at a time; the lists are few, so a file
    without one is left as it is at once.
    """
    lists, scope_lists = _EndpointLists(), _scope_lists()
    doubled = []
    for (list_id,) in conn.execute("SELECT id FROM metrics_endpoint_lists").fetchall():
        scopes = lists.scopes(conn, list_id)
        if len(set(scopes)) < len(scopes):
            doubled.append(int(list_id))
    if not doubled:
        return
    runs = [
        run_id
        for (run_id,) in conn.execute(
            "SELECT DISTINCT run_id FROM metrics_timeseries"  # noqa: S608 - integers
            f" WHERE endpoint_list IN ({', '.join(map(str, doubled))})"
        )
    ]
    for run_id in runs:
        conn.execute("DELETE FROM metrics_endpoint_cells WHERE run_id = ?", (run_id,))
        after = -1
        while True:
            rows = conn.execute(_FOLDED_ROWS_OF_RUN, (run_id, after, _REFOLD_BATCH)).fetchall()
            if not rows:
                break
            after = rows[-1][0]
            rows = [row[1:] for row in rows]
            listed = {row[-2] for row in rows} - {None}
            of_list = {list_id: lists.scopes(conn, list_id) for list_id in listed}
            _, endpoint_cells = cells(rows, of_list)
            if endpoint_cells:
                _store_endpoint_cells(conn, scope_lists, endpoint_cells)


_FOLDED_ROWS_OF_RUN = (
    f"SELECT id, run_id, ts_ms, {', '.join(SERIES_FIELDS)}, endpoint_list, endpoint_figures"  # noqa: S608 - fixed text
    " FROM metrics_timeseries WHERE run_id = ? AND id > ?"
    " AND id <= (SELECT through FROM metrics_folded) ORDER BY id LIMIT ?"
)
_REFOLD_BATCH = 20_000


_MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
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
    # 8: a snapshot's endpoint rows packed into one value beside it, their
    # methods and names kept once per distinct list: a row per endpoint was most
    # of a write's cost in SQLite (issue 18). Folds read the packed figures.
    _pack_endpoints,
    # 9: an endpoint cell holds every endpoint scope of its run, level and
    # time, packed (see _packed.pack_cell), instead of a row per scope: a fold
    # upserted a row per scope and cell, 24-30 a snapshot at 100 endpoints, and
    # a row costs SQLite about 7 us whatever it holds (issue 18).
    # metrics_rollups keeps the whole run's cells.
    _pack_endpoint_cells,
    # 10: a cell may leave its counts out (_packed.COMPACT_WIDTH); a file of
    # older cells is read as it is, and the number keeps an older loadmanager,
    # which would take a compact cell for a damaged one, from opening it. The
    # endpoint cells of runs with two rows one key matches, which folds
    # counted twice until now, are made again from the snapshots.
    _recount_doubled_keys,
)
SCHEMA_VERSION = len(_MIGRATIONS)

FOLD_EVERY = 4096
"""Rows one run may leave unfolded before a write folds, by default: about 370
snapshots of ten endpoint rows, or 40 of a hundred, so a series' tail stays a
few thousand rows."""

_FOLD_ALL = 64
"""Rows of all runs together may reach this many times ``fold_every`` first. A
Monitor writes a snapshot of each of hundreds of runs in turn, and folding
after a few hundred snapshots gave each cell one snapshot per fold: 33 cell
upserts a snapshot, as if nothing were deferred. At 16, 2,000 runs folded
three snapshots of each run at a time (11 cell rows a snapshot); at 64,
twelve (about 5), which took the Monitor from 0.55-0.60 to 0.49-0.55 CPU-s/s
(bench_monitor_fanout.py, N = 2,000). A fold then holds the write lock for
a second or two; the Monitor's writes queue meanwhile, and readers (WAL) go on."""

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
            migration = _MIGRATIONS[number - 1]
            if callable(migration):
                migration(conn)
            else:
                for statement in migration.split(";"):
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
            for table in ("metrics_timeseries", "metrics_rollups", "metrics_endpoint_cells"):
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
    """Snapshots in ``metrics_timeseries``, each with its endpoint rows packed
    beside it (see ``_packed``) and their names in ``metrics_endpoint_lists``.

    The whole run's series are a GROUP BY in SQL: over the snapshots for narrow
    buckets, over the rolled-up cells and the tail not yet folded into them for
    wide ones. One endpoint's unpack its figures in Python, from the snapshots
    or from the cells and the tail.

    Args:
        db: The database.
        fold_every: How many rows this repository stores before a write also
            folds every unfolded snapshot into the series cells (see
            ``_UNFOLDED_ROWS``); a snapshot counts one row, and each of its
            endpoint rows one more. Fewer makes writes dearer; more makes wide
            series read a longer tail.
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
        self._lists = _EndpointLists()
        self._scope_lists = _scope_lists()

    def _tail(self) -> dict[str, int]:
        """Each run's unfolded rows (a snapshot and each of its endpoint rows)."""
        found = self._db.run(
            lambda conn: conn.execute(
                "SELECT m.run_id, COUNT(*) + TOTAL(length(m.endpoint_figures))"  # noqa: S608 - fixed text
                f" / {ROW_BYTES} FROM metrics_timeseries m WHERE {_UNFOLDED} GROUP BY m.run_id"
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
        rows = conn.execute(_UNFOLDED_ROWS).fetchall()
        listed = {row[-2] for row in rows} - {None}
        scopes = {list_id: self._lists.scopes(conn, list_id) for list_id in listed}
        whole, endpoint_cells = cells(rows, scopes)
        conn.executemany(_UPSERT_CELL, whole)
        if endpoint_cells:
            _store_endpoint_cells(conn, self._scope_lists, endpoint_cells)
        conn.execute(_FOLDED_THROUGH_LAST)
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
                _document(s),
                names_key(s.endpoints) if s.endpoints else None,  # the list's id, below
                pack(s.endpoints) if s.endpoints else None,
            )
            for s in items
        ]
        if not rows:
            return 0
        keys = {cast("str", row[_LIST]) for row in rows if row[_LIST] is not None}
        lists = self._lists

        def insert(conn: sqlite3.Connection) -> tuple[int, dict[str, int]]:
            # Ids looked up afresh on every try: a list a rolled-back try
            # inserted may have another id now.
            ids_of = lists.ids(conn, keys)
            get = ids_of.get
            params = [(*row[:_LIST], get(row[_LIST]), row[-1]) for row in rows]  # type: ignore[arg-type]
            try:
                if len(rows) == 1:  # the Monitor's write: one statement fewer
                    cursor = conn.execute(_INSERT_SNAPSHOT_IF_FREE, params[0])
                    kept = [0] if cursor.rowcount == 1 else []
                else:
                    kept = _unslotted_or_free(conn, items)
                    conn.executemany(_INSERT_SNAPSHOT, [params[k] for k in kept])
            except sqlite3.IntegrityError as exc:  # foreign key: a run that is not stored
                known = {r[0] for r in conn.execute("SELECT id FROM load_test_runs")}
                missing = sorted({row[0] for row in rows} - known)
                raise NotFoundError("LoadTestRun", missing[0] if missing else "?") from exc
            if not kept:
                return 0, ids_of
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
            return len(kept), ids_of

        stored, ids_of = self._db.write(insert)
        lists.learn(ids_of)
        return stored

    @checked
    def snapshots(
        self,
        run_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[MetricSnapshot]:
        sql, params = self._range(f"SELECT {', '.join(_SNAPSHOT_COLUMNS)}", run_id, start, end)
        sql += " ORDER BY ts_ms, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        lists = self._lists

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            docs = []
            for *columns, text, listed, blob in conn.execute(sql, params):
                columns[1] = from_millis(columns[1])
                doc = json.loads(text)
                doc.update(zip(_COLUMN_KEYS, columns, strict=True))
                if listed is not None:
                    doc["endpoints"] = _endpoint_rows(lists.names(conn, listed), blob)
                docs.append(doc)
            return docs

        structure = _CONVERTER.structure
        return [structure(doc, MetricSnapshot, subject=_STORED) for doc in self._db.run(read)]

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
            if window.level_ms and endpoint is not None:
                return self._rolled_up_endpoint(conn, run_id, window, endpoint)
            if window.level_ms:
                return self._rolled_up(conn, run_id, window)
            # Bound by the window the first statement saw: a snapshot stored
            # between the two statements must not add a bucket past its end.
            low, high = from_millis(window.start_ms), from_millis(window.end_ms)
            if endpoint is not None:
                return self._endpoint_series(conn, run_id, window, endpoint)
            sql, params = self._range(
                f"SELECT (ts_ms - ?) / ? AS bucket, COUNT(*), {_SERIES_COLUMNS}",
                run_id,
                low,
                high,
            )
            sql += " GROUP BY bucket"
            rows = conn.execute(sql, [window.start_ms, window.width_ms, *params]).fetchall()
            return assemble(window, [(r[0], r[1], r[2:]) for r in rows])

        return self._db.run(query)

    @staticmethod
    def _rolled_up(
        conn: sqlite3.Connection, run_id: str, window: SeriesWindow
    ) -> list[SeriesBucket]:
        rows = conn.execute(
            _ROLLED_UP_SERIES, _cell_params(window) | {"run": run_id, "scope": WHOLE_RUN}
        ).fetchall()
        return assemble(window, [(r[0], r[1], r[2:]) for r in rows])

    def _endpoint_series(
        self, conn: sqlite3.Connection, run_id: str, window: SeriesWindow, endpoint: str
    ) -> list[SeriesBucket]:
        """One endpoint's narrow buckets, from its packed figures."""
        pairs = endpoint_matches(endpoint)
        rows = conn.execute(_ENDPOINT_POINTS, (run_id, window.start_ms, window.end_ms)).fetchall()
        # A snapshot's first row the key matches counts (see _rollups.scoped_figures).
        points = self._endpoint_points(
            conn, rows, lambda names: [i for i, pair in enumerate(names) if pair in pairs][:1]
        )
        return python_series(window, points)

    def _endpoint_points(
        self,
        conn: sqlite3.Connection,
        rows: Iterable[tuple[Any, ...]],
        matching: Callable[[list[tuple[str, str]]], list[int]],
    ) -> Iterator[tuple[int, list[float | None]]]:
        """``(ts_ms, SERIES_FIELDS figures)`` of each row ``matching`` picks out of a snapshot."""
        positions: dict[int, tuple[list[int], int]] = {}
        for ts_ms, users, listed, blob in rows:
            known = positions.get(listed)
            if known is None:
                names = self._lists.names(conn, listed)
                known = positions[listed] = (matching(names), len(names))
            found, size = known
            if not found or len(blob) != ROW_BYTES * size:  # see _folding.cells
                continue
            figures = figures_of([blob], size)
            for position in found:
                base = _FIGURE_WIDTH * position
                yield (
                    ts_ms,
                    [users, *(_present(figures[base + k]) for k in _ENDPOINT_OFFSETS)],
                )

    def _rolled_up_endpoint(
        self, conn: sqlite3.Connection, run_id: str, window: SeriesWindow, endpoint: str
    ) -> list[SeriesBucket]:
        """One endpoint's wide buckets: its cells, and the unfolded tail's rows of it."""
        scope = endpoint_scope(endpoint)
        params = _cell_params(window) | {"run": run_id}
        level, width, start = window.level_ms, window.width_ms, window.start_ms
        in_buckets: list[int] = []
        figures: list[bytes] = []
        conn.execute("BEGIN")  # the cells and the tail as of one moment: a fold
        try:  # committed between them would hide or double snapshots
            found = self._scope_cells(conn, scope, params)
            tail = conn.execute(_TAIL_POINTS, params).fetchall()
            for cell, own in found:
                if own is None:  # damaged: left out
                    continue
                in_buckets.append((cell * level - start) // width)
                figures.append(own)
            buckets = merged_by_bucket(in_buckets, full_cells(figures))
            points = self._endpoint_points(
                conn,
                tail,
                lambda names: [i for i, p in enumerate(names) if row_scope(*p) == scope][:1],
            )
            for ts_ms, values in points:
                bucket = (ts_ms // level * level - start) // width
                into = buckets.get(bucket) or buckets.setdefault(bucket, empty())
                merge(into, 1, [summary([v]) for v in values])
        finally:
            conn.execute("COMMIT")
        return assemble(window, [(b, cell[0], _figures(cell)) for b, cell in buckets.items()])

    def _scope_cells(
        self, conn: sqlite3.Connection, scope: str, params: dict[str, Any]
    ) -> list[tuple[int, bytes | None]]:
        """The window's cells holding ``scope``: ``(cell, its figures)``, in either
        layout (see ``_packed.pack_cell``), ``None`` for a damaged cell.

        SQLite cuts the scope's figures out of each value: a cell of a hundred
        endpoints is 17 KB, and handing each to Python whole took 2.5 times as long.
        """
        places: dict[int, tuple[int, int]] = {}
        for (listed,) in conn.execute(_CELL_LISTS, params):
            stored = self._scope_lists.items(conn, listed)
            if scope in stored:
                places[int(listed)] = (stored.index(scope), len(stored))
        if not places:
            return []
        # Integers the database gave, written into the statement: one CASE arm a list.
        cut = " ".join(
            f"WHEN {listed} THEN CASE length(figures)"
            f" WHEN {CELL_BYTES * size} THEN substr(figures, {1 + CELL_BYTES * at}, {CELL_BYTES})"
            f" WHEN {COMPACT_BYTES * size}"
            f" THEN substr(figures, {1 + COMPACT_BYTES * at}, {COMPACT_BYTES}) END"
            for listed, (at, size) in places.items()
        )
        found: list[tuple[int, bytes | None]] = conn.execute(
            f"SELECT cell, CASE scopes {cut} END FROM metrics_endpoint_cells"  # noqa: S608 - integers
            " WHERE run_id = :run AND level = :level AND cell >= :low AND cell < :high"
            f" AND scopes IN ({', '.join(map(str, places))}) ORDER BY cell",
            params,
        ).fetchall()
        return found

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
_ENDPOINT_KEYS = tuple(camel(c) for c in _ENDPOINT_COLUMNS)
_LEFT_OUT_IF_EMPTY = ("failures", "workers", "histograms")
"""Lists most snapshots have empty (no plugin, no failures yet), which read back
as their defaults when absent."""


_SCALARS = tuple(
    f.name
    for f in attrs.fields(MetricSnapshot)
    if f.name not in (*_COLUMN_FIELDS, "endpoints", *_LEFT_OUT_IF_EMPTY)
)
"""What the document holds besides those lists: the master's state and three
counts, each its JSON value as it is (the state a ``str`` enum)."""
_scalars = operator.attrgetter(*_SCALARS)
_SCALAR_KEYS = tuple(camel(name) for name in _SCALARS)
_lists_of = operator.attrgetter(*_LEFT_OUT_IF_EMPTY)


def _document(snapshot: MetricSnapshot) -> str:
    """The JSON of what the snapshot's columns and endpoint values do not hold."""
    if not any(_lists_of(snapshot)):
        # Most snapshots: the converter's document of four plain values took
        # 2.8 us of a 39 us write at ten endpoints, this 1.6. A test in
        # tests/test_storage_sqlite.py holds it to the converter's.
        return compact_json(dict(zip(_SCALAR_KEYS, _scalars(snapshot), strict=True)))
    doc = _snapshot_doc(snapshot)
    for key in _LEFT_OUT_IF_EMPTY:
        if not doc[key]:
            del doc[key]
    return compact_json(doc)


def _endpoint_rows(
    names: Sequence[tuple[str, str]], blob: bytes
) -> list[EndpointStats] | list[dict[str, Any]]:
    """A snapshot's endpoint rows as read: the models, made straight from the values.

    The values are EndpointStats' fields in its order, already typed, and the
    constructor checks them: going through the converter field by field
    checked each twice and was most of reading a snapshot (48 of 246 us a
    row). A row that fails the checks goes through the converter, whose error
    names the field.
    """
    try:
        rows = unpack(names, blob)
    except ValueError as exc:
        raise ValidationError.single("endpoints", str(exc), subject=_STORED) from None
    try:
        return [EndpointStats(*row) for row in rows]
    except (ValidationError, TypeError):
        return [dict(zip(_ENDPOINT_KEYS, row, strict=True)) for row in rows]


def _present(value: float) -> float | None:
    return None if value != value else value  # NaN: a missing figure


def _figures(cell: Sequence[Any]) -> list[float | None]:
    """``[min, avg, max]`` per series figure of a merged cell (see ``_folding``)."""
    out: list[float | None] = []
    for at in range(1, len(cell), 4):
        n, total, low, high = cell[at : at + 4]
        out += [low, total / n if n else None, high]
    return out


def _cell_params(window: SeriesWindow) -> dict[str, int]:
    level = window.level_ms
    return {
        "level": level,
        "start": window.start_ms,
        "width": window.width_ms,
        "low": window.start_ms // level,
        "high": window.end_ms // level,
    }


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


_ROLLED_UP_SERIES = (
    "SELECT (cell * :level - :start) / :width AS bucket, SUM(samples), "  # noqa: S608 - fixed text
    + ", ".join(
        f"MIN(min_{f}), SUM(sum_{f}) / NULLIF(SUM(n_{f}), 0), MAX(max_{f})" for f in SERIES_FIELDS
    )
    + " FROM (SELECT cell, samples, "
    + ", ".join(f"n_{f}, sum_{f}, min_{f}, max_{f}" for f in SERIES_FIELDS)
    + " FROM metrics_rollups WHERE run_id = :run AND level = :level AND scope = :scope"
    " AND cell >= :low AND cell < :high UNION ALL SELECT m.ts_ms / :level, 1, "
    + ", ".join(f"{v} IS NOT NULL, coalesce({v}, 0.0), {v}, {v}" for v in SERIES_FIELDS)
    # The unary plus keeps the planner on (run, id), the run's short tail,
    # rather than (run, time), which would walk all its snapshots.
    + f" FROM metrics_timeseries m WHERE m.run_id = :run AND {_UNFOLDED}"
    " AND +m.ts_ms >= :low * :level AND +m.ts_ms < :high * :level) GROUP BY bucket"
)
"""The whole run's series of wide buckets: the cells, and the unfolded tail, in
one statement, so a fold committed meanwhile can neither hide nor double a snapshot."""

_CELL_LISTS = (
    "SELECT DISTINCT scopes FROM metrics_endpoint_cells"
    " WHERE run_id = :run AND level = :level AND cell >= :low AND cell < :high"
)
"""The scope lists of a window's packed endpoint cells (see ``_scope_cells``)."""
_STORED_CELLS = (
    "SELECT cell, scopes, figures FROM metrics_endpoint_cells"
    " WHERE run_id = ? AND level = ? AND cell BETWEEN ? AND ?"
)
_PUT_CELL = (
    "INSERT INTO metrics_endpoint_cells (run_id, level, cell, scopes, figures)"
    " VALUES (?, ?, ?, ?, ?)"
)

_POINT_COLUMNS = "m.ts_ms, m.user_count, m.endpoint_list, m.endpoint_figures"
_TAIL_POINTS = (
    f"SELECT {_POINT_COLUMNS} FROM metrics_timeseries m WHERE m.run_id = :run"  # noqa: S608 - fixed text
    f" AND {_UNFOLDED} AND +m.ts_ms >= :low * :level AND +m.ts_ms < :high * :level"
    " AND m.endpoint_list IS NOT NULL"
)
"""The unfolded snapshots of a window, for their endpoint rows (see _ROLLED_UP_SERIES)."""
_ENDPOINT_POINTS = (
    f"SELECT {_POINT_COLUMNS} FROM metrics_timeseries m WHERE m.run_id = ?"  # noqa: S608 - fixed text
    " AND m.ts_ms >= ? AND m.ts_ms < ? AND m.endpoint_list IS NOT NULL"
)


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
