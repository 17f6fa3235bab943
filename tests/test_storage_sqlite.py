"""The contract suite on SQLite, in memory and on a file, plus what only files do."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.repositories import Storage
from loadmanager.repositories.sqlite import SCHEMA_VERSION, SqliteStorage
from loadmanager.testing import make_load_test, make_snapshot, strategies
from loadmanager.testing.contracts import MetricsContract, StorageContract, _brute_series


class TestSqliteInMemory(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        with lm.connect("sqlite://") as storage:
            yield storage


class TestSqliteFile(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        with lm.connect(f"sqlite:///{tmp_path / 'lm.db'}") as storage:
            yield storage


class TestSqliteFoldingEveryFewSnapshots(MetricsContract):
    """The metrics contract with folds inside every batch, not only past 512 snapshots:
    series then read cells, the unfolded tail, or both."""

    @pytest.fixture(params=[1, 3])
    def storage(self, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Storage]:
        with SqliteStorage(str(tmp_path / "lm.db"), fold_every=request.param) as storage:
            yield storage


def test_file_is_in_wal_mode_with_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "lm.db"
    with SqliteStorage(str(path)) as storage:
        assert storage.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "load_test_runs_cluster_lease" in indexes
    conn.close()


def test_reopening_a_file_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lm.db'}"
    test = make_load_test()
    with lm.connect(url) as storage:
        storage.load_tests.add(test)
    with lm.connect(url) as storage:
        assert storage.load_tests.get(test.id) == test


def test_a_newer_schema_is_refused_rather_than_misread(tmp_path: Path) -> None:
    path = tmp_path / "lm.db"
    SqliteStorage(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(lm.RepositoryUnavailableError, match="newer"):
        SqliteStorage(str(path))


def test_closed_storage_is_a_runtime_error(tmp_path: Path) -> None:
    storage = lm.connect(f"sqlite:///{tmp_path / 'lm.db'}")
    storage.close()
    with pytest.raises(RuntimeError):
        storage.load_tests.get("x")


def test_an_unopenable_path_is_repository_unavailable(tmp_path: Path) -> None:
    with pytest.raises(lm.RepositoryUnavailableError):
        lm.connect(f"sqlite:///{tmp_path / 'missing-dir' / 'lm.db'}")


_WRITER = textwrap.dedent(
    """
    import json, sys
    import loadmanager as lm
    from loadmanager.testing import make_load_test, make_run, make_snapshot, make_summary
    from loadmanager.status import RunStatus
    from datetime import datetime, timezone
    with lm.connect(sys.argv[1]) as s:
        t = s.load_tests.add(make_load_test(tags=("a", "ü")))
        r = s.runs.add(make_run(t, status=RunStatus.FINISHED, summary=make_summary()))
        snap = make_snapshot(r.id, datetime(2025, 1, 1, 0, 0, 1, 123000, tzinfo=timezone.utc))
        s.metrics.add(snap)
        print(json.dumps([lm.to_dict(t), lm.to_dict(r), lm.to_dict(snap)]))
    """
)


def test_data_written_by_one_process_reads_back_identically_in_another(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lm.db'}"
    out = subprocess.run(
        [sys.executable, "-c", _WRITER, url], check=True, capture_output=True, text=True
    ).stdout
    test_doc, run_doc, snap_doc = json.loads(out)
    with lm.connect(url) as storage:
        assert lm.to_dict(storage.load_tests.get(test_doc["id"])) == test_doc
        assert lm.to_dict(storage.runs.get(run_doc["id"])) == run_doc
        [snap] = storage.metrics.snapshots(run_doc["id"])
        assert lm.to_dict(snap) == snap_doc


def test_a_version_1_file_is_migrated_forward_keeping_its_data(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from loadmanager.repositories.sqlite import _MIGRATIONS
    from loadmanager.status import RunStatus
    from loadmanager.testing import make_run

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(_MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.close()
    with SqliteStorage(str(path)) as storage:
        assert storage.schema_version == SCHEMA_VERSION >= 2
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.RUNNING))
        now = datetime(2025, 1, 1, tzinfo=timezone.utc)
        assert storage.runs.claim_monitor(run.id, "me", now=now, ttl=timedelta(seconds=5))


def test_runs_and_snapshots_written_before_failures_and_histograms_read_back(
    tmp_path: Path,
) -> None:
    from loadmanager.testing import make_run, make_snapshot

    path = tmp_path / "old.db"
    with lm.connect(f"sqlite:///{path}") as storage:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=lm.RunStatus.FINISHED))
        storage.metrics.add_many([make_snapshot(run.id, run.audit.created_at, slot=0)])
    # What the previous release wrote: documents without the new keys.
    conn = sqlite3.connect(path)
    for table, drop in (
        ("load_test_runs", ("failures", "saturated", "exclusive", "cluster")),
        ("metrics_timeseries", ("failures", "workers", "histograms")),
    ):
        for rowid, doc in conn.execute(f"SELECT rowid, doc FROM {table}").fetchall():
            old = {k: v for k, v in json.loads(doc).items() if k not in drop}
            conn.execute(f"UPDATE {table} SET doc = ? WHERE rowid = ?", (json.dumps(old), rowid))
    conn.commit()
    conn.close()
    with lm.connect(f"sqlite:///{path}") as storage:
        again = storage.runs.get(run.id)
        (snapshot,) = storage.metrics.snapshots(run.id)
    assert (again.failures, again.saturated, again.exclusive, again.cluster) == (
        (),
        False,
        True,
        None,
    )
    assert (snapshot.failures, snapshot.workers, snapshot.histograms) == ((), (), ())


def test_a_long_read_never_holds_up_a_write(tmp_path: Path) -> None:
    """Reads run on their own connection (WAL): a dashboard's slow query in one
    thread does not stop the Monitor storing snapshots in another."""
    import threading
    import time

    from loadmanager.testing import make_run, make_snapshot

    with SqliteStorage(str(tmp_path / "wal.db")) as storage:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test))
        inside, release = threading.Event(), threading.Event()

        def slow_read(conn: sqlite3.Connection) -> int:
            count = conn.execute("SELECT COUNT(*) FROM metrics_timeseries").fetchone()[0]
            inside.set()
            release.wait(10)  # a read transaction that stays open
            return int(count)

        result: list[int] = []
        reader = threading.Thread(target=lambda: result.append(storage._db.run(slow_read)))
        reader.start()
        assert inside.wait(5)
        started = time.monotonic()
        stored = storage.metrics.add(make_snapshot(run.id, run.audit.created_at))
        took = time.monotonic() - started
        release.set()
        reader.join(5)
        assert stored
        assert took < 1.0  # with one shared connection this waited for the reader
        assert result == [0]  # the reader kept its snapshot of before the write
        assert storage.metrics.count(run.id) == 1


def _as_schema_5(path: Path) -> None:
    """Rewrites a file's metrics as schema 5 held them: each snapshot one row, its
    endpoint rows inside its document, and no rollups."""
    with lm.connect(f"sqlite:///{path}") as storage:
        run_ids = [run.id for run in storage.runs.find(lm.RunFilter())]
        held = [s for run_id in run_ids for s in storage.metrics.snapshots(run_id)]
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        DROP TABLE metrics_folded; DROP TABLE metrics_rollups;
        DROP TABLE metrics_endpoint_cells; DROP TABLE metrics_scope_lists;
        DROP TABLE metrics_timeseries; DROP TABLE metrics_endpoint_lists;
        CREATE TABLE metrics_timeseries (
            run_id TEXT NOT NULL REFERENCES load_test_runs (id), ts_ms INTEGER NOT NULL,
            user_count REAL, current_rps REAL, current_fail_per_sec REAL, current_p50 REAL,
            current_p95 REAL, doc TEXT NOT NULL, slot INTEGER
        );
        CREATE INDEX metrics_timeseries_series ON metrics_timeseries (
            run_id, ts_ms, user_count, current_rps, current_fail_per_sec, current_p50, current_p95
        );
        CREATE UNIQUE INDEX metrics_timeseries_slot ON metrics_timeseries (run_id, slot)
            WHERE slot IS NOT NULL;
        PRAGMA user_version = 5;
        """
    )
    conn.executemany(
        "INSERT INTO metrics_timeseries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                s.load_test_run_id,
                round(s.timestamp.timestamp() * 1000),
                s.user_count,
                s.current_rps,
                s.current_fail_per_sec,
                s.current_p50,
                s.current_p95,
                lm.to_json(s),
                s.slot,
            )
            for s in held
        ],
    )
    conn.commit()
    conn.close()


def test_a_schema_5_file_is_rolled_up_and_split_into_endpoint_rows_on_opening(
    tmp_path: Path,
) -> None:
    """Runs stored before rollups and endpoint columns existed read back the same,
    answer wide series from cells built on opening, and take new snapshots."""
    from datetime import datetime, timedelta, timezone

    from loadmanager.metrics import EndpointStats
    from loadmanager.testing import make_run, make_snapshot
    from loadmanager.testing.contracts import assert_same_series

    path = tmp_path / "old.db"
    t0 = datetime(2025, 3, 1, 0, 0, 7, tzinfo=timezone.utc)
    rows = (
        EndpointStats("GET", "/a", 10, 0, 5.0, 0.0, median_response_time=12.0),
        EndpointStats("", "custom", 3, 1, 1.0, 0.5, p95_response_time=40.0),
    )

    def snapshot(i: int) -> lm.MetricSnapshot:
        return make_snapshot(
            run.id,
            t0 + timedelta(seconds=2 * i),
            user_count=i % 50,
            current_p50=None if i % 9 == 0 else float(i % 70),
            endpoints=rows[: i % 3],
            slot=i if i % 4 else None,
        )

    with lm.connect(f"sqlite:///{path}") as storage:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=lm.RunStatus.RUNNING))
        storage.metrics.add_many(snapshot(i) for i in range(3_000))
        asked = [(None, 40), ("GET /a", 12), ("custom", 5), ("POST /none", 7), ("GET /a", 900)]
        expected = {(k, n): storage.metrics.series(run.id, n, endpoint=k) for k, n in asked}
        before = [lm.to_dict(s) for s in storage.metrics.snapshots(run.id)]
    _as_schema_5(path)
    with lm.connect(f"sqlite:///{path}") as storage:
        assert storage.schema_version == SCHEMA_VERSION
        assert [lm.to_dict(s) for s in storage.metrics.snapshots(run.id)] == before
        for key, n in asked:
            got = storage.metrics.series(run.id, n, endpoint=key)
            if n < 100:
                assert all(b.end - b.start >= timedelta(seconds=10) for b in got)
            assert_same_series(got, expected[key, n])
        assert all(expected[pair] for pair in asked[:3])
        assert expected["POST /none", 7] == []
        # Ids go on after the migrated ones, one by one and in batches; a slot
        # the old file holds stays taken.
        assert storage.metrics.add(snapshot(3_000)) == 1
        assert storage.metrics.add_many([snapshot(i) for i in (1, 3_001, 3_002)]) == 2
        added = storage.metrics.snapshots(run.id, start=t0 + timedelta(seconds=6_000))
        assert [s.endpoints for s in added] == [rows[: i % 3] for i in (3_000, 3_001, 3_002)]
        assert storage.metrics.count(run.id) == 3_003


def _as_schema_8(path: Path) -> None:
    """Rewrites a file's endpoint cells as schema 8 held them: a row of
    metrics_rollups per scope and cell."""
    from loadmanager.repositories._packed import CELL_WIDTH, cell_floats, scopes_of

    conn = sqlite3.connect(path)
    lists = {i: scopes_of(text) for i, text in conn.execute("SELECT * FROM metrics_scope_lists")}
    rows = []
    for run_id, level, cell, listed, packed in conn.execute(
        "SELECT run_id, level, cell, scopes, figures FROM metrics_endpoint_cells"
    ):
        values = [None if v != v else v for v in cell_floats(packed, len(lists[listed]))]
        for position, scope in enumerate(lists[listed]):
            own = values[CELL_WIDTH * position : CELL_WIDTH * (position + 1)]
            rows.append((run_id, level, scope, cell, int(own[0]), *own[1:]))
    conn.executemany(f"INSERT INTO metrics_rollups VALUES ({', '.join('?' * 25)})", rows)
    conn.executescript(
        """
        DROP TABLE metrics_endpoint_cells; DROP TABLE metrics_scope_lists;
        PRAGMA user_version = 8;
        """
    )
    conn.commit()
    conn.close()


def _as_schema_7(path: Path, *, folded: bool) -> None:
    """Rewrites a file's metrics as schema 7 held them: an endpoint row per row of
    metrics_endpoints. Not ``folded``: every snapshot in the unfolded tail."""
    from loadmanager.repositories._packed import names_of, unpack
    from loadmanager.repositories.sqlite import _ENDPOINT_COLUMNS

    _as_schema_8(path)
    conn = sqlite3.connect(path)
    lists = {i: names_of(text) for i, text in conn.execute("SELECT * FROM metrics_endpoint_lists")}
    rows = [
        (snapshot_id, position, *row)
        for snapshot_id, listed, blob in conn.execute(
            "SELECT id, endpoint_list, endpoint_figures FROM metrics_timeseries"
            " WHERE endpoint_list IS NOT NULL"
        )
        for position, row in enumerate(unpack(lists[listed], blob))
    ]
    series = "user_count, current_rps, current_fail_per_sec, current_p50, current_p95"
    conn.executescript(
        f"""
        CREATE TABLE metrics_timeseries_7 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES load_test_runs (id), ts_ms INTEGER NOT NULL,
            user_count REAL NOT NULL, current_rps REAL NOT NULL,
            current_fail_per_sec REAL NOT NULL, current_p50 REAL, current_p95 REAL,
            slot INTEGER, doc TEXT NOT NULL
        );
        INSERT INTO metrics_timeseries_7 SELECT id, run_id, ts_ms, {series}, slot, doc
            FROM metrics_timeseries ORDER BY id;
        DROP TABLE metrics_timeseries; DROP TABLE metrics_endpoint_lists;
        ALTER TABLE metrics_timeseries_7 RENAME TO metrics_timeseries;
        CREATE INDEX metrics_timeseries_series ON metrics_timeseries (run_id, ts_ms, {series});
        CREATE UNIQUE INDEX metrics_timeseries_slot ON metrics_timeseries (run_id, slot)
            WHERE slot IS NOT NULL;
        CREATE INDEX metrics_timeseries_unfolded ON metrics_timeseries (run_id, id);
        CREATE TABLE metrics_endpoints (
            snapshot INTEGER NOT NULL, position INTEGER NOT NULL,
            method TEXT NOT NULL, name TEXT NOT NULL, num_requests INTEGER NOT NULL,
            num_failures INTEGER NOT NULL, current_rps REAL NOT NULL,
            current_fail_per_sec REAL NOT NULL, avg_response_time REAL,
            min_response_time REAL, max_response_time REAL, median_response_time REAL,
            p95_response_time REAL, p99_response_time REAL,
            PRIMARY KEY (snapshot, position)
        ) WITHOUT ROWID;
        PRAGMA user_version = 7;
        """
    )
    conn.executemany(
        f"INSERT INTO metrics_endpoints VALUES (?, ?, {', '.join('?' * len(_ENDPOINT_COLUMNS))})",
        rows,
    )
    if not folded:
        conn.execute("DELETE FROM metrics_rollups")
        conn.execute("UPDATE metrics_folded SET through = 0")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("folded", [True, False], ids=["folded", "all-unfolded"])
def test_a_schema_7_file_packs_its_endpoint_rows_on_opening(tmp_path: Path, folded: bool) -> None:
    """Snapshots stored a row per endpoint read back the same once packed, and
    their series are the same, from cells or from a tail that folds later."""
    from loadmanager.metrics import EndpointStats
    from loadmanager.testing import make_run
    from loadmanager.testing.contracts import assert_same_series

    path = tmp_path / "old.db"
    t0 = datetime(2025, 3, 1, 0, 0, 7, tzinfo=timezone.utc)
    rows = (
        EndpointStats("GET", "/a", 10, 0, 5.0, 0.0, median_response_time=12.0),
        EndpointStats("", "custom", 3, 1, 1.0, 0.5, p95_response_time=40.0),
        EndpointStats("", "GET /a", 2**62, 7, 0.25, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0),
    )

    def snapshot(i: int) -> lm.MetricSnapshot:
        return make_snapshot(
            run.id,
            t0 + timedelta(seconds=2 * i),
            user_count=i % 50,
            current_p50=None if i % 9 == 0 else float(i % 70),
            endpoints=rows[i % 2 : i % 4],
            slot=i if i % 4 else None,
        )

    asked = [(None, 40), ("GET /a", 12), ("custom", 5), ("POST /none", 7), ("GET /a", 900)]
    with lm.connect(f"sqlite:///{path}") as storage:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=lm.RunStatus.RUNNING))
        storage.metrics.add_many(snapshot(i) for i in range(2_000))
        before = [lm.to_dict(s) for s in storage.metrics.snapshots(run.id)]
        expected = {(k, n): storage.metrics.series(run.id, n, endpoint=k) for k, n in asked}
    _as_schema_7(path, folded=folded)
    with SqliteStorage(str(path), fold_every=10**9) as storage:
        assert storage.schema_version == SCHEMA_VERSION
        assert [lm.to_dict(s) for s in storage.metrics.snapshots(run.id)] == before
        for key, n in asked:
            assert_same_series(storage.metrics.series(run.id, n, endpoint=key), expected[key, n])
        assert all(expected[pair] for pair in asked[:3])
        tables = storage._db.run(
            lambda conn: {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        )
        assert "metrics_endpoints" not in tables
        assert storage.metrics.add(snapshot(2_000)) == 1
        storage.metrics.fold()
        stored = storage.metrics.snapshots(run.id)
        for key, n in asked:
            got = storage.metrics.series(run.id, n, endpoint=key)
            assert_same_series(got, _brute_series(stored, n, key, None, None))
        assert storage.metrics.count(run.id) == 2_001


_DYING_WRITER = textwrap.dedent(
    """
    import os, sys
    from datetime import datetime, timedelta, timezone
    from loadmanager.repositories.sqlite import SqliteStorage
    from loadmanager.testing import make_snapshot
    s = SqliteStorage(sys.argv[1], fold_every=10)
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for i in range(int(sys.argv[2]), int(sys.argv[3])):
        at = t0 + timedelta(seconds=2 * i)
        s.metrics.add(make_snapshot("r", at, user_count=i, endpoints=()))
    os._exit(0)  # no close: what a killed process leaves
    """
)


def test_snapshots_a_writer_leaves_unfolded_are_folded_by_the_writers_after_it(
    tmp_path: Path,
) -> None:
    """Killed writers, closed writers and readers: the tail never outgrows
    ``fold_every`` for long, and the series is exact at every step."""
    from loadmanager.metrics import EndpointStats
    from loadmanager.testing import make_run
    from loadmanager.testing.contracts import assert_same_series

    path = str(tmp_path / "lm.db")
    with SqliteStorage(path) as storage:
        storage.runs.add(make_run(storage.load_tests.add(make_load_test()), id="r"))

    def tail() -> int:
        with sqlite3.connect(path) as conn:
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM metrics_timeseries"
                " WHERE id > (SELECT through FROM metrics_folded)"
            ).fetchone()
        return int(n)

    def exact() -> None:
        with SqliteStorage(path) as reader:
            stored = reader.metrics.snapshots("r")
            got = reader.metrics.series("r", 4)
        assert sum(b.samples for b in got) == len(stored)
        assert_same_series(got, _brute_series(stored, 4, None, None, None))

    def die_writing(first: int, last: int) -> None:
        subprocess.run(
            [sys.executable, "-c", _DYING_WRITER, path, str(first), str(last)], check=True
        )

    die_writing(0, 4)
    assert tail() == 4
    exact()
    assert tail() == 4  # a reader closing folds nothing
    die_writing(4, 10)
    assert tail() == 0  # the second writer counted the first one's 4 from its start
    die_writing(10, 17)
    with SqliteStorage(path, fold_every=10) as writer:
        writer.metrics.add_many(
            make_snapshot(
                "r", datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(hours=i), endpoints=()
            )
            for i in range(1, 3)
        )
        assert tail() == 9
        exact()
    assert tail() == 0  # closing a storage that wrote folds
    exact()
    with SqliteStorage(path, fold_every=10) as writer:
        rows = tuple(EndpointStats("GET", f"/{n}", 1, 0, 1.0, 0.0) for n in range(9))
        at = datetime(2025, 1, 2, tzinfo=timezone.utc)
        writer.metrics.add(make_snapshot("r", at, endpoints=rows))
        assert tail() == 0  # endpoint rows count: 1 + 9 rows reach fold_every
        exact()


def test_endpoint_columns_are_endpoint_stats_fields_in_order() -> None:
    """A field added to EndpointStats must come with a migration packing it too."""
    import attrs

    from loadmanager.metrics import EndpointStats
    from loadmanager.repositories._packed import COUNTS, FIGURES
    from loadmanager.repositories.sqlite import _ENDPOINT_COLUMNS

    fields = tuple(a.name for a in attrs.fields(EndpointStats))
    assert fields == _ENDPOINT_COLUMNS == ("method", "name", *COUNTS, *FIGURES)


def _corrupt_second_row(storage: SqliteStorage, field: str, bad: float) -> None:
    """Writes ``bad`` over one value of the stored snapshot's second endpoint row,
    as an edit by hand or a bad disk could (the format is _packed's)."""
    import struct

    from loadmanager.repositories._packed import COUNTS, FIGURES

    def edit(conn: sqlite3.Connection) -> None:
        (blob,) = conn.execute("SELECT endpoint_figures FROM metrics_timeseries").fetchone()
        data = bytearray(blob)
        if field in COUNTS:
            struct.pack_into("<q", data, 8 * (2 + COUNTS.index(field)), int(bad))
        else:
            struct.pack_into("<d", data, 8 * (2 * 2 + len(FIGURES) + FIGURES.index(field)), bad)
        conn.execute("UPDATE metrics_timeseries SET endpoint_figures = ?", (bytes(data),))

    storage._db.write(edit)


@pytest.mark.parametrize(
    ("column", "bad", "path"),
    [
        ("num_requests", -5, "endpoints[1].numRequests"),
        ("current_rps", float("nan"), "endpoints[1].currentRps"),
        ("p95_response_time", float("inf"), "endpoints[1].p95ResponseTime"),
        ("num_failures", -1, "endpoints[1].numFailures"),
    ],
)
def test_a_bad_stored_endpoint_row_is_a_validation_error_naming_it(
    column: str, bad: float, path: str
) -> None:
    """Endpoint rows are made straight from their packed values when they are
    sound; one that is not is read through the converter, which names the field
    (a NaN rate reads as a missing one, which a rate may not be)."""
    from loadmanager.status import RunStatus
    from loadmanager.testing import make_run

    with SqliteStorage(":memory:") as storage:
        test = storage.load_tests.add(make_load_test())
        storage.runs.add(make_run(test, id="r", status=RunStatus.FINISHED))
        storage.metrics.add(make_snapshot("r", datetime(2026, 1, 1, tzinfo=timezone.utc)))
        assert [e.name for e in storage.metrics.snapshots("r")[0].endpoints] == [
            "/items",
            "/orders",
        ]
        _corrupt_second_row(storage, column, bad)
        with pytest.raises(lm.ValidationError) as caught:
            storage.metrics.snapshots("r")
    assert [e.path for e in caught.value.errors] == [path], caught.value.errors


@pytest.mark.parametrize("damage", ["cut", "list"])
def test_a_stored_endpoint_blob_that_does_not_fit_its_list_is_a_validation_error(
    damage: str,
) -> None:
    from loadmanager.status import RunStatus
    from loadmanager.testing import make_run

    with SqliteStorage(":memory:") as storage:
        test = storage.load_tests.add(make_load_test())
        storage.runs.add(make_run(test, id="r", status=RunStatus.FINISHED))
        storage.metrics.add(make_snapshot("r", datetime(2026, 1, 1, tzinfo=timezone.utc)))
        change = {
            "cut": "UPDATE metrics_timeseries SET endpoint_figures ="
            " substr(endpoint_figures, 1, length(endpoint_figures) - 8)",
            "list": "UPDATE metrics_timeseries SET endpoint_list = (SELECT id FROM"
            ' metrics_endpoint_lists WHERE names = \'[["GET","/one"]]\')',
        }[damage]

        def edit(conn: sqlite3.Connection) -> None:
            conn.execute(
                """INSERT INTO metrics_endpoint_lists (names) VALUES ('[["GET","/one"]]')"""
            )
            conn.execute(change)

        storage._db.write(edit)
        with pytest.raises(lm.ValidationError) as caught:
            storage.metrics.snapshots("r")
        # Folds and series leave the damaged rows out; writes go on.
        later = datetime(2026, 1, 1, 0, 0, 30, tzinfo=timezone.utc)
        assert storage.metrics.add(make_snapshot("r", later))
        for fold in (False, True):
            if fold:
                storage.metrics.fold()
            for buckets in (1, 500):  # from the cells and the tail; from the snapshots
                (bucket,) = storage.metrics.series("r", buckets, endpoint="GET /items")
                assert bucket.samples == 1
                # The whole run's figures are in columns of their own, unharmed.
                assert sum(b.samples for b in storage.metrics.series("r", buckets)) == 2
    assert caught.value.paths == ("endpoints",)


def test_a_fold_waits_for_one_run_to_reach_fold_every_or_all_runs_a_multiple_of_it(
    tmp_path: Path,
) -> None:
    """Many runs written in turn fold rarely, so each cell gathers several
    snapshots per fold; the tail of all runs together is still bounded."""
    from loadmanager.repositories.sqlite import _FOLD_ALL
    from loadmanager.testing import make_run

    runs, bound = _FOLD_ALL + _FOLD_ALL // 4, _FOLD_ALL * 10
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with SqliteStorage(str(tmp_path / "lm.db"), fold_every=10) as storage:
        test = storage.load_tests.add(make_load_test())
        ids = [
            storage.runs.add(make_run(test, id=f"r{n}", status=lm.RunStatus.FINISHED)).id
            for n in range(runs)
        ]

        def unfolded() -> int:
            return sum(storage.metrics._tail().values())

        def add(run_id: str, i: int) -> None:
            at = t0 + timedelta(seconds=2 * i)
            storage.metrics.add(make_snapshot(run_id, at, endpoints=()))

        for i in range(9):  # 9 rows a run: no run reaches 10, all of them the bound
            for j, run_id in enumerate(ids):
                add(run_id, i)
                written = runs * i + j + 1
                assert unfolded() == (written if written < bound else written - bound)
        for i in range(9, 17):
            add(ids[0], i)
            assert storage.metrics._tail()[ids[0]] == i - 7
        add(ids[0], 17)  # its 10th unfolded row: everything is folded
        assert unfolded() == 0
        assert storage.metrics.count(ids[0]) == 18


def test_a_wide_series_reads_the_unfolded_tail_of_its_run_from_the_run_and_id_index() -> None:
    """Not the run's time index, which would walk every snapshot it holds."""
    from loadmanager.repositories.sqlite import _ROLLED_UP_SERIES, _TAIL_POINTS

    with SqliteStorage(":memory:") as storage:
        for sql in (_ROLLED_UP_SERIES, _TAIL_POINTS):
            plan = storage._db.run(
                lambda conn, sql=sql: [
                    row[3]
                    for row in conn.execute(
                        f"EXPLAIN QUERY PLAN {sql}",
                        dict.fromkeys(("level", "start", "width", "low", "high"), 1)
                        | {"run": "r", "scope": ""},
                    )
                ]
            )
            assert any("metrics_timeseries_unfolded (run_id=? AND id>?)" in step for step in plan)
            assert not any("metrics_timeseries_series" in step for step in plan)


_FIGURE = st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False), st.integers(0, 10**6))


@st.composite
def _unfolded_rows(draw: st.DrawFn) -> tuple[list[tuple[object, ...]], dict[int, list[str]]]:
    """Rows as a fold reads them: several runs, times in any order and shared,
    missing figures, and endpoint lists of different lengths (one naming a
    scope twice, as a row with a method and one without can)."""
    from loadmanager.repositories._packed import pack_rows

    scopes = {1: ["@GET /a"], 2: ["@GET /a", "@b", "@GET /a"], 3: []}
    rows = []
    for _ in range(draw(st.integers(1, 60))):
        listed = draw(st.sampled_from([None, 1, 2]))
        blob = None
        if listed is not None:
            endpoint_rows = [
                (draw(st.integers(0, 99)), 0, *draw(st.lists(_FIGURE, min_size=8, max_size=8)))
                for _ in scopes[listed]
            ]
            # A rate is never missing in a stored row; a response time may be.
            blob = pack_rows(
                [(n, f, r or 0.0, s or 0.0, *rest) for n, f, r, s, *rest in endpoint_rows]
            )
        figures = [draw(st.floats(0, 1e4)) for _ in range(3)] + [draw(_FIGURE) for _ in range(2)]
        rows.append(
            (
                draw(st.sampled_from(["r1", "r2", "r3"])),
                draw(st.integers(0, 2_000_000)),
                *figures,
                listed,
                blob,
            )
        )
    return rows, scopes


def _cells_by_scope(
    rows: list[tuple[object, ...]], scopes: dict[int, list[str]], *, use_numpy: bool
) -> list[tuple[object, ...]]:
    """A fold's cells a row per scope and cell, as metrics_rollups holds the whole
    run's, in key order (the endpoints' merged with ``combine`` and unpacked)."""
    from loadmanager.repositories._folding import cells, combine
    from loadmanager.repositories._packed import CELL_WIDTH, cell_floats

    whole, endpoints = cells(rows, scopes, use_numpy=use_numpy)
    parts: dict[tuple[object, ...], list[tuple[list[str], bytes]]] = {}
    for run_id, level, cell, own, packed in endpoints:
        parts.setdefault((run_id, level, cell), []).append((own, packed))
    found = list(whole)
    for (run_id, level, cell), cell_parts in parts.items():
        named, packed = combine(cell_parts)
        values = [None if v != v else v for v in cell_floats(packed, len(named))]
        for position, scope in enumerate(named):
            own = values[CELL_WIDTH * position : CELL_WIDTH * (position + 1)]
            found.append((run_id, level, scope, cell, own[0], *own[1:]))
    return sorted(found, key=lambda c: c[:4])  # type: ignore[arg-type, return-value]


@settings(max_examples=60, deadline=None)
@given(_unfolded_rows())
def test_numpy_and_python_folds_give_the_same_cells(
    drawn: tuple[list[tuple[object, ...]], dict[int, list[str]]],
) -> None:
    """The ``fast`` extra's fold (numpy) and the core's (Python) agree cell for
    cell; the contract suite holds either to the brute-force series."""
    import math

    rows, scopes = drawn
    by_python = _cells_by_scope(rows, scopes, use_numpy=False)
    by_numpy = _cells_by_scope(rows, scopes, use_numpy=True)
    assert [c[:5] for c in by_python] == [c[:5] for c in by_numpy]
    for python_cell, numpy_cell in zip(by_python, by_numpy, strict=True):
        for at, (a, b) in enumerate(zip(python_cell[5:], numpy_cell[5:], strict=True)):
            if at % 4 == 1:  # a sum: the order of the additions may differ
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (python_cell, numpy_cell)
            else:  # counts, minima and maxima are exact
                assert a == b, (at, python_cell, numpy_cell)


def test_a_write_retried_after_a_lock_error_points_at_the_list_its_retry_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A try that rolls back loses the endpoint list it inserted; the retry's
    list may get another id, and the snapshots must point at that one."""
    from loadmanager.repositories import sqlite as backend
    from loadmanager.testing import make_run

    real_ids, real_free = backend._EndpointLists.ids, backend._unslotted_or_free
    tries: list[dict[str, int]] = []

    def ids(
        self: backend._EndpointLists, conn: sqlite3.Connection, keys: set[str]
    ) -> dict[str, int]:
        if not tries:  # another list takes the first id, in the try that rolls back
            conn.execute("""INSERT INTO metrics_endpoint_lists (names) VALUES ('[["X","y"]]')""")
        tries.append(real_ids(self, conn, keys))
        return tries[-1]

    def free(conn: sqlite3.Connection, items: list[lm.MetricSnapshot]) -> list[int]:
        if len(tries) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real_free(conn, items)

    with SqliteStorage(str(tmp_path / "lm.db")) as storage:
        test = storage.load_tests.add(make_load_test())
        storage.runs.add(make_run(test, id="r", status=lm.RunStatus.FINISHED))
        monkeypatch.setattr(backend._EndpointLists, "ids", ids)
        monkeypatch.setattr(backend, "_unslotted_or_free", free)
        at = datetime(2026, 1, 1, tzinfo=timezone.utc)
        written = make_snapshot("r", at)
        assert storage.metrics.add_many([written, make_snapshot("r", at, slot=1)]) == 2
        assert [list(t.values()) for t in tries] == [[2], [1]]  # the ids did differ
        assert [s.endpoints for s in storage.metrics.snapshots("r")] == [written.endpoints] * 2


def test_a_schema_8_file_packs_its_endpoint_cells_on_opening(tmp_path: Path) -> None:
    """Cells stored a row per endpoint scope read back as the same series once
    packed a row per cell, and later folds merge into the packed ones."""
    from loadmanager.metrics import EndpointStats
    from loadmanager.testing import make_run
    from loadmanager.testing.contracts import assert_same_series

    path = tmp_path / "old.db"
    t0 = datetime(2025, 3, 1, 0, 0, 7, tzinfo=timezone.utc)
    rows = (
        EndpointStats("GET", "/a", 10, 0, 5.0, 0.0, median_response_time=12.0),
        EndpointStats("", "custom", 3, 1, 1.0, 0.5, p95_response_time=40.0),
        EndpointStats("", "GET /a", 7, 7, 0.25, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0),
    )

    def snapshot(i: int) -> lm.MetricSnapshot:
        return make_snapshot(
            run.id, t0 + timedelta(seconds=2 * i), user_count=i % 50, endpoints=rows[i % 2 : i % 4]
        )

    asked = [(None, 40), ("GET /a", 12), ("custom", 5), ("GET /a", 900), ("POST /none", 7)]
    with SqliteStorage(str(path), fold_every=50) as storage:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=lm.RunStatus.RUNNING))
        storage.metrics.add_many(snapshot(i) for i in range(1_000))
        expected = {(k, n): storage.metrics.series(run.id, n, endpoint=k) for k, n in asked}

    def table_rows(conn: sqlite3.Connection) -> tuple[int, int]:
        (scoped,) = conn.execute(
            "SELECT COUNT(*) FROM metrics_rollups WHERE scope <> ''"
        ).fetchone()
        (packed,) = conn.execute("SELECT COUNT(*) FROM metrics_endpoint_cells").fetchone()
        return scoped, packed

    _as_schema_8(path)
    with SqliteStorage(str(path), fold_every=10**9) as storage:
        assert storage.schema_version == SCHEMA_VERSION
        scoped, packed = storage._db.run(table_rows)
        assert (scoped, packed > 0) == (0, True)
        for key, n in asked:
            assert_same_series(storage.metrics.series(run.id, n, endpoint=key), expected[key, n])
        assert all(expected[pair] for pair in asked[:4])
        # Snapshots with endpoint rows in the last cell of the coarser levels,
        # merged into the packed cells.
        assert storage.metrics.add_many([snapshot(1_002), snapshot(1_003)]) == 2
        storage.metrics.fold()
        stored = storage.metrics.snapshots(run.id)
        for key, n in asked:
            got = storage.metrics.series(run.id, n, endpoint=key)
            assert_same_series(got, _brute_series(stored, n, key, None, None))


def test_a_damaged_endpoint_cell_is_left_out_of_series_and_replaced_by_the_next_fold() -> None:
    from loadmanager.status import RunStatus
    from loadmanager.testing import make_run

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with SqliteStorage(":memory:", fold_every=10**9) as storage:
        test = storage.load_tests.add(make_load_test())
        storage.runs.add(make_run(test, id="r", status=RunStatus.RUNNING))
        # One bucket 60 s wide: a series of the cells, not of the snapshots.
        storage.metrics.add_many(make_snapshot("r", t0 + timedelta(seconds=s)) for s in (0, 2, 60))
        storage.metrics.fold()
        storage._db.write(
            lambda conn: conn.execute(
                "UPDATE metrics_endpoint_cells SET figures = substr(figures, 9)"
            )
        )
        assert storage.metrics.series("r", 1, endpoint="GET /items") == []
        assert [b.samples for b in storage.metrics.series("r", 1)] == [3]  # whole run: unharmed
        storage.metrics.add(make_snapshot("r", t0 + timedelta(seconds=4)))
        storage.metrics.fold()
        (bucket,) = storage.metrics.series("r", 1, endpoint="GET /items")
        # The cells of 0 and 2 s are lost, not misread; the one of 60 s stays damaged.
        assert bucket.samples == 1


def _scope_cell(draw: st.DrawFn, samples: int, gaps: bool) -> list[float | None]:
    """One scope's figures in a cell, ``empty``'s layout; with ``gaps``, some
    figures with no values (NaN extremes), whose count is not the sample count."""
    values: list[float | None] = [samples]
    for _ in range(5):
        n = draw(st.sampled_from([0, samples])) if gaps else samples
        low, high = sorted(draw(st.lists(st.floats(0, 1e6), min_size=2, max_size=2)))
        values += [n, (low + high) * n / 2, low, high] if n else [0, 0.0, None, None]
    return values


@st.composite
def _packed_cells(draw: st.DrawFn) -> tuple[list[int], list[bytes]]:
    """One scope's cells as a window reads them: bucket numbers in order, and
    the scope's packed figures of each (of either layout)."""
    from loadmanager.repositories._packed import pack_cell

    buckets = sorted(draw(st.lists(st.integers(0, 20), min_size=0, max_size=40)))
    return buckets, [
        pack_cell(_scope_cell(draw, draw(st.integers(1, 300)), draw(st.booleans())))
        for _ in buckets
    ]


@settings(max_examples=80, deadline=None)
@given(st.data(), st.integers(0, 12), st.booleans())
def test_a_packed_cell_reads_back_as_written_compact_when_every_count_is_its_samples(
    data: st.DataObject, scopes: int, gaps: bool
) -> None:
    from loadmanager.repositories._packed import (
        CELL_BYTES,
        COMPACT_BYTES,
        cell_fits,
        cell_floats,
        full_cells,
        pack_cell,
    )

    draw = data.draw
    cells = [_scope_cell(draw, draw(st.integers(1, 2**40)), gaps) for _ in range(scopes)]
    values = [v for cell in cells for v in cell]
    packed = pack_cell(values)
    compact = all(n == cell[0] for cell in cells for n in cell[1::4])
    assert len(packed) == (COMPACT_BYTES if compact else CELL_BYTES) * scopes
    assert cell_fits(packed, scopes)
    assert not cell_fits(packed + b"\0" * 8, scopes)
    got = [None if v != v else v for v in cell_floats(packed, scopes)]
    assert got == values
    # One scope's pieces of several cells, each of its own layout, end to end.
    pieces = [pack_cell(cell) for cell in cells]
    expanded = [None if v != v else v for piece in pieces for v in cell_floats(piece, 1)]
    assert [None if v != v else v for v in cell_floats(full_cells(pieces), scopes)] == expanded
    if scopes:
        with pytest.raises(ValueError, match="does not hold"):
            cell_floats(packed, scopes + 1)


@settings(max_examples=80, deadline=None)
@given(_packed_cells())
def test_cells_merged_per_bucket_are_each_bucket_s_cells_merged_one_by_one(
    drawn: tuple[list[int], list[bytes]],
) -> None:
    """numpy's and Python's merge of a window's packed cells both equal ``merge``
    applied cell by cell."""
    import math

    from loadmanager.repositories._folding import empty, merge, merged_by_bucket
    from loadmanager.repositories._packed import CELL_WIDTH, cell_floats, full_cells

    buckets, pieces = drawn
    expected: dict[int, list[object]] = {}
    for bucket, piece in zip(buckets, pieces, strict=True):
        own = cell_floats(piece, 1).tolist()
        figures = [
            (int(own[at]), own[at + 1], own[at + 2], own[at + 3]) for at in range(1, CELL_WIDTH, 4)
        ]
        merge(expected.setdefault(bucket, empty()), int(own[0]), figures)
    for use_numpy in (False, True):
        got = merged_by_bucket(buckets, full_cells(pieces), use_numpy=use_numpy)
        assert got.keys() == expected.keys()
        for bucket, cell in got.items():
            for at, (a, b) in enumerate(zip(cell, expected[bucket], strict=True)):
                if at % 4 == 2:  # a sum: numpy may add in another order
                    assert math.isclose(a, b, rel_tol=1e-12), (use_numpy, bucket, at)  # type: ignore[arg-type]
                else:
                    assert a == b, (use_numpy, bucket, at, a, b)
                    assert type(a) is type(b), (use_numpy, bucket, at, a, b)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["@GET /a", "@b", "@c"]), min_size=0, max_size=4),
        min_size=1,
        max_size=4,
    ),
    st.randoms(use_true_random=False),
)
def test_combined_packed_cells_hold_each_scope_once_with_its_parts_merged(
    scope_lists: list[list[str]], rnd: object
) -> None:
    """``combine`` (a fold's cells of several endpoint lists, a scope named twice,
    a cell already stored) against ``merge`` scope by scope."""
    import math
    import random

    from loadmanager.repositories._folding import combine, empty, merge
    from loadmanager.repositories._packed import CELL_WIDTH, cell_floats, pack_cell

    assert isinstance(rnd, random.Random)
    parts = []
    expected: dict[str, list[object]] = {}
    for scopes in scope_lists:
        values: list[float | None] = []
        for scope in scopes:
            samples = rnd.randint(1, 9)
            figures = []
            for _ in range(5):
                n = rnd.choice([0, samples])
                low, high = sorted([rnd.uniform(0, 100), rnd.uniform(0, 100)])
                figures.append((n, n * low, low, high) if n else (0, 0.0, None, None))
            values += [samples, *(v for f in figures for v in f)]
            merge(expected.setdefault(scope, empty()), samples, figures)
        parts.append((scopes, pack_cell(values)))
    named, packed = combine(parts)
    assert list(named) == list(expected)  # each once, in the order first seen
    floats = [None if v != v else v for v in cell_floats(packed, len(named))]
    for position, scope in enumerate(named):
        own = floats[CELL_WIDTH * position : CELL_WIDTH * (position + 1)]
        for at, (a, b) in enumerate(zip(own, expected[scope], strict=True)):
            if at % 4 == 2:
                assert math.isclose(a, b, rel_tol=1e-12)  # type: ignore[arg-type]
            else:
                assert a == b, (scope, at, a, b)


def _many_endpoints(i: int) -> tuple[lm.EndpointStats, ...]:
    """Rows of up to 23 endpoints (several scopes of a packed cell), the list
    changing from snapshot to snapshot: some come and go, and ``GET /e05`` is
    sometimes also a row without a method (the same key: the first counts).
    Two stretches of three have a median, so their cells are compact, the
    third's not: a window holds both layouts."""
    from loadmanager.metrics import EndpointStats

    names = [f"/e{k:02d}" for k in range(23) if k < 20 or (i // 7) % 2]
    median = 0.5 + i % 7 if (i // 30) % 3 else None
    rows = [
        EndpointStats(
            "GET",
            name,
            10 * i + k,
            i % 3,
            1.0 + k,
            0.1 * (i % 2),
            median_response_time=median,
            p95_response_time=k + i % 5,
        )
        for k, name in enumerate(names)
        if (i + k) % 9
    ]
    if i % 4:
        return tuple(rows)
    return (*rows, EndpointStats("", "GET /e05", 1, 0, 0.5, 0.0))


@pytest.mark.parametrize("fold_every", [40, 10**9])
def test_series_of_many_endpoints_equal_the_snapshots_through_folds_and_migration(
    tmp_path: Path, fold_every: int
) -> None:
    """Cells of up to 24 scopes whose lists change from snapshot to snapshot:
    series of each endpoint equal the brute-force ones, through folds merging
    into stored cells and a migration from schema 8."""
    from loadmanager.testing import make_run
    from loadmanager.testing.contracts import assert_same_series

    path = tmp_path / "many.db"
    t0 = datetime(2025, 3, 1, 0, 0, 3, tzinfo=timezone.utc)
    keys = ["GET /e00", "GET /e05", "GET /e11", "GET /e19", "GET /e22", "GET /none"]

    def snapshot(i: int) -> lm.MetricSnapshot:
        at = t0 + timedelta(seconds=2 * i)
        return make_snapshot(run_id, at, user_count=i % 40, endpoints=_many_endpoints(i))

    def check(storage: SqliteStorage) -> None:
        stored = storage.metrics.snapshots(run_id)
        for key in keys:
            for n in (3, 40, 400):
                got = storage.metrics.series(run_id, n, endpoint=key)
                assert_same_series(got, _brute_series(stored, n, key, None, None))

    with SqliteStorage(str(path), fold_every=fold_every) as storage:
        test = storage.load_tests.add(make_load_test())
        run_id = storage.runs.add(make_run(test, status=lm.RunStatus.RUNNING)).id
        for start in range(0, 600, 50):  # batches: folds meet cells stored before
            storage.metrics.add_many(snapshot(i) for i in range(start, start + 50))
        storage.metrics.fold()
        check(storage)
    _as_schema_8(path)
    with SqliteStorage(str(path), fold_every=fold_every) as storage:
        check(storage)
        # Folded into the migrated cells: one in the middle of the run (stored
        # late, beside the snapshot of its moment), one after its end.
        assert storage.metrics.add_many([snapshot(451), snapshot(600)]) == 2
        storage.metrics.fold()
        check(storage)


def test_migration_10_makes_again_the_endpoint_cells_of_runs_with_two_rows_one_key_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folds before schema 10 counted both rows of one key (``("GET", "/a")``
    and ``("", "GET /a")``). Opening such a file refolds the endpoint cells of
    the runs whose snapshots hold both, from the snapshots, a batch at a time;
    other runs' cells are not touched (planted wrong here, they stay wrong)."""
    from loadmanager.metrics import EndpointStats
    from loadmanager.repositories import sqlite as sqlite_module
    from loadmanager.repositories._packed import cell_floats, pack_cell, scopes_of
    from loadmanager.testing import make_run
    from loadmanager.testing.contracts import assert_same_series

    path = tmp_path / "old.db"
    t0 = datetime(2025, 5, 1, tzinfo=timezone.utc)
    keys = ["GET /a", "GET /b"]

    def snapshot(run_id: str, i: int, twice: bool) -> lm.MetricSnapshot:
        rows = [
            EndpointStats("GET", "/a", 10 * i, 0, 1.0 + i % 7, 0.0, median_response_time=i % 3),
            EndpointStats("GET", "/b", 5 * i, 1, 2.0, 0.5, median_response_time=9.0),
        ]
        if twice:
            rows.insert(1, EndpointStats("", "GET /a", 3 * i, 0, 100.0 + i, 0.0))
        return make_snapshot(run_id, t0 + timedelta(seconds=2 * i), endpoints=tuple(rows))

    def planted(storage: SqliteStorage) -> None:
        """Every endpoint cell's figures doubled: as wrong as a double count, and still whole."""

        def write(conn: sqlite3.Connection) -> None:
            lists = dict(conn.execute("SELECT id, scopes FROM metrics_scope_lists"))
            for rowid, listed, packed in conn.execute(
                "SELECT rowid, scopes, figures FROM metrics_endpoint_cells"
            ).fetchall():
                values = [2 * v for v in cell_floats(packed, len(scopes_of(lists[listed])))]
                conn.execute(
                    "UPDATE metrics_endpoint_cells SET figures = ? WHERE rowid = ?",
                    (pack_cell([None if v != v else v for v in values]), rowid),
                )

        storage._db.write(write)

    def same(storage: SqliteStorage, run_id: str) -> bool:
        stored = storage.metrics.snapshots(run_id)
        for key in keys:
            for n in (1, 4):
                try:
                    assert_same_series(
                        storage.metrics.series(run_id, n, endpoint=key),
                        _brute_series(stored, n, key, None, None),
                    )
                except AssertionError:
                    return False
        return True

    def cells_of(run_id: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(path) as conn:
            return conn.execute(
                "SELECT level, cell, figures FROM metrics_endpoint_cells WHERE run_id = ?"
                " ORDER BY level, cell",
                (run_id,),
            ).fetchall()

    with SqliteStorage(str(path)) as storage:
        for run_id in ("twice", "once"):
            test = storage.load_tests.add(make_load_test(locust_cluster_id=run_id))
            storage.runs.add(make_run(test, id=run_id, status=lm.RunStatus.RUNNING))
            twice = run_id == "twice"
            storage.metrics.add_many(snapshot(run_id, i, twice) for i in range(300))
        storage.metrics.fold()
        assert same(storage, "twice")
        assert same(storage, "once")
        planted(storage)
        assert not same(storage, "twice")
        assert not same(storage, "once")
        # Two snapshots left unfolded, as by a writer that died before it
        # folded: the migration refolds only what was folded.
        storage.metrics._fold_every = 10**9
        storage.metrics.add_many([snapshot("twice", 300, True), snapshot("twice", 301, True)])
        storage.metrics._wrote = False  # no fold on closing
    with sqlite3.connect(path) as conn:
        assert conn.execute(
            "SELECT COUNT(*) FROM metrics_timeseries"
            " WHERE id > (SELECT through FROM metrics_folded)"
        ).fetchone() == (2,)
        conn.execute("PRAGMA user_version = 9")
    planted_once = cells_of("once")

    monkeypatch.setattr(sqlite_module, "_REFOLD_BATCH", 7)  # batches meet cells stored before
    with SqliteStorage(str(path), fold_every=10**9) as storage:
        assert storage.schema_version == SCHEMA_VERSION
        assert same(storage, "twice")
        assert not same(storage, "once")
        storage.metrics.fold()
        assert same(storage, "twice")
    assert cells_of("once") == planted_once


@given(
    strategies.metric_snapshots(),
    st.lists(
        st.builds(
            lm.Failure, st.sampled_from(["GET", ""]), st.text(max_size=5), st.text(max_size=5),
            st.integers(0, 10**6),
        ),
        max_size=2,
    ),
)  # fmt: skip
def test_a_snapshot_document_is_the_converters_without_its_empty_lists(
    snapshot: lm.MetricSnapshot, failures: list[lm.Failure]
) -> None:
    """The document a write makes by hand for most snapshots (no failures,
    workers or histograms) is the one the converter makes, empty lists left
    out: a field added to MetricSnapshot cannot go unwritten."""
    import attrs

    from loadmanager.repositories.sqlite import _LEFT_OUT_IF_EMPTY, _document, _snapshot_doc

    snapshot = attrs.evolve(snapshot, failures=tuple(failures))
    expected = {
        key: value
        for key, value in _snapshot_doc(snapshot).items()
        if value or key not in _LEFT_OUT_IF_EMPTY
    }
    assert json.loads(_document(snapshot)) == expected
