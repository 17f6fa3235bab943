"""MongoDB repositories (pymongo), behind ``lm.connect("mongodb://host:port/db")``.

The only module that imports pymongo; its types and errors stop here.

Collections: ``load_tests``, ``load_test_runs`` and ``metrics_timeseries`` (the
seed's three), plus ``run_monitors``, which records which host replica monitors
each active run, ``metrics_slots`` (the poll slots stored, so none is stored
twice) and ``metrics_rollups`` (series cells updated at ingest; docs/storage.md).
Documents are the camelCase documents of :func:`loadmanager.to_dict` with the id in ``_id``,
native BSON dates, and a few numeric helper fields the queries use
(``createdMs``, ``startedMs``, ``tsMs``), which are stripped again on reading.

The per-cluster lease is a unique index on ``lease``, a field an active run
carries (holding its cluster id) and a terminal run does not. Real MongoDB needs
the ``partialFilterExpression`` so documents without the field stay out of the
index; the stand-in we test against ignores that option but reaches the same
behaviour because it keeps missing values out of uniqueness.

Bucketing for series runs on ``tsMs`` (epoch milliseconds) with plain arithmetic,
not date operators, which some wire-compatible servers get wrong; averages are
``$sum / count of non-null`` because such servers also count nulls in ``$avg``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import attrs

try:
    import pymongo
    from pymongo import errors as pymongo_errors
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the MongoDB backend needs pymongo: pip install 'loadmanager[mongo]'"
    ) from exc

from .._naming import camel
from .._serialization import make_converter
from ..clock import from_millis, to_millis
from ..errors import (
    ActiveRunError,
    ClusterBusyError,
    ConflictError,
    DuplicateError,
    NotFoundError,
    RepositoryUnavailableError,
    StaleVersionError,
)
from ..filters import ROLLUP_LEVELS_MS, LoadTestFilter, RunFilter, SeriesWindow
from ..locustfiles import Locustfile
from ..metrics import AGGREGATED, MetricSnapshot, SeriesBucket
from ..models import LoadTest, LoadTestRun
from ._protocols import AddsOne, MonitorClaim, bumped, checked
from ._rollups import WHOLE_RUN, endpoint_scope, scoped_figures
from ._series import ENDPOINT_FIELDS, SERIES_FIELDS, assemble, endpoint_matches, window_for

__all__ = [
    "LEGACY_COLLECTIONS",
    "MigrationReport",
    "MongoLoadTestRepository",
    "MongoLoadTestRunRepository",
    "MongoMetricsRepository",
    "MongoStorage",
    "migrate",
]

T = TypeVar("T")

LOAD_TESTS = "load_tests"
RUNS = "load_test_runs"
METRICS = "metrics_timeseries"
MONITORS = "run_monitors"
SLOTS = "metrics_slots"
ROLLUPS = "metrics_rollups"
LOCUSTFILES = "locustfiles"
LEGACY_COLLECTIONS = ("test_runs",)
"""Collections of the seed's earlier design, dropped by :func:`migrate`."""

_HELPERS = ("createdMs", "startedMs", "tsMs", "lease", "deletingMs")

DELETE_MARK_TTL_MS = 60_000
"""How long a delete's mark on a test holds off starts; a crashed delete's mark
lapses after this long instead of blocking the test forever."""


def _not_being_deleted(now_ms: int) -> dict[str, Any]:
    return {
        "$or": [
            {"deletingMs": {"$exists": False}},
            {"deletingMs": {"$lt": now_ms - DELETE_MARK_TTL_MS}},
        ]
    }


def _now_ms() -> int:
    # Only for the delete mark's expiry, a storage-level lock: the wall clock of
    # the host is what every replica shares, as for SQLite's lock timeouts.
    return int(time.time() * 1000)


_CONVERTER = make_converter("native")
_CAMEL_SERIES = {
    f: f.split("_")[0] + "".join(p.title() for p in f.split("_")[1:]) for f in SERIES_FIELDS
}

# name -> (collection, keys, options). Names are ours so reports can list them;
# a server may choose its own names, and the report shows what it says.
_INDEXES: tuple[tuple[str, str, list[tuple[str, int]], dict[str, Any]], ...] = (
    ("load_tests_order", LOAD_TESTS, [("createdMs", 1)], {}),
    ("load_tests_tenant", LOAD_TESTS, [("tenantId", 1), ("envId", 1), ("createdMs", 1)], {}),
    ("load_tests_tags", LOAD_TESTS, [("tags", 1)], {}),
    ("load_tests_creator", LOAD_TESTS, [("createdBy", 1), ("createdMs", 1)], {}),
    (
        "load_test_runs_cluster_lease",
        RUNS,
        [("lease", 1)],
        {"unique": True, "partialFilterExpression": {"lease": {"$exists": True}}},
    ),
    ("load_test_runs_test", RUNS, [("loadTestId", 1), ("createdMs", 1)], {}),
    ("load_test_runs_tenant", RUNS, [("tenantId", 1), ("envId", 1), ("createdMs", 1)], {}),
    ("load_test_runs_status", RUNS, [("status", 1), ("createdMs", 1)], {}),
    ("load_test_runs_cluster", RUNS, [("locustClusterId", 1), ("createdMs", 1)], {}),
    ("load_test_runs_started", RUNS, [("startedMs", 1)], {}),
    ("metrics_timeseries_run_ts", METRICS, [("loadTestRunId", 1), ("tsMs", 1)], {}),
    ("metrics_slots_run", SLOTS, [("loadTestRunId", 1)], {}),
    ("metrics_slots_unrolled", SLOTS, [("rolled", 1), ("tsMs", 1)], {}),
    (
        "metrics_rollups_cells",
        ROLLUPS,
        [("loadTestRunId", 1), ("level", 1), ("scope", 1), ("cell", 1)],
        {},
    ),
    (
        "locustfiles_version",
        LOCUSTFILES,
        [("tenantId", 1), ("name", 1), ("version", 1)],
        {"unique": True},
    ),
)


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Turn pymongo's errors into ours; duplicates are mapped where they arise."""
    try:
        yield
    except pymongo_errors.DuplicateKeyError:
        raise
    except (pymongo_errors.ConnectionFailure, pymongo_errors.ServerSelectionTimeoutError) as exc:
        raise RepositoryUnavailableError(f"MongoDB unreachable while {what}: {exc}") from exc
    except pymongo_errors.PyMongoError as exc:
        raise RepositoryUnavailableError(f"MongoDB failed while {what}: {exc}") from exc


def _to_doc(model: Any) -> dict[str, Any]:
    doc: dict[str, Any] = _CONVERTER.unstructure(model)
    doc["_id"] = doc.pop("id")
    return doc


def _from_doc(doc: Mapping[str, Any], cls: type[T]) -> T:
    data = {k: v for k, v in doc.items() if k not in _HELPERS}
    if "_id" in data:
        data["id"] = data.pop("_id")
    return _CONVERTER.structure(data, cls, subject=f"stored {cls.__name__}")


def _test_doc(test: LoadTest) -> dict[str, Any]:
    doc = _to_doc(test)
    doc["createdMs"] = to_millis(test.audit.created_at)
    return doc


def _run_doc(run: LoadTestRun) -> dict[str, Any]:
    doc = _to_doc(run)
    doc["createdMs"] = to_millis(run.audit.created_at)
    doc["startedMs"] = None if run.started_at is None else to_millis(run.started_at)
    if run.is_active:  # a run on a cluster of its own leases only itself
        doc["lease"] = run.lease_key
    return doc


def _eq(value: Any) -> dict[str, Any]:
    # Values from callers are wrapped in $eq so they are always compared as data.
    return {"$eq": value}


def _in(values: Iterable[Any]) -> dict[str, Any]:
    return {"$in": list(values)}


class MongoLoadTestRepository:
    """Load tests in the ``load_tests`` collection."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self._col = db[LOAD_TESTS]

    def add(self, test: LoadTest) -> LoadTest:
        with _mapped("adding a load test"):
            try:
                self._col.insert_one(_test_doc(test))
            except pymongo_errors.DuplicateKeyError as exc:
                raise DuplicateError("LoadTest", test.id) from exc
        return test

    @checked
    def get(self, test_id: str) -> LoadTest:
        with _mapped("reading a load test"):
            doc = self._col.find_one({"_id": _eq(test_id)})
        if doc is None:
            raise NotFoundError("LoadTest", test_id)
        return _from_doc(doc, LoadTest)

    def update(self, test: LoadTest) -> LoadTest:
        stored = bumped(test)
        with _mapped("updating a load test"):
            result = self._col.replace_one(
                {
                    "_id": _eq(test.id),
                    "version": _eq(test.version),
                    **_not_being_deleted(_now_ms()),
                },
                _test_doc(stored),
            )
            if result.matched_count == 0:
                current = self._col.find_one({"_id": _eq(test.id)}, {"version": 1})
                if current is None or current["version"] == test.version:
                    raise NotFoundError("LoadTest", test.id)  # gone, or going
                raise StaleVersionError("LoadTest", test.id, test.version, current["version"])
        return stored

    @checked
    def delete(self, test_id: str) -> None:
        # MongoDB has no cross-collection transaction without a replica set, so
        # a start racing this delete is settled by a mark on the test, set by
        # compare-and-set before the runs are looked at: a start re-checks the
        # test after inserting its run and withdraws the run if the mark is
        # there; a start that inserted first is seen here as an active run.
        # Then metrics, runs, the test: an interrupted delete leaves a test
        # with fewer runs, never runs without a test.
        runs = self._db[RUNS]
        with _mapped("deleting a load test"):
            marked = self._col.find_one_and_update(
                {"_id": _eq(test_id), **_not_being_deleted(_now_ms())},
                {"$set": {"deletingMs": _now_ms()}},
                projection={"_id": 1},
            )
            if marked is None:
                if self._col.find_one({"_id": _eq(test_id)}, {"_id": 1}) is None:
                    raise NotFoundError("LoadTest", test_id)
                raise ConflictError(f"load test {test_id!r} is being deleted by another call")
            active = runs.find_one({"loadTestId": _eq(test_id), "lease": {"$exists": True}})
            if active is not None:
                self._col.update_one({"_id": _eq(test_id)}, {"$unset": {"deletingMs": ""}})
                raise ActiveRunError(test_id, active["_id"])
            run_ids = [d["_id"] for d in runs.find({"loadTestId": _eq(test_id)}, {"_id": 1})]
            if run_ids:
                self._db[METRICS].delete_many({"loadTestRunId": _in(run_ids)})
                self._db[ROLLUPS].delete_many({"loadTestRunId": _in(run_ids)})
                self._db[MONITORS].delete_many({"_id": _in(run_ids)})
                self._db[SLOTS].delete_many({"loadTestRunId": _in(run_ids)})
                runs.delete_many({"loadTestId": _eq(test_id)})
            self._col.delete_one({"_id": _eq(test_id)})

    def find(self, filter: LoadTestFilter) -> list[LoadTest]:  # noqa: A002
        query: dict[str, Any] = {}
        for field, value in (
            ("tenantId", filter.tenant_id),
            ("envId", filter.env_id),
            ("createdBy", filter.created_by),
        ):
            if value is not None:
                query[field] = _eq(value)
        if filter.tenant_ids is not None:
            query.setdefault("$and", []).append({"tenantId": _in(filter.tenant_ids)})
        if filter.tags:
            query["tags"] = {"$all": sorted(set(filter.tags))}
        if filter.name_contains is not None:
            query["name"] = {"$regex": re.escape(filter.name_contains)}
        with _mapped("listing load tests"):
            docs = self._col.find(query).sort([("createdMs", 1), ("_id", 1)]).limit(filter.limit)
            return [_from_doc(d, LoadTest) for d in docs]


class MongoLoadTestRunRepository:
    """Runs in ``load_test_runs``; the lease is the unique ``lease`` index."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self._col = db[RUNS]

    def _holder(self, run: LoadTestRun, exc: Exception) -> str | None:
        """The active run holding the lease; DuplicateError if the id was the clash."""
        existing = self._col.find_one({"_id": _eq(run.id)}, {"_id": 1})
        if existing is not None and "lease" not in str(exc):
            raise DuplicateError("LoadTestRun", run.id) from exc
        holder = self._col.find_one({"lease": _eq(run.lease_key)}, {"_id": 1})
        return None if holder is None else str(holder["_id"])

    def _test_open(self, test_id: str) -> bool:
        found = self._db[LOAD_TESTS].find_one(
            {"_id": _eq(test_id), **_not_being_deleted(_now_ms())}, {"_id": 1}
        )
        return found is not None

    def add(self, run: LoadTestRun) -> LoadTestRun:
        with _mapped("adding a run"):
            if not self._test_open(run.load_test_id):
                raise NotFoundError("LoadTest", run.load_test_id)
            for attempt in (1, 2):
                try:
                    self._col.insert_one(_run_doc(run))
                    break
                except pymongo_errors.DuplicateKeyError as exc:
                    holder = self._holder(run, exc)
                    # The holder may have ended between the clash and the look-up:
                    # then the lease is free, and one more try settles it.
                    if holder is not None or attempt == 2:
                        raise ClusterBusyError(run.locust_cluster_id, holder) from exc
            if not self._test_open(run.load_test_id):
                # A delete marked the test after our first check: withdraw.
                self._col.delete_one({"_id": _eq(run.id)})
                raise NotFoundError("LoadTest", run.load_test_id)
        return run

    @checked
    def get(self, run_id: str) -> LoadTestRun:
        with _mapped("reading a run"):
            doc = self._col.find_one({"_id": _eq(run_id)})
        if doc is None:
            raise NotFoundError("LoadTestRun", run_id)
        return _from_doc(doc, LoadTestRun)

    def update(self, run: LoadTestRun) -> LoadTestRun:
        stored = bumped(run)
        with _mapped("updating a run"):
            try:
                result = self._col.replace_one(
                    {"_id": _eq(run.id), "version": _eq(run.version)}, _run_doc(stored)
                )
            except pymongo_errors.DuplicateKeyError as exc:
                raise ClusterBusyError(run.locust_cluster_id, self._holder(run, exc)) from exc
            if result.matched_count == 0:
                current = self._col.find_one({"_id": _eq(run.id)}, {"version": 1})
                if current is None:
                    raise NotFoundError("LoadTestRun", run.id)
                raise StaleVersionError("LoadTestRun", run.id, run.version, current["version"])
            if not stored.is_active:
                self._db[MONITORS].delete_one({"_id": _eq(run.id)})
        return stored

    def find(self, filter: RunFilter) -> list[LoadTestRun]:  # noqa: A002
        query: dict[str, Any] = {}
        for field, value in (
            ("loadTestId", filter.load_test_id),
            ("tenantId", filter.tenant_id),
            ("envId", filter.env_id),
            ("locustClusterId", filter.locust_cluster_id),
        ):
            if value is not None:
                query[field] = _eq(value)
        and_: list[dict[str, Any]] = []
        if filter.tenant_ids is not None:
            and_.append({"tenantId": _in(filter.tenant_ids)})
        if filter.statuses is not None:
            and_.append({"status": _in(s.value for s in filter.statuses)})
        if filter.started_after is not None:
            and_.append({"startedMs": {"$gte": to_millis(filter.started_after)}})
        if filter.started_before is not None:
            and_.append({"startedMs": {"$lt": to_millis(filter.started_before), "$ne": None}})
        if and_:
            query["$and"] = and_
        with _mapped("listing runs"):
            docs = self._col.find(query).sort([("createdMs", 1), ("_id", 1)]).limit(filter.limit)
            return [_from_doc(d, LoadTestRun) for d in docs]

    @checked
    def active_on_cluster(self, cluster_id: str) -> LoadTestRun | None:
        with _mapped("reading a cluster lease"):
            doc = self._col.find_one({"lease": _eq(cluster_id)})
        return None if doc is None else _from_doc(doc, LoadTestRun)

    @checked
    def claim_monitor(self, run_id: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        # Claims live in their own collection so that renewing one never writes
        # the run document (whose version guards every status change).
        monitors = self._db[MONITORS]
        until = to_millis(now + ttl)
        with _mapped("claiming a run's monitor"):
            if (
                self._col.find_one({"_id": _eq(run_id), "lease": {"$exists": True}}, {"_id": 1})
                is None
            ):
                return False
            # $and, not _id beside $or: the same filter on every server, and
            # the nx-27017 stand-in's update_one drops an _id that sits beside
            # a lone $or (it renewed another run's claim instead).
            taken = monitors.update_one(
                {
                    "$and": [
                        {"_id": _eq(run_id)},
                        {"$or": [{"owner": _eq(owner)}, {"expiresMs": {"$lt": to_millis(now)}}]},
                    ]
                },
                {"$set": {"owner": owner, "expiresMs": until}},
            )
            if taken.matched_count == 1:
                return True
            try:
                monitors.insert_one({"_id": run_id, "owner": owner, "expiresMs": until})
            except pymongo_errors.DuplicateKeyError:
                return False  # someone else holds a live claim
            return True

    @checked
    def claim_monitors(
        self, run_ids: Collection[str], owner: str, *, now: datetime, ttl: timedelta
    ) -> set[str]:
        # One claim at a time: a claim is a compare-and-set on one document,
        # which MongoDB has no multi-document form of without a transaction.
        return {r for r in set(run_ids) if self.claim_monitor(r, owner, now=now, ttl=ttl)}

    @checked
    def release_monitor(self, run_id: str, owner: str) -> None:
        with _mapped("releasing a run's monitor"):
            self._db[MONITORS].delete_one({"_id": _eq(run_id), "owner": _eq(owner)})

    @checked
    def monitor_of(self, run_id: str) -> MonitorClaim | None:
        with _mapped("reading a run's monitor"):
            doc = self._db[MONITORS].find_one({"_id": _eq(run_id)})
        if doc is None:
            return None
        return MonitorClaim(str(doc["owner"]), from_millis(int(doc["expiresMs"])))


class MongoLocustfileRepository:
    """Locustfile versions in ``locustfiles``; the unique index makes a version once."""

    def __init__(self, db: Any) -> None:
        self._col = db[LOCUSTFILES]

    def add(self, locustfile: Locustfile) -> Locustfile:
        lf = locustfile
        with _mapped("storing a locustfile"):
            latest = self._col.find_one(
                {"tenantId": _eq(lf.tenant_id), "name": _eq(lf.name)},
                {"version": 1},
                sort=[("version", -1)],
            )
            found = 0 if latest is None else int(latest["version"])
            if lf.version != found + 1:
                raise StaleVersionError("Locustfile", lf.name, lf.version - 1, found)
            doc: dict[str, Any] = _CONVERTER.unstructure(lf)
            try:
                self._col.insert_one(doc)
            except pymongo_errors.DuplicateKeyError:  # another writer took this version
                raise StaleVersionError("Locustfile", lf.name, lf.version - 1) from None
        return lf

    @checked
    def get(self, tenant_id: str, name: str, version: int | None = None) -> Locustfile:
        query: dict[str, Any] = {"tenantId": _eq(tenant_id), "name": _eq(name)}
        if version is not None:
            query["version"] = _eq(version)
        with _mapped("reading a locustfile"):
            doc = self._col.find_one(query, sort=[("version", -1)])
        if doc is None:
            raise NotFoundError("Locustfile", name if version is None else f"{name}@{version}")
        return _from_locustfile(doc)

    @checked
    def find(self, tenant_id: str) -> list[Locustfile]:
        with _mapped("listing locustfiles"):
            docs = list(
                self._col.find({"tenantId": _eq(tenant_id)}).sort([("name", 1), ("version", -1)])
            )
        latest: dict[str, Locustfile] = {}
        for doc in docs:
            latest.setdefault(doc["name"], _from_locustfile(doc))
        return list(latest.values())

    @checked
    def versions(self, tenant_id: str, name: str) -> list[int]:
        with _mapped("listing a locustfile's versions"):
            docs = self._col.find(
                {"tenantId": _eq(tenant_id), "name": _eq(name)}, {"version": 1}
            ).sort("version", 1)
            return [int(d["version"]) for d in docs]

    @checked
    def delete(self, tenant_id: str, name: str) -> int:
        with _mapped("deleting a locustfile"):
            result = self._col.delete_many({"tenantId": _eq(tenant_id), "name": _eq(name)})
        if result.deleted_count == 0:
            raise NotFoundError("Locustfile", name)
        return int(result.deleted_count)


def _from_locustfile(doc: dict[str, Any]) -> Locustfile:
    doc = {k: v for k, v in doc.items() if k not in ("_id", "sha256")}
    return _CONVERTER.structure(doc, Locustfile, subject="stored Locustfile")


ROLLUP_REPAIR_AFTER_MS = 120_000
"""A slotted snapshot whose cells are still not updated this long after it was
taken lost its writer between the two writes; :func:`migrate` (run by every
open) applies them."""


def _cell_id(run_id: str, level: int, scope: str, cell: int) -> str:
    return f"{run_id}/{level}/{scope}/{cell}"


def _rollup_ops(keyed: Iterable[tuple[str, MetricSnapshot]]) -> list[Any]:
    """The cell updates of snapshots, each applied to a cell at most once per key.

    A cell records the keys of the snapshots it holds (``applied``), and an
    update applies only where its key is absent. Run again (a retried write,
    the repair of a crashed one, the migration), it matches no cell, its
    upsert collides with the cell's ``_id``, and that duplicate key is the
    no-op. ``$min``/``$max`` leave out missing figures: BSON orders null first.
    """
    ops = []
    for key, snap in keyed:
        ts = to_millis(snap.timestamp)
        run_id = snap.load_test_run_id
        for scope, figures in scoped_figures(snap):
            inc: dict[str, float] = {"samples": 1}
            low: dict[str, float] = {}
            high: dict[str, float] = {}
            for field, value in zip(SERIES_FIELDS, figures, strict=True):
                if value is not None:
                    inc[f"n_{field}"] = 1
                    inc[f"sum_{field}"] = value
                    low[f"min_{field}"] = high[f"max_{field}"] = value
            for level in ROLLUP_LEVELS_MS:
                cell = ts // level
                update: dict[str, Any] = {
                    "$inc": inc,
                    "$set": {f"applied.{key}": 1},
                    "$setOnInsert": {
                        "loadTestRunId": run_id,
                        "level": level,
                        "scope": scope,
                        "cell": cell,
                    },
                }
                if low:
                    update["$min"] = low
                    update["$max"] = high
                ops.append(
                    pymongo.UpdateOne(
                        {
                            "_id": _cell_id(run_id, level, scope, cell),
                            f"applied.{key}": {"$exists": False},
                        },
                        update,
                        upsert=True,
                    )
                )
    return ops


def _apply_rollups(db: Any, ops: list[Any]) -> None:
    """Apply cell updates; a duplicate key means the update was applied before.

    Two writers creating one cell at once also collide on its ``_id`` though
    neither had applied its update: the loser's updates are sent once more,
    and now find the cell, so a second duplicate key really is a repeat.
    """
    for _ in range(2):
        if not ops:
            return
        try:
            db[ROLLUPS].bulk_write(ops, ordered=False)
            return
        except pymongo_errors.BulkWriteError as exc:
            collided = []
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != 11000:
                    raise
                collided.append(ops[int(error["index"])])
            ops = collided


def rollup_pipeline(run_id: str, window: SeriesWindow, scope: str) -> list[dict[str, Any]]:
    """The aggregation of a laid-out series: the cells of one level, grouped into buckets.

    Its ``$match`` is equalities on run, level and scope and a range on the
    cell: the ``metrics_rollups_cells`` index answers it, and a series reads
    at most a few thousand cells however long the run.
    """
    level = window.level_ms
    group: dict[str, Any] = {
        "_id": {
            "$floor": {
                "$divide": [
                    {"$subtract": [{"$multiply": ["$cell", level]}, window.start_ms]},
                    window.width_ms,
                ]
            }
        },
        "samples": {"$sum": "$samples"},
    }
    for field in SERIES_FIELDS:
        group[f"{field}_min"] = {"$min": f"$min_{field}"}
        group[f"{field}_max"] = {"$max": f"$max_{field}"}
        group[f"{field}_sum"] = {"$sum": f"$sum_{field}"}
        group[f"{field}_n"] = {"$sum": f"$n_{field}"}
    cells = {"$gte": window.start_ms // level, "$lt": window.end_ms // level}
    match = {"loadTestRunId": _eq(run_id), "level": _eq(level), "scope": _eq(scope), "cell": cells}
    return [{"$match": match}, {"$group": group}]


def _figures(doc: Mapping[str, Any]) -> list[float | None]:
    """[min, avg, max] per series figure from a series ``$group`` document."""
    figures: list[float | None] = []
    for field in SERIES_FIELDS:
        n = doc[f"{field}_n"]
        avg = doc[f"{field}_sum"] / n if n else None
        figures += [doc[f"{field}_min"], avg, doc[f"{field}_max"]]
    return figures


def _slot_key(slot: int) -> str:
    return f"s{slot}"


def _slot_id(snap: MetricSnapshot) -> str:
    return f"{snap.load_test_run_id}/{snap.slot}"


class MongoMetricsRepository(AddsOne):
    """Snapshots in ``metrics_timeseries``; series are an aggregation pipeline."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self._col = db[METRICS]
        # Marks the slots this repository takes, so that a retry after a failed
        # write recognises its own slot instead of losing the snapshot.
        self._writer = uuid.uuid4().hex

    def _take_slots(
        self, items: list[MetricSnapshot]
    ) -> tuple[list[MetricSnapshot], list[MetricSnapshot]]:
        """The snapshots whose (run, slot) this call, or a failed try of it, took first.

        A time-series collection takes no unique index, so the slots are taken
        in their own collection, whose ``_id`` is the unique key. The slot
        document names its writer and the snapshot's time: when the storage
        fails between taking a slot and storing its snapshot, the retry of the
        same snapshot finds its own slot and stores it, unless the failed try
        stored it after all. Only a crash between the two writes loses a
        snapshot; nothing stores one twice.
        """
        slotted = [s for s in items if s.slot is not None]
        if not slotted:
            return items, []
        docs = [
            {
                "_id": _slot_id(s),
                "loadTestRunId": s.load_test_run_id,
                "writer": self._writer,
                "tsMs": to_millis(s.timestamp),
                "rolled": False,  # until the snapshot's cells are updated
            }
            for s in slotted
        ]
        refused: set[int] = set()
        try:
            self._db[SLOTS].insert_many(docs, ordered=False)
        except pymongo_errors.BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != 11000:  # not a duplicate key: a real failure
                    raise
                refused.add(int(error["index"]))
        retake, filled = self._retried(docs, refused)
        refused -= retake
        taken = {id(s) for i, s in enumerate(slotted) if i not in refused}
        return [s for s in items if s.slot is None or id(s) in taken], [slotted[i] for i in filled]

    def _retried(self, docs: list[dict[str, Any]], refused: set[int]) -> tuple[set[int], set[int]]:
        """Of the refused slots, those a failed try of this write took: never filled, and filled.

        A filled one was stored by the failed try, which may have failed
        before updating its cells: the retry updates them (a repeat is a no-op).
        """
        if not refused:
            return set(), set()
        ids = [docs[i]["_id"] for i in sorted(refused)]
        held = {d["_id"]: d for d in self._db[SLOTS].find({"_id": _in(ids)})}
        ours = [
            i
            for i in sorted(refused)
            if (d := held.get(docs[i]["_id"])) is not None
            and d.get("writer") == self._writer
            and d.get("tsMs") == docs[i]["tsMs"]
        ]
        if not ours:
            return set(), set()
        stored = {
            (d["loadTestRunId"], d["tsMs"])
            for d in self._col.find(
                {
                    "loadTestRunId": _in(sorted({docs[i]["loadTestRunId"] for i in ours})),
                    "tsMs": _in(sorted({docs[i]["tsMs"] for i in ours})),
                },
                {"loadTestRunId": 1, "tsMs": 1},
            )
        }
        filled = {i for i in ours if (docs[i]["loadTestRunId"], docs[i]["tsMs"]) in stored}
        return set(ours) - filled, filled

    def add_many(self, snapshots: Iterable[MetricSnapshot]) -> int:
        items = list(snapshots)
        if not items:
            return 0
        run_ids = {s.load_test_run_id for s in items}
        with _mapped("storing snapshots"):
            known = {
                d["_id"] for d in self._db[RUNS].find({"_id": _in(sorted(run_ids))}, {"_id": 1})
            }
            missing = sorted(run_ids - known)
            if missing:
                raise NotFoundError("LoadTestRun", missing[0])
            items, filled = self._take_slots(items)
            if filled:
                self._roll_up([(_slot_key(s.slot), s) for s in filled if s.slot is not None])
            if not items:
                return 0
            docs = []
            for snap in items:
                doc: dict[str, Any] = _CONVERTER.unstructure(snap)
                doc["tsMs"] = to_millis(snap.timestamp)
                docs.append(doc)
            self._col.insert_many(docs, ordered=False)  # gives each doc its _id
            # Then the cells. A crash between the two leaves a slot marked
            # unrolled, which the next open repairs; the keys make any
            # repeat a no-op. (A snapshot without a slot has no such mark.)
            keyed = [
                (_slot_key(snap.slot) if snap.slot is not None else f"o{doc['_id']}", snap)
                for snap, doc in zip(items, docs, strict=True)
            ]
            self._roll_up(keyed)
        return len(docs)

    def _roll_up(self, keyed: list[tuple[str, MetricSnapshot]]) -> None:
        """Update the snapshots' cells, then mark their slots done."""
        _apply_rollups(self._db, _rollup_ops(keyed))
        slots = [_slot_id(s) for _, s in keyed if s.slot is not None]
        if slots:
            self._db[SLOTS].update_many({"_id": _in(slots)}, {"$set": {"rolled": True}})

    @staticmethod
    def _match(run_id: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
        match: dict[str, Any] = {"loadTestRunId": _eq(run_id)}
        bounds: dict[str, int] = {}
        if start is not None:
            bounds["$gte"] = to_millis(start)
        if end is not None:
            bounds["$lt"] = to_millis(end)
        if bounds:
            match["tsMs"] = bounds
        return match

    @checked
    def snapshots(
        self,
        run_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[MetricSnapshot]:
        with _mapped("reading snapshots"):
            cursor = self._col.find(self._match(run_id, start, end), {"_id": 0}).sort(
                [("tsMs", 1), ("_id", 1)]
            )
            if limit is not None:
                cursor = cursor.limit(limit)
            return [_from_doc(d, MetricSnapshot) for d in cursor]

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
        with _mapped("computing a series"):
            lo = hi = None
            if start is None or end is None:  # the run's own bounds stand in
                bounds = list(
                    self._col.aggregate(
                        [
                            {"$match": self._match(run_id, start, end)},
                            {
                                "$group": {
                                    "_id": None,
                                    "lo": {"$min": "$tsMs"},
                                    "hi": {"$max": "$tsMs"},
                                }
                            },
                        ]
                    )
                )
                if bounds:
                    lo, hi = bounds[0]["lo"], bounds[0]["hi"]
            window = window_for(start, end, lo, hi, buckets)
            if window is None:
                return []
            if window.level_ms:
                scope = WHOLE_RUN if endpoint is None else endpoint_scope(endpoint)
                cells = self._db[ROLLUPS].aggregate(rollup_pipeline(run_id, window, scope))
                return assemble(window, [(int(d["_id"]), d["samples"], _figures(d)) for d in cells])
            match = self._match(run_id, from_millis(window.start_ms), from_millis(window.end_ms))
            group: dict[str, Any] = {
                "_id": {
                    "$floor": {
                        "$divide": [{"$subtract": ["$tsMs", window.start_ms]}, window.width_ms]
                    }
                },
                "samples": {"$sum": 1},
            }
            pipeline: list[dict[str, Any]] = [{"$match": match}]
            refs = ["$" + camel(f) for f in SERIES_FIELDS]
            if endpoint is not None:
                # One endpoint's rows: unwind the snapshot's endpoints server-side.
                pairs = endpoint_matches(endpoint)
                pipeline += [
                    {"$unwind": {"path": "$endpoints", "includeArrayIndex": "at"}},
                    {
                        "$match": {
                            "$or": [
                                {"endpoints.method": _eq(m), "endpoints.name": _eq(n)}
                                for m, n in pairs
                            ]
                        }
                    },
                    # Of two rows the key matches, ("GET", "/a") and ("", "GET /a"),
                    # a snapshot's first counts, as in every backend.
                    {"$sort": {"_id": 1, "at": 1}},
                    {
                        "$group": {
                            "_id": "$_id",
                            "tsMs": {"$first": "$tsMs"},
                            "userCount": {"$first": "$userCount"},
                            "endpoints": {"$first": "$endpoints"},
                        }
                    },
                ]
                refs = [refs[0], *("$endpoints." + camel(f) for f in ENDPOINT_FIELDS)]
            for field, ref in zip(SERIES_FIELDS, refs, strict=True):
                group[f"{field}_min"] = {"$min": ref}
                group[f"{field}_max"] = {"$max": ref}
                group[f"{field}_sum"] = {"$sum": ref}
                group[f"{field}_n"] = {"$sum": {"$cond": [{"$eq": [ref, None]}, 0, 1]}}
            pipeline.append({"$group": group})
            found = self._col.aggregate(pipeline)
            rows = [(int(d["_id"]), d["samples"], _figures(d)) for d in found]
        return assemble(window, rows)

    @checked
    def histogram_changes(
        self,
        run_id: str,
        *,
        endpoint: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[tuple[datetime, dict[int, int]]]:
        key = endpoint or AGGREGATED
        found = []
        with _mapped("reading histogram changes"):
            # Only the histograms cross the wire, and are picked out here: a
            # filter in the query would ask more of the server than find().
            cursor = self._col.find(
                self._match(run_id, start, end), {"_id": 0, "tsMs": 1, "histograms": 1}
            ).sort([("tsMs", 1), ("_id", 1)])
            for doc in cursor:
                changes = doc.get("histograms")
                if changes:
                    buckets = next((h["buckets"] for h in changes if h["key"] == key), ())
                    found.append((from_millis(doc["tsMs"]), dict(buckets)))
        return found

    @checked
    def peak_worker_cpu(self, run_id: str) -> float | None:
        with _mapped("reading workers' CPU"):
            found = self._col.find({"loadTestRunId": _eq(run_id)}, {"_id": 0, "workers": 1})
            return max(
                (float(w["cpuUsage"]) for d in found for w in d.get("workers") or ()),
                default=None,
            )

    @checked
    def count(self, run_id: str) -> int:
        with _mapped("counting snapshots"):
            return int(self._col.count_documents({"loadTestRunId": _eq(run_id)}))


@attrs.frozen
class MigrationReport:
    """What :func:`migrate` found and did.

    Attributes:
        dropped: Legacy collections it dropped (only when asked to).
        legacy: Legacy collections present before it ran, with their document
            counts; they stay until ``migrate(drop_legacy=True)``.
        created_collections: Collections it created.
        created_indexes: Index names it created (as the server names them).
        collections: Every collection present afterwards.
        indexes: Each of our collections' index names afterwards.
        timeseries: Whether ``metrics_timeseries`` is a time-series collection.
        rolled_up: Snapshots whose series cells it built: every stored one
            the first time (a database from before the rollups), then those
            whose writer stopped between storing them and their cells.
    """

    dropped: tuple[str, ...]
    legacy: Mapping[str, int]
    created_collections: tuple[str, ...]
    created_indexes: tuple[str, ...]
    collections: tuple[str, ...]
    indexes: Mapping[str, tuple[str, ...]]
    timeseries: bool
    rolled_up: int = 0

    @property
    def changed(self) -> bool:
        """Whether this migration changed anything."""
        return bool(
            self.dropped or self.created_collections or self.created_indexes or self.rolled_up
        )

    def __str__(self) -> str:
        if not self.changed:
            head = "nothing to migrate: the database is up to date"
        else:
            head = (
                f"dropped {list(self.dropped)}, created collections "
                f"{list(self.created_collections)}, created indexes {list(self.created_indexes)}"
            )
        lines = [head, f"metrics_timeseries is a time-series collection: {self.timeseries}"]
        if self.rolled_up:
            lines.append(f"series cells built for {self.rolled_up} stored snapshots")
        lines += [
            f"legacy collection {name}: {count} documents"
            + (", dropped" if name in self.dropped else "; migrate(drop_legacy=True) drops it")
            for name, count in sorted(self.legacy.items())
        ]
        lines += [f"{name}: {', '.join(idx)}" for name, idx in sorted(self.indexes.items())]
        return "\n".join(lines)


def _index_names(db: Any, collection: str) -> set[str]:
    return set(db[collection].index_information())


def migrate(db: Any, *, drop_legacy: bool = False, force: bool = False) -> MigrationReport:
    """Bring a database to the current layout; safe to run any number of times.

    Creates ``load_tests``, ``load_test_runs``, ``run_monitors``, ``metrics_slots``
    and ``metrics_timeseries`` (a time-series collection with ``loadTestRunId``
    as its meta field where the server supports them) and every index the
    queries use. This is the seed's "Database Migration" section as code.

    It never deletes data unless told to: the legacy ``test_runs`` collection is
    only reported (with its document count) unless ``drop_legacy=True``, and a
    non-empty one is dropped only with ``force=True`` as well.

    Args:
        db: A ``pymongo.database.Database``.
        drop_legacy: Drop the legacy collections of the seed's earlier design.
        force: Drop them even when they hold documents.

    Raises:
        ConflictError: ``drop_legacy`` without ``force`` while a legacy
            collection holds documents; nothing was dropped.
    """
    with _mapped("migrating"):
        existing = set(db.list_collection_names())
        legacy = {
            name: int(db[name].estimated_document_count())
            for name in LEGACY_COLLECTIONS
            if name in existing
        }
        dropped: tuple[str, ...] = ()
        if drop_legacy:
            full = {name: n for name, n in legacy.items() if n}
            if full and not force:
                raise ConflictError(
                    f"legacy collections hold documents ({full}); "
                    "pass force=True to drop them anyway"
                )
            dropped = tuple(sorted(legacy))
            for name in dropped:
                db.drop_collection(name)
        created: list[str] = []
        for name in (LOAD_TESTS, RUNS, MONITORS, SLOTS, LOCUSTFILES, ROLLUPS):
            if name not in existing:
                db.create_collection(name)
                created.append(name)
        if METRICS not in existing:
            try:
                db.create_collection(
                    METRICS,
                    timeseries={
                        "timeField": "timestamp",
                        "metaField": "loadTestRunId",
                        "granularity": "seconds",
                    },
                )
            except pymongo_errors.OperationFailure:
                # Servers before 5.0 have no time-series collections.
                db.create_collection(METRICS)
            created.append(METRICS)
        kinds = {c["name"]: c.get("type", "collection") for c in db.list_collections()}
        before = {name: _index_names(db, name) for name in (LOAD_TESTS, RUNS, METRICS)}
        for name, collection, keys, options in _INDEXES:
            db[collection].create_index(keys, name=name, **options)
        after = {name: _index_names(db, name) for name in (LOAD_TESTS, RUNS, METRICS)}
        new_indexes = tuple(sorted(i for c in after for i in after[c] - before[c]))
        return MigrationReport(
            dropped=dropped,
            legacy=legacy,
            created_collections=tuple(created),
            created_indexes=new_indexes,
            collections=tuple(sorted(db.list_collection_names())),
            indexes={c: tuple(sorted(names)) for c, names in after.items()},
            timeseries=kinds.get(METRICS) == "timeseries",
            rolled_up=_backfill_rollups(db) + _repair_rollups(db, _now_ms()),
        )


_BACKFILLED = "backfilled"
"""The ``_id`` of the document in ``metrics_rollups`` that says every snapshot
stored before the rollups existed has its cells."""


def _snapshot_key(doc: Mapping[str, Any]) -> str:
    slot = doc.get("slot")
    return _slot_key(slot) if slot is not None else f"o{doc['_id']}"


def _snapshot_from_doc(doc: Mapping[str, Any]) -> MetricSnapshot:
    return _from_doc({k: v for k, v in doc.items() if k != "_id"}, MetricSnapshot)


def _backfill_rollups(db: Any, chunk: int = 1000) -> int:
    """The cells of every stored snapshot, once per database; safe to run again."""
    if db[ROLLUPS].find_one({"_id": _BACKFILLED}) is not None:
        return 0
    count = 0
    batch: list[tuple[str, MetricSnapshot]] = []
    for doc in db[METRICS].find({}, sort=[("loadTestRunId", 1), ("tsMs", 1)]):
        batch.append((_snapshot_key(doc), _snapshot_from_doc(doc)))
        if len(batch) == chunk:
            _apply_rollups(db, _rollup_ops(batch))
            count += len(batch)
            batch = []
    _apply_rollups(db, _rollup_ops(batch))
    count += len(batch)
    # Slots from before the rollups carry no mark: their snapshots are done.
    db[SLOTS].update_many({"rolled": {"$exists": False}}, {"$set": {"rolled": True}})
    db[ROLLUPS].update_one({"_id": _BACKFILLED}, {"$set": {"at": _now_ms()}}, upsert=True)
    return count


def _repair_rollups(db: Any, now_ms: int) -> int:
    """The cells of slotted snapshots whose writer stopped before updating them."""
    count = 0
    late = {"rolled": False, "tsMs": {"$lt": now_ms - ROLLUP_REPAIR_AFTER_MS}}
    for slot in db[SLOTS].find(late):
        stored = db[METRICS].find_one(
            {"loadTestRunId": _eq(slot["loadTestRunId"]), "tsMs": _eq(slot["tsMs"])}
        )
        if stored is not None:  # else the write never got that far: nothing to count
            snap = _snapshot_from_doc(stored)
            if snap.slot is not None:
                _apply_rollups(db, _rollup_ops([(_slot_key(snap.slot), snap)]))
                count += 1
        db[SLOTS].update_one({"_id": slot["_id"]}, {"$set": {"rolled": True}})
    return count


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class MongoStorage:
    """The MongoDB backend.

    Args:
        url: ``mongodb://host:port/dbname``; the database defaults to ``loadmanager``.
        database: A database name that overrides the one in the URL.
        client: An existing ``MongoClient`` to use (not closed by :meth:`close`).
        migrate_on_open: Run :func:`migrate` when opening (idempotent, never
            drops anything; on by default).
        server_selection_timeout_ms: How long to look for a server before
            RepositoryUnavailableError.
    """

    def __init__(
        self,
        url: str,
        *,
        database: str | None = None,
        client: Any = None,
        migrate_on_open: bool = True,
        server_selection_timeout_ms: int = 5000,
    ) -> None:
        self._owns_client = client is None
        try:
            self.url = _redacted(url)
            self._client = client or pymongo.MongoClient(
                url,
                tz_aware=True,
                serverSelectionTimeoutMS=server_selection_timeout_ms,
                connect=False,
            )
            default = self._client.get_default_database(default="loadmanager")
            self.db = self._client[database] if database else default
        except (pymongo_errors.ConfigurationError, pymongo_errors.InvalidName) as exc:
            # A URL the driver refuses is the caller's input, not an outage.
            raise ValueError(str(exc)) from exc
        self.load_tests = MongoLoadTestRepository(self.db)
        self.runs = MongoLoadTestRunRepository(self.db)
        self.metrics = MongoMetricsRepository(self.db)
        self.locustfiles = MongoLocustfileRepository(self.db)
        try:
            self.opening_report = migrate(self.db) if migrate_on_open else None
            if self.opening_report is not None and self.opening_report.legacy:
                logging.getLogger("loadmanager").warning(
                    "MongoDB %s still has legacy collections %s; they are kept until "
                    "storage.migrate(drop_legacy=True)",
                    self.url,
                    dict(self.opening_report.legacy),
                )
        except BaseException:
            self.close()  # a storage that failed to open must not leak its client
            raise

    def migrate(self, *, drop_legacy: bool = False, force: bool = False) -> MigrationReport:
        """Run :func:`migrate` on this storage's database and report.

        Opening the storage runs it too, without ever dropping anything.
        """
        return migrate(self.db, drop_legacy=drop_legacy, force=force)

    def close(self) -> None:
        """Close the client if this storage created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> MongoStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MongoStorage({self.url!r})"
