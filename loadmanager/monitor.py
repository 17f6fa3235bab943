"""The Monitor: polls every active run's master, stores snapshots, settles runs.

One background thread per Orchestrator ticks ten times per interval. Each tick
claims (or renews) the right to monitor each active run that is due, and hands
the polls to a thread pool, so one slow master never delays another. Each run's
due time advances by exactly one interval, so the average poll period is the
interval however long the work takes.
A run is claimed with an expiry of 1.5 intervals: when the replica holding it
dies, another claims it within two intervals, and only the holder stores
snapshots, so none is stored twice.

Settling a run, in order of what Locust says:
    spawning / running / stopping   keep going (a stopping run is re-sent /stop)
    stopped                         ended: record the summary and verdict, then
                                    finished (timed run), stopped (our stop), or
                                    stopped "outside loadmanager"
    ready / missing                 the master lost the run: failed
    unreachable past the retries    failed, snapshots kept
Locust caches /stats/requests for 2 s, so no answer read within 2.5 s of the
start is trusted to say the run ended: it may describe the run before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from .clock import Clock
from .clusters import ClientFactory, ClusterRegistry
from .criteria import evaluate, first_abort
from .errors import LocustError, NotFoundError, StaleVersionError, ValidationError
from .filters import MAX_LIMIT, RunFilter
from .grammar import render
from .locust.client import LocustClient
from .locust.stats import LocustStats
from .metrics import EndpointSummary, RunSummary
from .models import LoadTest, LoadTestRun, Threshold
from .repositories import Storage
from .status import RunStatus

__all__ = ["CACHE_GUARD", "ClientPool", "Monitor"]

log = logging.getLogger("loadmanager")

CACHE_GUARD = timedelta(seconds=2.5)
"""How long after a start an answer may still be Locust's cached one from before."""

_ENDED = ("stopped",)
_LOST = ("ready", "missing")


def resolve_baseline(
    storage: Storage, test: LoadTest, *, exclude: str | None = None
) -> LoadTestRun | None:
    """The run a test's relative criteria compare with.

    The one set with ``set_baseline``; without one, the most recent finished run
    of the same test whose verdict passed.
    """
    if test.baseline_run_id is not None and test.baseline_run_id != exclude:
        try:
            return storage.runs.get(test.baseline_run_id)
        except NotFoundError:
            return None
    finished = storage.runs.find(
        RunFilter(load_test_id=test.id, statuses=[RunStatus.FINISHED], limit=MAX_LIMIT)
    )
    passed = [
        r
        for r in finished
        if r.id != exclude and r.summary is not None and r.verdict is not None and r.verdict.passed
    ]
    return max(passed, key=lambda r: (r.started_at or r.audit.created_at, r.id), default=None)


class ClientPool:
    """One LocustClient per cluster, built on first use and closed together."""

    def __init__(self, clusters: ClusterRegistry, factory: ClientFactory) -> None:
        self._clusters = clusters
        self._factory = factory
        self._clients: dict[str, tuple[object, LocustClient]] = {}
        self._lock = threading.Lock()

    def client(self, cluster_id: str) -> LocustClient:
        """The client for a configured cluster (ValidationError if unknown)."""
        config = self._clusters.get(cluster_id)
        with self._lock:
            cached = self._clients.get(cluster_id)
            if cached is not None and cached[0] is config:
                return cached[1]
            if cached is not None:  # the registry entry changed: rebuild
                cached[1].close()
            client = self._factory(config)
            self._clients[cluster_id] = (config, client)
            return client

    def close(self) -> None:
        """Close every client."""
        with self._lock:
            for _, client in self._clients.values():
                client.close()
            self._clients.clear()


class Monitor:
    """Polls active runs; see the module docstring for what it decides.

    Args:
        storage: Where runs, tests and snapshots live.
        clients: Locust clients per cluster.
        clock: The time source.
        owner: This replica's name in monitoring claims.
        interval: Seconds between two polls of one run (Locust's cache is 2 s).
        settle: Seconds to wait after a run stops for the workers' last reports
            (they report every 3 s), before the summary is taken.
        pending_timeout: A run still pending after this long had its start
            interrupted (its process died) and is failed.
        actor: The identity written into audits of changes the Monitor makes.
        sleep: Injected for tests.
    """

    def __init__(
        self,
        storage: Storage,
        clients: ClientPool,
        *,
        clock: Clock,
        owner: str,
        interval: float = 2.0,
        settle: float = 3.5,
        pending_timeout: float = 120.0,
        actor: str = "loadmanager",
        max_workers: int = 32,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._storage = storage
        self._clients = clients
        self._clock = clock
        self.owner = owner
        self.interval = interval
        self.settle = settle
        self.pending_timeout = timedelta(seconds=pending_timeout)
        self.actor = actor
        self._sleep = sleep
        self._ttl = timedelta(seconds=interval * 1.5)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="lm-poll")
        self._in_flight: set[str] = set()
        self._due: dict[str, float] = {}
        self._listed: tuple[float, list[LoadTestRun]] | None = None
        self._tick = max(0.05, interval / 10)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.latest: dict[str, LocustStats] = {}
        self._criteria: dict[str, tuple[Threshold, ...]] = {}

    # -- the background thread ----------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="lm-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for polls in progress; claims lapse by themselves."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._pool.shutdown(wait=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                self.tick()
            except Exception:  # a bad tick (storage down, say) must not end monitoring
                log.exception("monitor tick failed; trying again next interval")

    def _active(self) -> list[LoadTestRun]:
        # Listing every active run is the costly part of a tick; the list is
        # refreshed twice an interval, and the fine-grained ticks between use it.
        now = time.monotonic()
        if self._listed is None or now - self._listed[0] >= self.interval / 2:
            found = self._storage.runs.find(
                RunFilter(
                    statuses=[RunStatus.PENDING, RunStatus.RUNNING, RunStatus.STOPPING],
                    limit=MAX_LIMIT,
                )
            )
            self._listed = (now, found)
        return self._listed[1]

    def tick(self) -> int:
        """One pass: claim and poll every active run that is due. Returns how many.

        Each run has a due time that advances by exactly one interval, so the
        polls of a run keep Locust's resolution on average however long a tick
        or a poll takes; a run that fell more than an interval behind starts
        afresh instead of being polled in a burst.
        """
        now = self._clock()
        now_mono = time.monotonic()
        submitted = 0
        for run in self._active():
            with self._lock:
                if run.id in self._in_flight:
                    continue
                due = self._due.get(run.id)
            if run.status is RunStatus.PENDING:
                if now - run.audit.updated_at > self.pending_timeout:
                    self._submit(run, now_mono + self.interval)
                    submitted += 1
                continue
            if due is not None and now_mono < due:
                continue
            if not self._storage.runs.claim_monitor(run.id, self.owner, now=now, ttl=self._ttl):
                continue
            next_due = now_mono + self.interval
            if due is not None and now_mono - due < self.interval:
                next_due = due + self.interval
            self._submit(run, next_due)
            submitted += 1
        return submitted

    def _submit(self, run: LoadTestRun, next_due: float) -> None:
        with self._lock:
            self._in_flight.add(run.id)
            self._due[run.id] = next_due
        try:
            self._pool.submit(self._poll_task, run)
        except RuntimeError:  # the pool shut down between the check and here
            with self._lock:
                self._in_flight.discard(run.id)

    def _poll_task(self, run: LoadTestRun) -> None:
        try:
            self.poll(run.id, known=run)
        except Exception:
            log.exception("polling run %s failed", run.id)
        finally:
            with self._lock:
                self._in_flight.discard(run.id)

    def claim(self, run_id: str) -> bool:
        """Claim (or renew) monitoring of one run for this replica."""
        return self._storage.runs.claim_monitor(
            run_id, self.owner, now=self._clock(), ttl=self._ttl
        )

    # -- one poll -------------------------------------------------------------

    def poll(self, run_id: str, *, known: LoadTestRun | None = None) -> LoadTestRun:
        """Poll one run's master once, store a snapshot, and settle it if it ended.

        Args:
            known: The run as recently read, which saves reading it again. If it
                changed since, every write below is compare-and-set on its
                version, so a stale copy can only lose a write, never corrupt one.
        """
        run = known if known is not None else self._storage.runs.get(run_id)
        if not run.is_active:
            self._forget(run_id)
            return run
        if run.status is RunStatus.PENDING:
            if self._clock() - run.audit.updated_at > self.pending_timeout:
                return self._fail(run, "the start was interrupted before Locust confirmed it")
            return run
        try:
            client = self._clients.client(run.locust_cluster_id)
        except ValidationError:
            return self._fail(run, f"cluster {run.locust_cluster_id!r} is no longer configured")
        try:
            stats = client.stats()
        except LocustError as exc:
            return self._fail(run, f"Locust master unreachable: {exc}")
        now = self._clock()
        try:
            self._storage.metrics.add(stats.to_snapshot(run.id, now))
        except NotFoundError:  # the run vanished (its test was deleted) between reads
            self._forget(run_id)
            return run
        self.latest[run.id] = stats
        if run.started_at is None or now - run.started_at < CACHE_GUARD:
            return run
        if run.status is RunStatus.RUNNING and stats.state in ("spawning", "running"):
            aborted = self._check_abort(run, client, now)
            if aborted is not None:
                return aborted
        if stats.state in _ENDED:
            return self._finish(run, client)
        if stats.state in _LOST:
            return self._fail(run, f"the master no longer runs this test (state {stats.state!r})")
        if run.status is RunStatus.STOPPING and now - run.audit.updated_at >= CACHE_GUARD:
            try:
                client.stop()  # it was asked to stop but still runs: ask again
            except LocustError as exc:
                return self._fail(run, f"Locust master unreachable while stopping: {exc}")
        return run

    def _abort_criteria(self, run: LoadTestRun) -> tuple[Threshold, ...]:
        # A run is judged by its test's criteria as they were when monitoring
        # began; reading them once spares a read of the test on every poll.
        cached = self._criteria.get(run.id)
        if cached is None:
            try:
                thresholds = self._storage.load_tests.get(run.load_test_id).thresholds
            except NotFoundError:
                thresholds = ()
            cached = self._criteria[run.id] = tuple(t for t in thresholds if t.abort_on_fail)
        return cached

    def _check_abort(
        self, run: LoadTestRun, client: LocustClient, now: datetime
    ) -> LoadTestRun | None:
        """Stop the run at once if a criterion marked ``abort`` broke."""
        aborting = self._abort_criteria(run)
        if not aborting:
            return None
        try:
            test = self._storage.load_tests.get(run.load_test_id)
        except NotFoundError:
            return None
        longest = max(t.window or 0.0 for t in aborting)
        recent = self._storage.metrics.snapshots(
            run.id, start=now - timedelta(seconds=longest + 3 * self.interval)
        )
        baseline = resolve_baseline(self._storage, test, exclude=run.id)
        breach = first_abort(
            aborting, recent, baseline=None if baseline is None else baseline.summary
        )
        if breach is None:
            return None
        reason = (
            f"aborted: {render(breach.threshold)} broke with {breach.observed:.6g}"
            f" at {breach.at:%Y-%m-%dT%H:%M:%S.%f}"[:-3]
            + "Z"
        )
        log.warning("run %s %s", run.id, reason)
        try:
            stopping = self._storage.runs.update(
                run.transition(RunStatus.STOPPING, at=now, actor=self.actor, reason=reason)
            )
        except StaleVersionError:
            return self._storage.runs.get(run.id)
        try:
            client.stop()
        except LocustError as exc:
            return self._fail(stopping, f"{reason}; then Locust master unreachable: {exc}")
        return stopping

    def _settled_rows(self, client: LocustClient) -> tuple[EndpointSummary, ...]:
        """The final CSV figures once the workers' last reports have arrived."""
        started = time.monotonic()
        rows = client.stats_csv()
        while True:
            self._sleep(1.0)
            again = client.stats_csv()
            waited = time.monotonic() - started
            if (again == rows and waited >= self.settle) or waited >= self.settle + 10:
                return again
            rows = again

    def _finish(self, run: LoadTestRun, client: LocustClient) -> LoadTestRun:
        try:
            rows = self._settled_rows(client)
        except LocustError as exc:
            return self._fail(run, f"Locust master unreachable for the final figures: {exc}")
        now = self._clock()
        summary = RunSummary(taken_at=now, aggregated=rows[-1], endpoints=rows[:-1])
        try:
            test = self._storage.load_tests.get(run.load_test_id)
        except NotFoundError:
            test = None
        verdict = None
        if test is not None and test.thresholds:
            baseline = resolve_baseline(self._storage, test, exclude=run.id)
            verdict = evaluate(
                test.thresholds,
                summary,
                self._storage.metrics.snapshots(run.id),
                baseline=None if baseline is None else baseline.summary,
                users=run.parameters.target_users,
            )
        reason = run.failure_reason
        if run.status is RunStatus.STOPPING:
            to = RunStatus.STOPPED
        elif run.parameters.run_time is not None:
            to = RunStatus.FINISHED
        else:
            to, reason = RunStatus.STOPPED, "stopped outside loadmanager"
        ended = run.with_summary(summary, verdict).transition(
            to, at=now, actor=self.actor, reason=reason
        )
        return self._store_end(run, ended)

    def _fail(self, run: LoadTestRun, reason: str) -> LoadTestRun:
        log.warning("run %s failed: %s", run.id, reason)
        failed = run.transition(RunStatus.FAILED, at=self._clock(), actor=self.actor, reason=reason)
        return self._store_end(run, failed)

    def _store_end(self, run: LoadTestRun, ended: LoadTestRun) -> LoadTestRun:
        try:
            stored = self._storage.runs.update(ended)
        except StaleVersionError:
            # Someone changed the run meanwhile (a stop, another replica);
            # the next poll sees their version and decides again.
            return self._storage.runs.get(run.id)
        self._forget(run.id)
        return stored

    def _forget(self, run_id: str) -> None:
        self._storage.runs.release_monitor(run_id, self.owner)
        with self._lock:
            self._due.pop(run_id, None)
        self.latest.pop(run_id, None)
        self._criteria.pop(run_id, None)
