"""The read side: load tests, runs and their metrics, as a caller may see them.

:class:`~loadmanager.Orchestrator` builds on it. Nothing here changes a run, so
it needs no Locust master and no lifecycle. Another tenant's objects answer
NotFoundError, exactly like missing ones, so their existence is never revealed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import datetime, timedelta

from . import _constraints as c
from .clock import Clock
from .comparison import Comparison, Tolerances, compare
from .errors import ClusterBusyError, NotFoundError, PermissionDeniedError
from .filters import DEFAULT_LIMIT, MAX_LIMIT, LoadTestFilter, RunFilter
from .histograms import TrailingHistogram, as_percentiles, merge, percentile
from .metrics import (
    AGGREGATED,
    EndpointStats,
    EndpointSummary,
    Failure,
    MetricSnapshot,
    Percentiles,
    SeriesBucket,
)
from .models import LoadTest, LoadTestRun
from .queries import TrendPoint, resolve_baseline, trend_points
from .repositories import Storage
from .status import ACTIVE_STATUSES, RunStatus

__all__ = ["Catalog", "Tenants"]

Tenants = Collection[str] | None
"""The tenants a caller may act for; ``None`` means every tenant (a trusted caller)."""


class Catalog:
    """Tenant-scoped reads over one storage (the Orchestrator's read methods)."""

    storage: Storage
    clock: Clock
    _closed: bool = False

    @staticmethod
    def _visible(tenant_id: str, tenants: Tenants) -> bool:
        scope = c.checked_tenants(tenants)
        return scope is None or tenant_id in scope

    def _check_writable(self, tenant_id: str, tenants: Tenants) -> None:
        if not self._visible(tenant_id, tenants):
            raise PermissionDeniedError(tenant_id)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Orchestrator is closed")

    # -- load tests ----------------------------------------------------------------

    def get_load_test(self, load_test_id: str, *, tenants: Tenants = None) -> LoadTest:
        """The load test, or NotFoundError (also for another tenant's)."""
        self._check_open()
        test = self.storage.load_tests.get(load_test_id)
        if not self._visible(test.tenant_id, tenants):
            raise NotFoundError("LoadTest", load_test_id)
        return test

    def list_load_tests(
        self,
        *,
        tenant_id: str | None = None,
        env_id: str | None = None,
        tags: Iterable[str] | None = None,
        name_contains: str | None = None,
        created_by: str | None = None,
        limit: int = DEFAULT_LIMIT,
        tenants: Tenants = None,
    ) -> list[LoadTest]:
        """Load tests matching every given filter, oldest first; ``tags``: all of them."""
        self._check_open()
        return self.storage.load_tests.find(
            LoadTestFilter(
                tenant_id=tenant_id,
                tenant_ids=c.checked_tenants(tenants),
                env_id=env_id,
                tags=tags,
                name_contains=name_contains,
                created_by=created_by,
                limit=limit,
            )
        )

    def baseline(self, load_test_id: str, *, tenants: Tenants = None) -> LoadTestRun | None:
        """The run this test's relative criteria would compare with if it started now."""
        test = self.get_load_test(load_test_id, tenants=tenants)
        return resolve_baseline(self.storage.runs, test)

    # -- runs ----------------------------------------------------------------------

    def get_run(self, run_id: str, *, tenants: Tenants = None) -> LoadTestRun:
        """The run, or NotFoundError (also for another tenant's)."""
        self._check_open()
        run = self.storage.runs.get(run_id)
        if not self._visible(run.tenant_id, tenants):
            raise NotFoundError("LoadTestRun", run_id)
        return run

    def list_runs(
        self,
        *,
        load_test_id: str | None = None,
        tenant_id: str | None = None,
        env_id: str | None = None,
        locust_cluster_id: str | None = None,
        statuses: Iterable[RunStatus | str] | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        tenants: Tenants = None,
    ) -> list[LoadTestRun]:
        """Runs of one test, or across tests, matching every given filter."""
        self._check_open()
        return self.storage.runs.find(
            RunFilter(
                load_test_id=load_test_id,
                tenant_id=tenant_id,
                tenant_ids=c.checked_tenants(tenants),
                env_id=env_id,
                locust_cluster_id=locust_cluster_id,
                statuses=statuses,  # the filter checks and converts it
                started_after=started_after,
                started_before=started_before,
                limit=limit,
            )
        )

    def _busy_as_seen_by(self, exc: ClusterBusyError, tenants: Tenants) -> ClusterBusyError:
        """The busy error, naming the holder only if the caller may see it."""
        if exc.active_run_id is None:
            return exc
        try:
            self.get_run(exc.active_run_id, tenants=tenants)
        except NotFoundError:
            return ClusterBusyError(exc.cluster_id, None)
        return exc

    def failures(self, run_id: str, *, tenants: Tenants = None) -> list[Failure]:
        """The run's failures, most frequent first: Locust's complete table once
        the run has ended, the latest snapshot's (the top 100) while it runs."""
        run = self.get_run(run_id, tenants=tenants)
        if not run.is_active and run.summary is not None:
            found = list(run.failures)
        else:
            latest = self._latest(run)
            found = list(latest.failures) if latest is not None else []
        return sorted(found, key=lambda f: (-f.occurrences, f.key, f.error))

    def latest_snapshot(self, run_id: str, *, tenants: Tenants = None) -> MetricSnapshot | None:
        """The run's newest snapshot: one of the last three poll intervals while
        it runs (an older one is not "now"), its last one once it has ended."""
        return self._latest(self.get_run(run_id, tenants=tenants))

    def _latest(self, run: LoadTestRun) -> MetricSnapshot | None:
        since = self.clock.now() - timedelta(seconds=3 * run.parameters.poll_interval)
        recent = self.storage.metrics.snapshots(run.id, start=since if run.is_active else None)
        return recent[-1] if recent else None

    def load_test_of(self, run: LoadTestRun, *, tenants: Tenants = None) -> LoadTest | None:
        """The run's load test; ``None`` when it was deleted since the run (or
        lies outside ``tenants``), so a summary or a page goes on without it."""
        try:
            return self.get_load_test(run.load_test_id, tenants=tenants)
        except NotFoundError:
            return None

    def percentiles(
        self,
        run_id: str,
        *,
        endpoint: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        tenants: Tenants = None,
    ) -> Percentiles | None:
        """Exact percentiles of the requests between ``start`` and ``end`` (all by default).

        Summed from the histogram changes the snapshots store with
        loadmanager's Locust plugin, so any window and any endpoint
        (``"GET /items"``; the aggregated by default) is exact to Locust's
        rounding; the whole of an ended run (no ``start``/``end``) comes from
        its final histograms and equals Locust's final CSV. ``None`` when the
        run has no histograms (its master ran without the plugin) or no
        request fell in the window.
        """
        run = self.get_run(run_id, tenants=tenants)
        if start is None and end is None and run.summary and run.summary.histograms:
            # The whole of an ended run: the final histograms, which include the
            # workers' last reports that came after the last snapshot.
            return as_percentiles(run.summary.histogram(endpoint or AGGREGATED) or {})
        return as_percentiles(merge(self._changes(run_id, endpoint, start, end)))

    def _changes(
        self,
        run_id: str,
        endpoint: str | None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Iterator[dict[int, int]]:
        changes = self.storage.metrics.histogram_changes(
            run_id, endpoint=endpoint, start=start, end=end
        )
        return (change for _, change in changes)

    def percentile_series(
        self,
        run_id: str,
        *,
        endpoint: str | None = None,
        fraction: float = 0.95,
        window: float = 10.0,
        start: datetime | None = None,
        end: datetime | None = None,
        tenants: Tenants = None,
    ) -> list[tuple[datetime, float | None]]:
        """At each snapshot, the exact percentile of the requests of the last ``window`` seconds.

        From the stored histogram changes (loadmanager's Locust plugin), for
        the aggregate or one endpoint. Empty when the run has no histograms.
        A moment without requests in its window has ``None``.
        """
        self.get_run(run_id, tenants=tenants)
        since = None if start is None else start - timedelta(seconds=window)
        changes = self.storage.metrics.histogram_changes(
            run_id, endpoint=endpoint, start=since, end=end
        )
        trailing = TrailingHistogram(timedelta(seconds=window))
        points: list[tuple[datetime, float | None]] = []
        for at, change in changes:
            inside = trailing.push(at, change)
            if start is not None and at < start:
                continue
            value = percentile(inside, fraction)
            points.append((at, None if value is None else float(value)))
        return points

    def merged_percentiles(
        self, run_ids: Iterable[str], *, endpoint: str | None = None, tenants: Tenants = None
    ) -> Percentiles | None:
        """Exact percentiles of several runs' requests together (merged histograms).

        Never an average of percentiles. ``None`` when none of the runs has
        histograms.
        """
        histograms: list[dict[int, int]] = []
        for run_id in run_ids:
            run = self.get_run(run_id, tenants=tenants)
            if run.summary is not None and run.summary.histograms:
                histograms.append(run.summary.histogram(endpoint or AGGREGATED) or {})
            else:  # still running: what its snapshots have so far
                histograms += self._changes(run_id, endpoint)
        return as_percentiles(merge(histograms))

    def unmonitored_runs(self, *, tenants: Tenants = None) -> list[LoadTestRun]:
        """Active runs that no live replica monitors (their claim is absent or expired).

        A run stays here while no replica sharing the store knows its cluster:
        register the cluster on a replica (or call ``reconcile`` on one that
        knows it) and it is monitored again. Such runs are never failed for it.
        """
        now = self.clock.now()
        found = []
        for run in self.list_runs(statuses=ACTIVE_STATUSES, limit=MAX_LIMIT, tenants=tenants):
            claim = self.storage.runs.monitor_of(run.id)
            if claim is None or claim.expires_at < now:
                found.append(run)
        return found

    # -- metrics -------------------------------------------------------------------

    def snapshots(
        self,
        run_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
        tenants: Tenants = None,
    ) -> list[MetricSnapshot]:
        """The run's stored snapshots, oldest first."""
        self.get_run(run_id, tenants=tenants)
        return self.storage.metrics.snapshots(run_id, start=start, end=end, limit=limit)

    def series(
        self,
        run_id: str,
        buckets: int = 100,
        *,
        endpoint: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        tenants: Tenants = None,
    ) -> list[SeriesBucket]:
        """The run's snapshots downsampled to at most ``buckets`` buckets, in the backend.

        Buckets 10 s wide or wider are aligned to a rollup level (10 s, 1 min,
        10 min) and answered from rolled-up cells; see
        :meth:`~loadmanager.filters.SeriesWindow.laid_out`.

        Args:
            endpoint: ``"GET /items"`` for that endpoint's own figures.
        """
        self.get_run(run_id, tenants=tenants)
        return self.storage.metrics.series(run_id, buckets, endpoint=endpoint, start=start, end=end)

    def endpoint_stats(
        self, run_id: str, *, tenants: Tenants = None
    ) -> tuple[EndpointSummary, ...] | tuple[EndpointStats, ...]:
        """Per-endpoint figures of a run, the aggregated row last for an ended run.

        An ended run answers Locust's final figures (its summary); a live one the
        rows of its latest snapshot.
        """
        run = self.get_run(run_id, tenants=tenants)
        if run.summary is not None:
            return (*run.summary.endpoints, run.summary.aggregated)
        latest = self.storage.metrics.snapshots(run.id)
        return latest[-1].endpoints if latest else ()

    def trend(
        self,
        load_test_id: str,
        *,
        statuses: Iterable[RunStatus | str] | None = (RunStatus.FINISHED, RunStatus.STOPPED),
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        tenants: Tenants = None,
    ) -> list[TrendPoint]:
        """A load test's runs over time: p95, rps, error ratio and verdict of each."""
        self.get_load_test(load_test_id, tenants=tenants)
        runs = self.list_runs(
            load_test_id=load_test_id,
            statuses=statuses,
            started_after=started_after,
            started_before=started_before,
            limit=limit,
            tenants=tenants,
        )
        return trend_points(runs)

    def compare(
        self,
        run_id: str,
        baseline_run_id: str,
        *,
        tolerances: Tolerances = Tolerances(),  # noqa: B008 - frozen, so safe to share
        tenants: Tenants = None,
    ) -> Comparison:
        """Compare two ended runs (of any tests), endpoint by endpoint."""
        run = self.get_run(run_id, tenants=tenants)
        baseline = self.get_run(baseline_run_id, tenants=tenants)
        return compare(run.id, run.summary, baseline.id, baseline.summary, tolerances)
