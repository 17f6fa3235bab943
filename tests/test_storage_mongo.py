"""The contract suite on MongoDB over a real socket, plus migration and injection."""

from __future__ import annotations

import string
from collections.abc import Iterator
from datetime import datetime, timezone
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


class TestMongoStorage(StorageContract):
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
        # Another writer's snapshot for the same slot is still refused.
        with lm.connect(mongo_url) as other:
            assert other.metrics.add_many([make_snapshot(run.id, _T0, slot=6)]) == 0
        assert len(metrics.snapshots(run.id)) == 1
