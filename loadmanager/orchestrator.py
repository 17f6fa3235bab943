"""The Orchestrator: load tests and runs over storage and Locust clusters.

Everything a host calls lives here; every method takes the caller's identity as
``actor`` (written to audits) and, for multi-tenant hosts, the ``tenants`` the
caller may act for. Another tenant's objects answer NotFoundError, exactly like
missing ones, so their existence is never revealed.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ._progress import Progress, describe
from ._serialization import from_json, to_json
from .clock import Clock, IdFactory, new_id, utc_now
from .clusters import ClientFactory, ClusterRegistry, default_client_factory
from .comparison import Comparison, Tolerances, compare
from .errors import (
    LocustError,
    NotFoundError,
    PermissionDeniedError,
    StaleVersionError,
    ValidationError,
    WaitTimeoutError,
)
from .filters import DEFAULT_LIMIT, LoadTestFilter, RunFilter
from .metrics import EndpointStats, EndpointSummary, MetricSnapshot, SeriesBucket
from .models import LoadTest, LoadTestRun, LoadTestSpec, RunOverrides
from .monitor import ClientPool, Monitor, resolve_baseline
from .queries import TrendPoint, trend_points
from .report import write_report
from .repositories import Storage
from .status import RunStatus

__all__ = ["Orchestrator"]

log = logging.getLogger("loadmanager")

Tenants = Collection[str] | None


def _check_actor(actor: object) -> str:
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 256:
        raise ValidationError.single(
            "actor", "must be a non-empty identity of at most 256 characters"
        )
    return actor


def _check_claim(claimed: str | None, actor: str) -> None:
    # The seed's bodies carry createdBy; the identity that counts is the caller's.
    if claimed is not None and claimed != actor:
        raise ValidationError.single(
            "createdBy", "must be left out or equal the caller's identity; it is never trusted"
        )


class Orchestrator:
    """Load tests, runs and their monitoring, on one storage and a cluster registry.

    Args:
        storage: From :func:`loadmanager.connect`; the caller keeps ownership.
        clusters: Which Locust master serves each ``locustClusterId``.
        clock: Time source (UTC, millisecond precision).
        id_factory: Makes ids for new tests and runs.
        client_factory: Builds a LocustClient for a cluster's settings.
        poll_interval: Seconds between two polls of a run (Locust caches 2 s).
        monitor: Start the background Monitor thread. Without it, ``wait`` and
            ``refresh`` poll in the caller's thread.
        owner: This replica's name in monitoring claims (unique by default).
        settle: Seconds to wait after a run stops for the workers' last reports.
        system_actor: The identity in audits of changes the Monitor makes.

    Close it with :meth:`close`, or use it as a context manager.
    """

    def __init__(
        self,
        storage: Storage,
        clusters: ClusterRegistry,
        *,
        clock: Clock = utc_now,
        id_factory: IdFactory = new_id,
        client_factory: ClientFactory = default_client_factory,
        poll_interval: float = 2.0,
        monitor: bool = True,
        owner: str | None = None,
        settle: float = 3.5,
        system_actor: str = "loadmanager",
    ) -> None:
        self.storage = storage
        self.clusters = clusters
        self._clock = clock
        self._new_id = id_factory
        self._clients = ClientPool(clusters, client_factory)
        self.poll_interval = poll_interval
        self.owner = owner or f"orchestrator-{uuid.uuid4().hex[:12]}"
        self.monitor = Monitor(
            storage,
            self._clients,
            clock=clock,
            owner=self.owner,
            interval=poll_interval,
            settle=settle,
            actor=system_actor,
        )
        self._closed = False
        if monitor:
            self.monitor.start()

    # -- scoping ---------------------------------------------------------------

    @staticmethod
    def _visible(tenant_id: str, tenants: Tenants) -> bool:
        return tenants is None or tenant_id in tenants

    def _check_writable(self, tenant_id: str, tenants: Tenants) -> None:
        if not self._visible(tenant_id, tenants):
            raise PermissionDeniedError(tenant_id)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Orchestrator is closed")

    # -- load tests --------------------------------------------------------------

    def create_load_test(
        self, payload: Mapping[str, Any] | LoadTestSpec, *, actor: str, tenants: Tenants = None
    ) -> LoadTest:
        """Create a load test from the seed's camelCase body (or a spec).

        Raises:
            ValidationError: a bad body, an unknown cluster, or a ``createdBy``
                that differs from ``actor``.
            PermissionDeniedError: the body's tenant is not among ``tenants``.
        """
        self._check_open()
        actor = _check_actor(actor)
        spec = payload if isinstance(payload, LoadTestSpec) else from_json(LoadTestSpec, payload)
        _check_claim(spec.created_by, actor)
        self._check_writable(spec.tenant_id, tenants)
        self.clusters.get(spec.locust_cluster_id)
        test = LoadTest.from_spec(spec, id=self._new_id(), at=self._clock(), actor=actor)
        return self.storage.load_tests.add(test)

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
                tenant_ids=None if tenants is None else tuple(tenants),
                env_id=env_id,
                tags=None if tags is None else tuple(tags),
                name_contains=name_contains,
                created_by=created_by,
                limit=limit,
            )
        )

    def update_load_test(
        self,
        load_test_id: str,
        changes: Mapping[str, Any],
        *,
        actor: str,
        expected_version: int | None = None,
        tenants: Tenants = None,
    ) -> LoadTest:
        """Apply camelCase ``changes`` (any subset of the create body).

        Args:
            expected_version: The version the caller read; StaleVersionError if
                the test changed since. Without it the update still never
                overwrites a concurrent one: it is compare-and-set either way.
        """
        actor = _check_actor(actor)
        current = self.get_load_test(load_test_id, tenants=tenants)
        if expected_version is not None and expected_version != current.version:
            raise StaleVersionError("LoadTest", load_test_id, expected_version, current.version)
        if not isinstance(changes, Mapping):
            raise ValidationError.single("", "must be an object")
        base = {k: v for k, v in to_json(current.spec()).items() if k != "createdBy"}
        spec = from_json(LoadTestSpec, {**base, **changes})
        _check_claim(spec.created_by, actor)
        self._check_writable(spec.tenant_id, tenants)
        if spec.locust_cluster_id != current.locust_cluster_id:
            self.clusters.get(spec.locust_cluster_id)
        return self.storage.load_tests.update(current.revised(spec, at=self._clock(), actor=actor))

    def delete_load_test(
        self,
        load_test_id: str,
        *,
        actor: str,
        expected_version: int | None = None,
        tenants: Tenants = None,
    ) -> None:
        """Delete a load test with its runs and their metrics.

        Raises:
            ActiveRunError: one of its runs is still active.
        """
        _check_actor(actor)
        current = self.get_load_test(load_test_id, tenants=tenants)
        if expected_version is not None and expected_version != current.version:
            raise StaleVersionError("LoadTest", load_test_id, expected_version, current.version)
        log.info("load test %s deleted by %s", load_test_id, actor)
        self.storage.load_tests.delete(load_test_id)

    def set_baseline(
        self,
        load_test_id: str,
        run_id: str | None,
        *,
        actor: str,
        tenants: Tenants = None,
    ) -> LoadTest:
        """Make ``run_id`` the run this test's relative criteria compare with.

        ``None`` returns to the default: the most recent finished run of the test
        whose verdict passed.

        Raises:
            ValidationError: the run is not an ended run of this test with a summary.
        """
        actor = _check_actor(actor)
        test = self.get_load_test(load_test_id, tenants=tenants)
        if run_id is not None:
            run = self.get_run(run_id, tenants=tenants)
            if run.load_test_id != test.id:
                raise ValidationError.single("runId", "must be a run of this load test")
            if run.summary is None:
                raise ValidationError.single("runId", "must be a run that ended with a summary")
        return self.storage.load_tests.update(
            test.with_baseline(run_id, at=self._clock(), actor=actor)
        )

    def baseline(self, load_test_id: str, *, tenants: Tenants = None) -> LoadTestRun | None:
        """The run this test's relative criteria currently compare with, if any."""
        return resolve_baseline(self.storage, self.get_load_test(load_test_id, tenants=tenants))

    # -- runs --------------------------------------------------------------------

    def start_run(
        self,
        load_test_id: str,
        overrides: Mapping[str, Any] | RunOverrides | None = None,
        *,
        actor: str,
        tenants: Tenants = None,
    ) -> LoadTestRun:
        """Start a run of a load test with its defaults, or ``overrides``.

        Takes the cluster's lease and records the run ``pending``, resets the
        master's statistics, asks it to swarm, and records ``running``.

        Raises:
            ClusterBusyError: the cluster already runs another test (named).
            LocustError: the master refused or could not be reached; the run is
                recorded ``failed`` with the reason (``exc.run_id``) and the
                cluster is free again.
        """
        actor = _check_actor(actor)
        test = self.get_load_test(load_test_id, tenants=tenants)
        if overrides is None:
            overrides = RunOverrides()
        elif not isinstance(overrides, RunOverrides):
            overrides = from_json(RunOverrides, overrides)
        _check_claim(overrides.created_by, actor)
        self.clusters.get(test.locust_cluster_id)
        params = overrides.resolve(test)
        run = self.storage.runs.add(
            LoadTestRun.new(test, params, id=self._new_id(), at=self._clock(), actor=actor)
        )
        try:
            client = self._clients.client(test.locust_cluster_id)
            client.reset_stats()
            client.swarm(
                params.target_users,
                params.spawn_rate,
                host=params.target_url,
                run_time=params.run_time,
                user_classes=params.user_classes or None,
                tags=params.tags or None,
            )
        except LocustError as exc:
            reason = f"Locust did not start the run: {exc}"
            self.storage.runs.update(
                run.transition(RunStatus.FAILED, at=self._clock(), actor=actor, reason=reason)
            )
            exc.run_id = run.id
            raise
        except BaseException:
            # Whatever broke, the cluster must not stay leased to a dead start.
            self.storage.runs.update(
                run.transition(
                    RunStatus.FAILED, at=self._clock(), actor=actor, reason="the start was aborted"
                )
            )
            raise
        running = self.storage.runs.update(
            run.transition(RunStatus.RUNNING, at=self._clock(), actor=actor)
        )
        self.monitor.claim(running.id)
        return running

    def stop_run(self, run_id: str, *, actor: str, tenants: Tenants = None) -> LoadTestRun:
        """Ask the master to stop; the run is ``stopping`` until Locust confirms.

        The Monitor (or :meth:`wait`) records ``stopped`` with the summary once
        the master says it stopped. Stopping a run that is already stopping
        returns it unchanged.

        Raises:
            InvalidTransitionError: the run is pending or has already ended.
        """
        actor = _check_actor(actor)
        run = self.get_run(run_id, tenants=tenants)
        if run.status is RunStatus.STOPPING:
            return run
        stopping = self.storage.runs.update(
            run.transition(RunStatus.STOPPING, at=self._clock(), actor=actor)
        )
        try:
            self._clients.client(run.locust_cluster_id).stop()
        except (LocustError, ValidationError) as exc:
            failed = stopping.transition(
                RunStatus.FAILED,
                at=self._clock(),
                actor=actor,
                reason=f"Locust master unreachable while stopping: {exc}",
            )
            return self.storage.runs.update(failed)
        return stopping

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
                tenant_ids=None if tenants is None else tuple(tenants),
                env_id=env_id,
                locust_cluster_id=locust_cluster_id,
                statuses=None if statuses is None else tuple(statuses),
                started_after=started_after,
                started_before=started_before,
                limit=limit,
            )
        )

    def refresh(self, run_id: str, *, tenants: Tenants = None) -> LoadTestRun:
        """Poll the run's master once now (if no other replica monitors it)."""
        run = self.get_run(run_id, tenants=tenants)
        if run.is_active and (run.status is RunStatus.PENDING or self.monitor.claim(run_id)):
            return self.monitor.poll(run_id)
        return run

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
        """The run's snapshots downsampled to ``buckets`` buckets, in the backend.

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
        latest = self._latest(run, window=None)
        return () if latest is None else latest.endpoints

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

    def write_report(
        self,
        run_id: str,
        path: str | os.PathLike[str],
        *,
        buckets: int = 200,
        tenants: Tenants = None,
    ) -> Path:
        """Write a self-contained HTML report of a run (summary, verdict, charts)."""
        run = self.get_run(run_id, tenants=tenants)
        try:
            test: LoadTest | None = self.storage.load_tests.get(run.load_test_id)
        except NotFoundError:
            test = None
        return write_report(path, run, test, self.storage.metrics.series(run.id, buckets))

    def wait(
        self,
        run_id: str,
        timeout: float | None = None,
        *,
        progress: bool = False,
        tenants: Tenants = None,
    ) -> LoadTestRun:
        """Block until the run ends and return it.

        Args:
            timeout: Seconds to wait at most; WaitTimeoutError after that (the
                run goes on).
            progress: Show elapsed time, users and rps live (terminal or Jupyter).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        display = Progress(progress)
        last_poll = 0.0
        while True:
            run = self.get_run(run_id, tenants=tenants)
            if run.status.is_terminal:
                display.close(describe(run, self._latest(run), self._clock()))
                return run
            if not self.monitor.running and time.monotonic() - last_poll >= self.poll_interval:
                last_poll = time.monotonic()
                run = self.refresh(run_id, tenants=tenants)
                continue
            display.show(describe(run, self._latest(run), self._clock()))
            if deadline is not None and time.monotonic() >= deadline:
                display.close(describe(run, self._latest(run), self._clock()))
                raise WaitTimeoutError(run_id, run.status.value, timeout or 0.0)
            time.sleep(0.25)

    def _latest(self, run: LoadTestRun, window: float | None = 3.0) -> MetricSnapshot | None:
        start = (
            None
            if window is None
            else self._clock() - timedelta(seconds=self.poll_interval * window)
        )
        recent = self.storage.metrics.snapshots(run.id, start=start)
        return recent[-1] if recent else None

    def reconcile(self) -> list[LoadTestRun]:
        """Take over the runs the database says are active, and settle them.

        Call on start-up: every active run no other live replica monitors is
        claimed and polled once now, so a run whose cluster no longer runs it
        ends (finished, stopped or failed) at once, and the rest are monitored
        from here on. Returns the runs as they stand afterwards.
        """
        self._check_open()
        active = self.storage.runs.find(
            RunFilter(
                statuses=[RunStatus.PENDING, RunStatus.RUNNING, RunStatus.STOPPING],
                limit=10_000,
            )
        )
        settled = []
        for run in active:
            if run.status is RunStatus.PENDING or self.monitor.claim(run.id):
                settled.append(self.monitor.poll(run.id))
            else:
                settled.append(run)
        return settled

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Stop the Monitor and close the Locust clients (not the storage)."""
        if self._closed:
            return
        self._closed = True
        self.monitor.stop()
        self._clients.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Orchestrator({self.storage!r}, {self.clusters!r}, owner={self.owner!r})"
