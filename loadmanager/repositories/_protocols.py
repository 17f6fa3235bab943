"""The ports every storage backend implements.

Verbs: ``add`` (refuses a duplicate id), ``get`` (raises NotFoundError, never returns
None), ``update`` (compare-and-set on ``version``: stores ``version + 1`` only when
the stored version is the one the object carries), ``find(filter)``.

The cluster lease is not a separate record: a run in an active status *is* the
lease. ``LoadTestRunRepository.add`` stores a pending run only if no other run on
the same cluster is active, atomically, across threads and processes; the lease is
released by the update that moves the run to a terminal status.

Deleting a load test deletes its runs and their metrics with it (nothing is left
orphaned) and is refused with ActiveRunError while one of its runs is active.
Metrics are removed first and the test last, so an interrupted delete leaves a
test with fewer runs, never runs without a test.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs

from .._constraints import is_whole, unicode_problem
from .._naming import camel
from ..errors import ValidationError
from ..filters import LoadTestFilter, RunFilter
from ..locustfiles import Locustfile
from ..metrics import MetricSnapshot, SeriesBucket
from ..models import LoadTest, LoadTestRun

__all__ = [
    "LoadTestRepository",
    "LocustfileRepository",
    "LoadTestRunRepository",
    "MetricsRepository",
    "MonitorClaim",
    "Storage",
]


@attrs.frozen
class MonitorClaim:
    """Which replica monitors an active run, and until when (unless it renews)."""

    owner: str
    expires_at: datetime


@runtime_checkable
class LoadTestRepository(Protocol):
    """Stores load test definitions."""

    def add(self, test: LoadTest) -> LoadTest:
        """Store a new test as given; DuplicateError if the id exists."""
        ...

    def get(self, test_id: str) -> LoadTest:
        """The test with that id; NotFoundError if there is none."""
        ...

    def update(self, test: LoadTest) -> LoadTest:
        """Store ``test`` if the stored version equals ``test.version``.

        Returns the stored object, whose version is one higher. StaleVersionError
        when someone else wrote first; NotFoundError when it is gone.
        """
        ...

    def delete(self, test_id: str) -> None:
        """Delete the test with its runs and their metrics.

        ActiveRunError while one of its runs is active; NotFoundError if absent.
        """
        ...

    def find(self, filter: LoadTestFilter) -> list[LoadTest]:  # noqa: A002
        """Tests matching ``filter``, oldest first (then by id), at most ``limit``."""
        ...


@runtime_checkable
class LoadTestRunRepository(Protocol):
    """Stores runs, and through them the per-cluster lease."""

    def add(self, run: LoadTestRun) -> LoadTestRun:
        """Store a new run, taking its cluster's lease if the run is active.

        ClusterBusyError (naming the holder) if another active run has the
        cluster; NotFoundError if its load test does not exist; DuplicateError if
        the id exists.
        """
        ...

    def get(self, run_id: str) -> LoadTestRun:
        """The run with that id; NotFoundError if there is none."""
        ...

    def update(self, run: LoadTestRun) -> LoadTestRun:
        """Compare-and-set on ``version``, as for load tests."""
        ...

    def find(self, filter: RunFilter) -> list[LoadTestRun]:  # noqa: A002
        """Runs matching ``filter``, oldest first (then by id), at most ``limit``."""
        ...

    def active_on_cluster(self, cluster_id: str) -> LoadTestRun | None:
        """The run holding ``cluster_id``'s lease, if any."""
        ...

    def claim_monitor(self, run_id: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the right to monitor an active run, until ``now + ttl``.

        Succeeds when nobody holds it, ``owner`` already does, or the holder let
        it expire; fails for a run that is not active (or does not exist). Kept
        beside the run, not in it, so renewing never bumps the run's version.
        """
        ...

    def claim_monitors(
        self, run_ids: Collection[str], owner: str, *, now: datetime, ttl: timedelta
    ) -> set[str]:
        """:meth:`claim_monitor` for many runs at once; the ids it took or renewed.

        The Monitor renews every claim due in a tick with one call, so a SQL
        backend writes them in one statement instead of a transaction each.
        """
        ...

    def release_monitor(self, run_id: str, owner: str) -> None:
        """Give up the monitoring claim if ``owner`` holds it."""
        ...

    def monitor_of(self, run_id: str) -> MonitorClaim | None:
        """The run's monitoring claim as stored (possibly expired), if any."""
        ...


@runtime_checkable
class MetricsRepository(Protocol):
    """Stores the snapshots of runs and answers time-series queries."""

    def add(self, snapshot: MetricSnapshot) -> bool:
        """Store one snapshot; ``False`` (and nothing written) if its slot is taken.

        A run keeps at most one snapshot per ``slot``; snapshots without a slot
        are always stored.
        """
        ...

    def add_many(self, snapshots: Iterable[MetricSnapshot]) -> int:
        """Store many snapshots in one go; returns how many were stored."""
        ...

    def snapshots(
        self,
        run_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[MetricSnapshot]:
        """A run's snapshots with ``start <= timestamp < end``, oldest first."""
        ...

    def series(
        self,
        run_id: str,
        buckets: int,
        *,
        endpoint: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SeriesBucket]:
        """A run's snapshots downsampled into at most ``buckets`` equal buckets.

        Computed by the backend itself. Without ``start``/``end`` the run's first
        and last snapshot bound the window. Buckets of 10 s or more are laid on
        a rollup level (:meth:`~loadmanager.filters.SeriesWindow.laid_out`): the
        window widens to whole cells of 10 s, 1 min or 10 min, each bucket is a
        whole number of them, and a backend may answer from rolled-up cells.
        Empty buckets are left out. With
        ``endpoint`` (``"GET /items"``) the figures are that endpoint's: its
        current rps and failures/s, its median as p50 and its p95; the user
        count stays the run's.
        """
        ...

    def histogram_changes(
        self,
        run_id: str,
        *,
        endpoint: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[tuple[datetime, dict[int, int]]]:
        """One endpoint's histogram changes, snapshot by snapshot, oldest first.

        For each of the run's snapshots with ``start <= timestamp < end`` that
        carries histogram changes (loadmanager's Locust plugin): its timestamp
        and the change of ``endpoint`` (``"GET /items"``; every request by
        default), ``{bucket_ms: requests}``, empty when none of its requests
        ended in that interval. Snapshots without any (a master without the
        plugin) are left out. The same as :meth:`snapshots` and
        :meth:`MetricSnapshot.histogram`, without reading the rest of each
        snapshot: exact percentiles over long windows read this.
        """
        ...

    def peak_worker_cpu(self, run_id: str) -> float | None:
        """The highest CPU % any worker reported in any of a run's snapshots.

        ``None`` when no snapshot has a worker's report. The end of a run
        reads this, not every snapshot, for its saturation warning.
        """
        ...

    def count(self, run_id: str) -> int:
        """How many snapshots a run has."""
        ...


@runtime_checkable
class LocustfileRepository(Protocol):
    """Stores locustfiles: versions of a (tenant, name), never changed once written."""

    def add(self, locustfile: Locustfile) -> Locustfile:
        """Store a new version; it must be one above the latest (1 for a new name).

        StaleVersionError when another version was written first (the caller
        reads the latest again and retries).
        """
        ...

    def get(self, tenant_id: str, name: str, version: int | None = None) -> Locustfile:
        """That version, or the latest; NotFoundError if there is none."""
        ...

    def find(self, tenant_id: str) -> list[Locustfile]:
        """The latest version of each of the tenant's locustfiles, by name."""
        ...

    def versions(self, tenant_id: str, name: str) -> list[int]:
        """The versions stored of a name, oldest first (empty when there are none)."""
        ...

    def delete(self, tenant_id: str, name: str) -> int:
        """Delete every version of a name; how many there were (NotFoundError if none)."""
        ...


class Storage(Protocol):
    """The three repositories of one backend, opened and closed together."""

    @property
    def url(self) -> str:
        """The URL this storage was opened with (credentials removed)."""
        ...

    @property
    def load_tests(self) -> LoadTestRepository:
        """The load test repository."""
        ...

    @property
    def runs(self) -> LoadTestRunRepository:
        """The run repository (and cluster leases)."""
        ...

    @property
    def metrics(self) -> MetricsRepository:
        """The metrics repository."""
        ...

    @property
    def locustfiles(self) -> LocustfileRepository:
        """The stored locustfiles."""
        ...

    def close(self) -> None:
        """Release the backend's connections; the repositories are unusable after."""
        ...

    def __enter__(self) -> Storage: ...

    def __exit__(self, *exc_info: object) -> None: ...


Versioned = TypeVar("Versioned", LoadTest, LoadTestRun)


def bumped(model: Versioned) -> Versioned:
    """The object as an update stores it: one version higher."""
    return attrs.evolve(model, version=model.version + 1)


class AddsOne:
    """``add`` in terms of ``add_many``, for metrics repositories."""

    def add_many(self, snapshots: Iterable[MetricSnapshot]) -> int:
        raise NotImplementedError

    def add(self, snapshot: MetricSnapshot) -> bool:
        """Store one snapshot; ``False`` if its slot was taken."""
        return self.add_many([snapshot]) == 1


MAX_KEY = 1024
"""The longest id, cluster id or owner name a repository looks up."""


def _key(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ValidationError.single(camel(name), "must be a string")
    if len(value) > MAX_KEY:
        raise ValidationError.single(camel(name), f"must be at most {MAX_KEY} characters")
    problem = unicode_problem(value)
    if problem is not None:
        raise ValidationError.single(camel(name), problem)


def _keys(name: str, value: Any) -> None:
    if isinstance(value, str | bytes) or not isinstance(value, Collection):
        raise ValidationError.single(camel(name), "must be a collection of strings")
    for item in value:
        _key(name, item)


def _time(name: str, value: Any) -> None:
    if value is None and name != "now":
        return
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError.single(camel(name), "must be a datetime with a time zone")


def _limit(name: str, value: Any) -> None:
    if value is not None and (not is_whole(value) or value < 0):
        raise ValidationError.single(name, "must be a whole number >= 0, or None")


def _endpoint(name: str, value: Any) -> None:
    if value is not None:
        _key(name, value)


def _version(name: str, value: Any) -> None:
    if value is not None and (not is_whole(value) or value < 1):
        raise ValidationError.single(name, "must be a whole number >= 1, or None")


def _ttl(name: str, value: Any) -> None:
    if not isinstance(value, timedelta):
        raise ValidationError.single(name, "must be a timedelta")


_ARGUMENT_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "test_id": _key,
    "run_id": _key,
    "run_ids": _keys,
    "cluster_id": _key,
    "owner": _key,
    "tenant_id": _key,
    "name": _key,
    "version": _version,
    "start": _time,
    "end": _time,
    "now": _time,
    "limit": _limit,
    "endpoint": _endpoint,
    "ttl": _ttl,
    "buckets": lambda name, value: check_buckets(value),
}

F = TypeVar("F", bound=Callable[..., Any])


def checked(method: F) -> F:
    """Check a repository method's plain arguments by their names, before any I/O.

    Every backend refuses the same bad arguments (a dict for an id, a naive
    datetime, ``limit=-1``) with the same ValidationError, instead of each
    driver failing in its own way.
    """
    # Positions are worked out once: binding the signature on every call would
    # cost more than the check itself on the Monitor's hot path.
    params = list(inspect.signature(method).parameters.values())
    checks = [
        (p.name, i if p.kind is p.POSITIONAL_OR_KEYWORD else None, _ARGUMENT_CHECKS[p.name])
        for i, p in enumerate(params)
        if p.name in _ARGUMENT_CHECKS
    ]

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name, position, check in checks:
            if name in kwargs:
                check(name, kwargs[name])
            elif position is not None and position < len(args):
                check(name, args[position])
        return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_buckets(buckets: int) -> None:
    """Refuse a bucket count no backend should try to compute."""
    if not is_whole(buckets) or not 1 <= buckets <= 100_000:
        raise ValidationError.single("buckets", "must be a whole number from 1 to 100000")
