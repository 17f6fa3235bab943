"""The contract suite on MongoDB over a real socket, plus migration and injection."""

from __future__ import annotations

import os
import string
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pymongo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.repositories import Storage
from loadmanager.repositories.mongo import MongoStorage, migrate
from loadmanager.testing import make_load_test, make_run, make_snapshot
from loadmanager.testing.contracts import StorageContract
from loadmanager.testing.strategies import json_values

_T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
_HOUR = timedelta(hours=1)


class TestMongoStorage(StorageContract):
    # The nx-27017 stand-in applies $min and $max in SQL through json_set,
    # which writes a double with 15 significant digits: a rolled-up minimum
    # or maximum can lose its last bits there. A real server keeps them exact,
    # and so does this suite when MONGODB_URI names one.
    extremes_rel_tol = 0.0 if os.environ.get("MONGODB_URI") else 1e-14

    @pytest.fixture
    def storage(self, mongo_url: str) -> Iterator[Storage]:
        with lm.connect(mongo_url) as storage:
            yield storage


def test_migrate_creates_the_layout_then_changes_nothing(mongo_url: str) -> None:
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url)
    db = client.get_default_database()
    try:
        first = migrate(db)
        assert first.dropped == ()
        assert set(first.created_collections) == {
            "load_tests",
            "load_test_runs",
            "metrics_timeseries",
            "metrics_slots",
            "run_monitors",
            "locustfiles",
            "metrics_rollups",
        }
        assert first.changed
        assert {"load_tests", "load_test_runs", "metrics_timeseries"} <= set(first.collections)
        assert all(len(first.indexes[c]) >= 2 for c in first.indexes)
        second = migrate(db)
        assert not second.changed
        assert second.indexes == first.indexes
        assert "nothing to migrate" in str(second)
    finally:
        client.close()


def test_connecting_never_drops_legacy_data(mongo_url: str) -> None:
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url)
    db = client.get_default_database()
    db["test_runs"].insert_many([{"legacy": n} for n in range(3)])
    try:
        with lm.connect(mongo_url) as storage:
            assert isinstance(storage, MongoStorage)
            assert storage.opening_report is not None
            assert storage.opening_report.legacy == {"test_runs": 3}
            assert storage.opening_report.dropped == ()
            assert "3 documents" in str(storage.opening_report)
        assert db["test_runs"].count_documents({}) == 3
        with pytest.raises(lm.ConflictError, match="force=True"):
            migrate(db, drop_legacy=True)
        assert db["test_runs"].count_documents({}) == 3  # refused: nothing dropped
        report = migrate(db, drop_legacy=True, force=True)
        assert report.dropped == ("test_runs",)
        assert report.legacy == {"test_runs": 3}
        assert "test_runs" not in db.list_collection_names()
        db.create_collection("test_runs")  # an empty one goes without force
        assert migrate(db, drop_legacy=True).dropped == ("test_runs",)
    finally:
        client.close()


def test_connect_migrates_and_reports(mongo_url: str) -> None:
    with lm.connect(mongo_url) as storage:
        assert isinstance(storage, MongoStorage)
        report = storage.migrate()
        assert not report.changed
        assert any("lease" in name for name in report.indexes["load_test_runs"])


def test_datetimes_round_trip_tz_aware_utc(mongo_url: str) -> None:
    with lm.connect(mongo_url) as storage:
        test = storage.load_tests.add(make_load_test())
        got = storage.load_tests.get(test.id)
        assert got.audit.created_at.utcoffset() is not None
        assert got == test


def test_an_unreachable_server_is_repository_unavailable() -> None:
    from mongo_server import free_port

    with pytest.raises(lm.RepositoryUnavailableError):
        MongoStorage(f"mongodb://127.0.0.1:{free_port()}/x", server_selection_timeout_ms=300)


def test_the_password_never_shows_in_the_url() -> None:
    storage = MongoStorage("mongodb://user:secret@127.0.0.1:1/x", migrate_on_open=False)
    try:
        assert "secret" not in storage.url
        assert "secret" not in repr(storage)
    finally:
        storage.close()


_HOSTILE = (
    st.sampled_from(
        [{"$ne": None}, {"$gt": ""}, ".*", "^", "$where", {"$regex": ".*"}, "a|b", "\\", "t", "alp"]
    )
    | st.lists(st.sampled_from(["t", "u", ".*", "$ne"]), max_size=3)
    | json_values(6)
)
_STORED = [
    make_load_test(id="x1", name="alpha", tags=("t",), at=_T0),
    make_load_test(id="x2", name="beta.*", tags=("t", "u"), at=_T0),
]


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(["tenant_id", "env_id", "name_contains", "created_by", "tags"]),
    value=_HOSTILE,
)
def test_caller_values_never_widen_a_filter(mongo_url: str, field: str, value: Any) -> None:
    """MongoDB answers exactly what the reference backend answers, for any value."""
    with lm.connect(mongo_url) as mongo, lm.connect("memory://") as reference:
        for test in _STORED:
            reference.load_tests.add(test)
            if not mongo.load_tests.find(lm.LoadTestFilter(name_contains=test.name)):
                mongo.load_tests.add(test)
        try:
            wanted = lm.LoadTestFilter(**{field: value})
        except lm.ValidationError:
            return  # refused as input, before any query
        expected = [t.id for t in reference.load_tests.find(wanted)]
        assert [t.id for t in mongo.load_tests.find(wanted)] == expected


def test_hostile_alphabet_is_literal_in_name_search(mongo_url: str) -> None:
    with lm.connect(mongo_url) as storage:
        weird = storage.load_tests.add(make_load_test(name=string.punctuation))
        storage.load_tests.add(make_load_test(name="plain"))
        for i in range(len(string.punctuation) - 1):
            needle = string.punctuation[i : i + 2]
            assert storage.load_tests.find(lm.LoadTestFilter(name_contains=needle)) == [weird]


class _FailingInsert:
    """The metrics collection, whose next ``insert_many`` fails (fault injection).

    ``then_stored`` makes the failed call store the documents before it fails,
    as a write whose answer was lost on the way back does.
    """

    def __init__(self, col: Any, *, then_stored: bool) -> None:
        self._col, self._then_stored, self.failures = col, then_stored, 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._col, name)

    def insert_many(self, docs: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            if self._then_stored:
                self._col.insert_many(docs, **kwargs)
            raise pymongo.errors.AutoReconnect("connection closed (injected)")
        return self._col.insert_many(docs, **kwargs)


@pytest.mark.parametrize("then_stored", [False, True], ids=["lost", "answer-lost"])
def test_a_retry_after_a_failed_write_stores_its_snapshot_once(
    mongo_url: str, then_stored: bool
) -> None:
    # The storage fails after the slot was taken: the retry (the lifecycle
    # holds the snapshot and writes it again) must neither lose it nor store it twice.
    with lm.connect(mongo_url) as storage:
        assert isinstance(storage, MongoStorage)
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=lm.RunStatus.RUNNING))
        snapshot = make_snapshot(run.id, _T0, slot=6)
        metrics = storage.metrics
        metrics._col = _FailingInsert(metrics._col, then_stored=then_stored)  # type: ignore[attr-defined]
        with pytest.raises(lm.RepositoryUnavailableError):
            metrics.add_many([snapshot])
        metrics.add_many([snapshot])
        assert [s.slot for s in metrics.snapshots(run.id)] == [6]
        # Its series cells count it once, whichever try stored it (checked
        # before another open, whose repair would build them anyway).
        [bucket] = metrics.series(run.id, 1, start=_T0 - _HOUR, end=_T0 + _HOUR)
        assert bucket.samples == 1
        # Another writer's snapshot for the same slot is still refused.
        with lm.connect(mongo_url) as other:
            assert other.metrics.add_many([make_snapshot(run.id, _T0, slot=6)]) == 0
        assert len(metrics.snapshots(run.id)) == 1


def _rolled_up_snapshots(
    storage: MongoStorage, count: int, status: lm.RunStatus = lm.RunStatus.RUNNING
) -> tuple[str, list[lm.MetricSnapshot]]:
    test = storage.load_tests.add(make_load_test())
    run = storage.runs.add(make_run(test, status=status))
    snaps = [
        make_snapshot(
            run.id,
            _T0 + timedelta(seconds=2 * i),
            slot=i,
            user_count=i % 7,
            current_rps=float(i % 11),
            endpoints=(lm.EndpointStats("GET", "/a", i, 0, float(i % 3), 0.0, float(i)),),
        )
        for i in range(count)
    ]
    storage.metrics.add_many(snaps)
    return run.id, snaps


def _series_figures(storage: MongoStorage, run_id: str) -> list[tuple[Any, ...]]:
    # 2 h in 12 buckets: 10-minute buckets, read from the rollups.
    return [
        (b.start, b.samples, b.current_rps.min, b.current_rps.max, b.current_p95.max)
        for endpoint in (None, "GET /a")
        for b in storage.metrics.series(
            run_id, 12, endpoint=endpoint, start=_T0 - _HOUR, end=_T0 + _HOUR
        )
    ]


def test_cells_a_writer_left_behind_are_built_once_by_the_next_open(mongo_url: str) -> None:
    # A writer stopped between storing snapshots and updating their cells:
    # simulated by undoing their cells and putting back the slots' marks.
    with lm.connect(mongo_url) as storage:
        assert isinstance(storage, MongoStorage)
        run_id, _ = _rolled_up_snapshots(storage, 400)
        expected = _series_figures(storage, run_id)
        assert sum(samples for _, samples, *_ in expected) == 800  # whole run, then /a
        storage.db["metrics_rollups"].delete_many({"loadTestRunId": run_id})
        storage.db["metrics_slots"].update_many(
            {"loadTestRunId": run_id}, {"$set": {"rolled": False}}
        )
        assert _series_figures(storage, run_id) == []
    with lm.connect(mongo_url) as again:
        assert isinstance(again, MongoStorage)
        assert again.opening_report is not None
        assert again.opening_report.rolled_up == 400  # _T0 is long past the repair delay
        assert "series cells built for 400" in str(again.opening_report)
        assert _series_figures(again, run_id) == expected
        assert not again.migrate().changed  # nothing left to repair, nothing counted twice
        assert _series_figures(again, run_id) == expected
        # The writer updated the cells and stopped before marking its slots:
        # the repair applies them again, and the cells count each once.
        again.db["metrics_slots"].update_many(
            {"loadTestRunId": run_id}, {"$set": {"rolled": False}}
        )
    with lm.connect(mongo_url) as third:
        assert isinstance(third, MongoStorage)
        assert third.opening_report is not None
        assert third.opening_report.rolled_up == 400
        assert _series_figures(third, run_id) == expected


def test_a_database_from_before_the_rollups_gets_its_cells_once(mongo_url: str) -> None:
    with lm.connect(mongo_url) as storage:
        assert isinstance(storage, MongoStorage)
        run_id, _ = _rolled_up_snapshots(storage, 300)
        expected = _series_figures(storage, run_id)
        # What a database written before the rollups holds: no cells, no
        # marks on the slots, no record of a backfill.
        storage.db.drop_collection("metrics_rollups")
        storage.db["metrics_slots"].update_many({}, {"$unset": {"rolled": ""}})
    with lm.connect(mongo_url) as upgraded:
        assert isinstance(upgraded, MongoStorage)
        assert upgraded.opening_report is not None
        assert upgraded.opening_report.rolled_up == 300
        assert "metrics_rollups" in upgraded.opening_report.created_collections
        assert _series_figures(upgraded, run_id) == expected
        assert upgraded.migrate().rolled_up == 0


def test_deleting_a_test_deletes_its_series_cells(mongo_url: str) -> None:
    with lm.connect(mongo_url) as storage:
        assert isinstance(storage, MongoStorage)
        run_id, _ = _rolled_up_snapshots(storage, 50, lm.RunStatus.FINISHED)
        cells = storage.db["metrics_rollups"]
        assert cells.count_documents({"loadTestRunId": run_id}) > 0
        storage.load_tests.delete(storage.runs.get(run_id).load_test_id)
        assert cells.count_documents({"loadTestRunId": run_id}) == 0


@pytest.mark.skipif(
    not os.environ.get("MONGODB_URI"),
    reason="explain() plans are a real server's: set MONGODB_URI (the stand-in plans in SQLite)",
)
def test_a_rolled_up_series_is_one_aggregation_an_index_serves(mongo_url: str) -> None:
    from loadmanager.filters import SeriesWindow
    from loadmanager.repositories.mongo import rollup_pipeline

    with lm.connect(mongo_url) as storage:
        assert isinstance(storage, MongoStorage)
        run_id, _ = _rolled_up_snapshots(storage, 300)
        start = int((_T0 - _HOUR).timestamp() * 1000)
        window = SeriesWindow.laid_out(start, start + 2 * 3_600_000, 12)
        plan = storage.db.command(
            "explain",
            {
                "aggregate": "metrics_rollups",
                "pipeline": rollup_pipeline(run_id, window, ""),
                "cursor": {},
            },
            verbosity="queryPlanner",
        )
    text = str(plan)
    assert "IXSCAN" in text, text[:3000]
    assert "metrics_rollups_cells" in text, text[:3000]
    assert "COLLSCAN" not in text, text[:3000]
