"""In-memory repositories: the reference behaviour, for tests and throwaway work.

Everything lives in dicts behind one lock shared by the three repositories, so a
cross-repository rule (the cluster lease, the delete cascade) is one atomic step.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from ..clock import to_millis
from ..errors import (
    ActiveRunError,
    ClusterBusyError,
    DuplicateError,
    NotFoundError,
    StaleVersionError,
)
from ..filters import LoadTestFilter, RunFilter
from ..locustfiles import Locustfile
from ..metrics import AGGREGATED, MetricSnapshot, SeriesBucket
from ..models import LoadTest, LoadTestRun
from ._columns import SeriesColumns, bucketed, cells_bucketed
from ._protocols import AddsOne, MonitorClaim, bumped, checked
from ._series import window_for

__all__ = [
    "MemoryLoadTestRepository",
    "MemoryLoadTestRunRepository",
    "MemoryLocustfileRepository",
    "MemoryMetricsRepository",
    "MemoryStorage",
]


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tests: dict[str, LoadTest] = {}
        self.runs: dict[str, LoadTestRun] = {}
        self.snapshots: dict[str, list[MetricSnapshot]] = {}
        # Per run, the series columns of the whole run (None) and of endpoints.
        self.columns: dict[str, dict[str | None, SeriesColumns]] = {}
        self.monitors: dict[str, tuple[str, datetime]] = {}
        self.slots: dict[str, set[int]] = {}
        self.locustfiles: dict[tuple[str, str], list[Locustfile]] = {}


def _order(created_at: datetime, object_id: str) -> tuple[int, str]:
    return (to_millis(created_at), object_id)


def _matches_test(test: LoadTest, f: LoadTestFilter) -> bool:
    return (
        (f.tenant_id is None or test.tenant_id == f.tenant_id)
        and (f.tenant_ids is None or test.tenant_id in f.tenant_ids)
        and (f.env_id is None or test.env_id == f.env_id)
        and (f.tags is None or set(f.tags) <= set(test.tags))
        and (f.name_contains is None or f.name_contains in test.name)
        and (f.created_by is None or test.audit.created_by == f.created_by)
    )


def _matches_run(run: LoadTestRun, f: RunFilter) -> bool:
    started = run.started_at
    return (
        (f.load_test_id is None or run.load_test_id == f.load_test_id)
        and (f.tenant_id is None or run.tenant_id == f.tenant_id)
        and (f.tenant_ids is None or run.tenant_id in f.tenant_ids)
        and (f.env_id is None or run.env_id == f.env_id)
        and (f.locust_cluster_id is None or run.locust_cluster_id == f.locust_cluster_id)
        and (f.statuses is None or run.status in f.statuses)
        and (f.started_after is None or (started is not None and started >= f.started_after))
        and (f.started_before is None or (started is not None and started < f.started_before))
    )


class MemoryLoadTestRepository:
    """Load tests in a dict."""

    def __init__(self, state: _State) -> None:
        self._s = state

    def add(self, test: LoadTest) -> LoadTest:
        with self._s.lock:
            if test.id in self._s.tests:
                raise DuplicateError("LoadTest", test.id)
            self._s.tests[test.id] = test
            return test

    @checked
    def get(self, test_id: str) -> LoadTest:
        with self._s.lock:
            try:
                return self._s.tests[test_id]
            except KeyError:
                raise NotFoundError("LoadTest", test_id) from None

    def update(self, test: LoadTest) -> LoadTest:
        with self._s.lock:
            current = self.get(test.id)
            if current.version != test.version:
                raise StaleVersionError("LoadTest", test.id, test.version, current.version)
            stored = bumped(test)
            self._s.tests[test.id] = stored
            return stored

    @checked
    def delete(self, test_id: str) -> None:
        with self._s.lock:
            self.get(test_id)
            runs = [r for r in self._s.runs.values() if r.load_test_id == test_id]
            active = next((r for r in runs if r.is_active), None)
            if active is not None:
                raise ActiveRunError(test_id, active.id)
            for run in runs:
                self._s.snapshots.pop(run.id, None)
                self._s.columns.pop(run.id, None)
                self._s.slots.pop(run.id, None)
                self._s.monitors.pop(run.id, None)
                del self._s.runs[run.id]
            del self._s.tests[test_id]

    def find(self, filter: LoadTestFilter) -> list[LoadTest]:  # noqa: A002
        with self._s.lock:
            found = [t for t in self._s.tests.values() if _matches_test(t, filter)]
        found.sort(key=lambda t: _order(t.audit.created_at, t.id))
        return found[: filter.limit]


class MemoryLoadTestRunRepository:
    """Runs in a dict; the lease is checked under the shared lock."""

    def __init__(self, state: _State) -> None:
        self._s = state

    def add(self, run: LoadTestRun) -> LoadTestRun:
        with self._s.lock:
            if run.id in self._s.runs:
                raise DuplicateError("LoadTestRun", run.id)
            if run.load_test_id not in self._s.tests:
                raise NotFoundError("LoadTest", run.load_test_id)
            if run.is_active and run.exclusive:
                holder = self.active_on_cluster(run.locust_cluster_id)
                if holder is not None:
                    raise ClusterBusyError(run.locust_cluster_id, holder.id)
            self._s.runs[run.id] = run
            return run

    @checked
    def get(self, run_id: str) -> LoadTestRun:
        with self._s.lock:
            try:
                return self._s.runs[run_id]
            except KeyError:
                raise NotFoundError("LoadTestRun", run_id) from None

    def update(self, run: LoadTestRun) -> LoadTestRun:
        with self._s.lock:
            current = self.get(run.id)
            if current.version != run.version:
                raise StaleVersionError("LoadTestRun", run.id, run.version, current.version)
            if run.is_active and run.exclusive and not current.is_active:
                holder = self.active_on_cluster(run.locust_cluster_id)
                if holder is not None:
                    raise ClusterBusyError(run.locust_cluster_id, holder.id)
            stored = bumped(run)
            self._s.runs[run.id] = stored
            return stored

    def find(self, filter: RunFilter) -> list[LoadTestRun]:  # noqa: A002
        with self._s.lock:
            found = [r for r in self._s.runs.values() if _matches_run(r, filter)]
        found.sort(key=lambda r: _order(r.audit.created_at, r.id))
        return found[: filter.limit]

    @checked
    def active_on_cluster(self, cluster_id: str) -> LoadTestRun | None:
        with self._s.lock:
            return next(
                (
                    r
                    for r in self._s.runs.values()
                    if r.locust_cluster_id == cluster_id and r.is_active and r.exclusive
                ),
                None,
            )

    @checked
    def claim_monitor(self, run_id: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        with self._s.lock:
            run = self._s.runs.get(run_id)
            if run is None or not run.is_active:
                return False
            holder = self._s.monitors.get(run_id)
            if holder is not None and holder[0] != owner and holder[1] > now:
                return False
            self._s.monitors[run_id] = (owner, now + ttl)
            return True

    @checked
    def claim_monitors(
        self, run_ids: Collection[str], owner: str, *, now: datetime, ttl: timedelta
    ) -> set[str]:
        return {r for r in set(run_ids) if self.claim_monitor(r, owner, now=now, ttl=ttl)}

    @checked
    def release_monitor(self, run_id: str, owner: str) -> None:
        with self._s.lock:
            holder = self._s.monitors.get(run_id)
            if holder is not None and holder[0] == owner:
                del self._s.monitors[run_id]

    @checked
    def monitor_of(self, run_id: str) -> MonitorClaim | None:
        with self._s.lock:
            holder = self._s.monitors.get(run_id)
        return None if holder is None else MonitorClaim(holder[0], holder[1])


class MemoryMetricsRepository(AddsOne):
    """Snapshots in per-run lists kept in time order."""

    def __init__(self, state: _State) -> None:
        self._s = state

    def add_many(self, snapshots: Iterable[MetricSnapshot]) -> int:
        items = list(snapshots)
        stored = 0
        with self._s.lock:
            missing = sorted({s.load_test_run_id for s in items} - self._s.runs.keys())
            if missing:
                raise NotFoundError("LoadTestRun", missing[0])
            for snap in items:
                if snap.slot is not None:
                    taken = self._s.slots.setdefault(snap.load_test_run_id, set())
                    if snap.slot in taken:
                        continue
                    taken.add(snap.slot)
                stored += 1
                series = self._s.snapshots.setdefault(snap.load_test_run_id, [])
                if not series or series[-1].timestamp <= snap.timestamp:
                    series.append(snap)  # the usual case: snapshots arrive in order
                else:
                    bisect.insort(series, snap, key=lambda s: s.timestamp)
                    self._s.columns.pop(snap.load_test_run_id, None)  # rebuilt on next read
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
        with self._s.lock:
            items = list(self._s.snapshots.get(run_id, ()))
        found = [
            s
            for s in items
            if (start is None or s.timestamp >= start) and (end is None or s.timestamp < end)
        ]
        return found if limit is None else found[:limit]

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
        start_ms = None if start is None else to_millis(start)
        end_ms = None if end is None else to_millis(end)
        with self._s.lock:
            stored = self._s.snapshots.get(run_id, [])
            by_endpoint = self._s.columns.setdefault(run_id, {})
            whole = by_endpoint.setdefault(None, SeriesColumns(None))
            whole.extend(stored)
            columns = whole
            if endpoint is not None:
                columns = by_endpoint.setdefault(endpoint, SeriesColumns(endpoint))
                columns.extend(stored)
            # The window is laid over every snapshot in range, as the other
            # backends do, even when the endpoint is missing from some.
            lo, hi = whole.bounds(start_ms, end_ms)
            first = whole.ts[lo] if hi > lo else None
            last = whole.ts[hi - 1] if hi > lo else None
            limit = len(columns.ts)
            window = window_for(start, end, first, last, buckets)
            if window is None:
                return []
            if window.level_ms:  # a copy of the cells in the window, for outside the lock
                level = columns.level(window.level_ms)
                lo = bisect.bisect_left(level.cells, window.start_ms // window.level_ms)
                hi = bisect.bisect_left(level.cells, window.end_ms // window.level_ms)
                cells = level.copy(lo, hi)
        if window.level_ms:
            return cells_bucketed(window, cells)
        return bucketed(window, columns, limit)

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
        return [
            (s.timestamp, s.histogram(key) or {})
            for s in self.snapshots(run_id, start=start, end=end)
            if s.histograms
        ]

    @checked
    def peak_worker_cpu(self, run_id: str) -> float | None:
        with self._s.lock:
            stored = list(self._s.snapshots.get(run_id, ()))
        return max((w.cpu_usage for s in stored for w in s.workers), default=None)

    @checked
    def count(self, run_id: str) -> int:
        with self._s.lock:
            return len(self._s.snapshots.get(run_id, ()))


class MemoryLocustfileRepository:
    """Locustfile versions in per-(tenant, name) lists."""

    def __init__(self, state: _State) -> None:
        self._s = state

    def add(self, locustfile: Locustfile) -> Locustfile:
        key = (locustfile.tenant_id, locustfile.name)
        with self._s.lock:
            versions = self._s.locustfiles.setdefault(key, [])
            latest = versions[-1].version if versions else 0
            if locustfile.version != latest + 1:
                raise StaleVersionError(
                    "Locustfile", locustfile.name, locustfile.version - 1, latest
                )
            versions.append(locustfile)
        return locustfile

    @checked
    def get(self, tenant_id: str, name: str, version: int | None = None) -> Locustfile:
        with self._s.lock:
            versions = list(self._s.locustfiles.get((tenant_id, name), ()))
        found = [v for v in versions if version is None or v.version == version]
        if not found:
            raise NotFoundError("Locustfile", name if version is None else f"{name}@{version}")
        return found[-1]

    @checked
    def find(self, tenant_id: str) -> list[Locustfile]:
        with self._s.lock:
            latest = [v[-1] for (t, _), v in self._s.locustfiles.items() if t == tenant_id and v]
        return sorted(latest, key=lambda f: f.name)

    @checked
    def versions(self, tenant_id: str, name: str) -> list[int]:
        with self._s.lock:
            return [v.version for v in self._s.locustfiles.get((tenant_id, name), ())]

    @checked
    def delete(self, tenant_id: str, name: str) -> int:
        with self._s.lock:
            versions = self._s.locustfiles.pop((tenant_id, name), [])
        if not versions:
            raise NotFoundError("Locustfile", name)
        return len(versions)


class MemoryStorage:
    """The in-memory backend (``memory://``). Nothing survives the process."""

    def __init__(self) -> None:
        state = _State()
        self.url = "memory://"
        self.load_tests = MemoryLoadTestRepository(state)
        self.runs = MemoryLoadTestRunRepository(state)
        self.metrics = MemoryMetricsRepository(state)
        self.locustfiles = MemoryLocustfileRepository(state)

    def close(self) -> None:
        """Nothing to release; present so every backend closes the same way."""

    def __enter__(self) -> MemoryStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "MemoryStorage('memory://')"
