"""Every status change of a run, in one place, written against ports.

A run is changed only here: begun (``pending``), launched (``running``), stopped,
aborted, finished, failed, or adopted by a replica after its starter died. The
code talks to a :class:`LocustMaster` port and to the storage ports, never to a
concrete client, and reads time only from the injected clock.

Every write is compare-and-set on the run's version, so two replicas (or a
replica and a caller) that act on the same run at once cannot both win: the
loser re-reads and lets the stored state stand. What an heir finds after a
crash at each step, and what it does, is the crash table in docs/concepts.md.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from .clock import Clock
from .criteria import Breach, evaluate, first_abort
from .deltas import HistogramDeltas
from .errors import (
    InvalidTransitionError,
    LocustError,
    NotFoundError,
    ProvisioningError,
    RepositoryUnavailableError,
    StaleVersionError,
    ValidationError,
)
from .grammar import render
from .held import GroupWriter, HeldSnapshots
from .locust.stats import (
    LocustErrorRow,
    LocustExceptionRow,
    LocustStats,
    MasterFigures,
    MasterPoll,
)
from .locustfiles import ResolvedLocustfile
from .metrics import (
    SATURATED_CPU,
    EndpointSummary,
    HistogramDelta,
    MetricSnapshot,
    RunSummary,
)
from .models import ClusterHandle, LoadTest, LoadTestRun, RunParameters
from .repositories import Storage
from .status import RunStatus

__all__ = [
    "CACHE_GUARD",
    "STEPS",
    "Answer",
    "InFlightPoll",
    "LocustMaster",
    "Masters",
    "Next",
    "RunLifecycle",
]

log = logging.getLogger("loadmanager")

CACHE_GUARD = timedelta(seconds=2.5)
"""How long after a start an answer may still be Locust's cached one from before."""

STEPS = (
    "pending",
    "cluster-made",
    "swarm-accepted",
    "running",
    "stop-sent",
    "final-figures",
    "summary-written",
)
"""The steps of a run's life at which a host can die; see the crash table."""


class LocustMaster(Protocol):
    """The calls a run's life needs from a Locust master (LocustClient has them)."""

    def reset_stats(self) -> None: ...

    def swarm(
        self,
        users: int,
        spawn_rate: float,
        *,
        host: str | None = None,
        run_time: str | None = None,
        user_classes: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> object: ...

    def stop(self) -> None: ...

    def stats(self) -> LocustStats: ...

    def stats_csv(self) -> tuple[EndpointSummary, ...]: ...

    def failures(self) -> tuple[LocustErrorRow, ...]: ...

    def exceptions(self) -> tuple[LocustExceptionRow, ...]: ...

    def figures(self) -> MasterFigures | None:
        """The plugin's histograms; ``None`` when the master has no plugin."""
        ...

    def poll(self) -> MasterPoll:
        """``stats()`` and ``figures()`` at once; a plugin failure is not raised."""
        ...


class InFlightPoll(Protocol):
    """A poll's request sent and not yet answered (``LocustClient.send_poll``)."""

    @property
    def sock(self) -> socket.socket:
        """The socket to wait on until it is readable."""
        ...

    @property
    def timeout(self) -> float:
        """Seconds the answer may take."""
        ...

    def receive(self) -> bool:
        """Read what arrived; whether the exchange is over (answered or failed)."""
        ...

    def result(self) -> MasterPoll | None:
        """The poll once over; ``None`` when only :meth:`LocustMaster.poll` can say."""
        ...

    def cancel(self) -> None:
        """Give up on the answer."""
        ...


Answer = tuple[LoadTestRun, int | None, LocustMaster, MasterPoll]
"""A run, the slot it was polled for, its master, and what the master said."""

Next = Callable[[], LoadTestRun]
"""What an answer asks for beyond its snapshot: finish, fail, stop or abort the run."""


class Masters(Protocol):
    """The masters of runs, and their clusters where a provider makes one per run."""

    def master(self, run: LoadTestRun) -> LocustMaster:
        """The run's master; ValidationError for a cluster unknown here or not made."""
        ...

    def provision(
        self, run: LoadTestRun, locustfile: ResolvedLocustfile | None
    ) -> ClusterHandle | None:
        """Make the run's cluster; ``None`` when its cluster is a static master."""
        ...

    def release(self, run: LoadTestRun) -> None:
        """Take the run's cluster away, if one was made for it (never raises)."""
        ...

    def log_tail(self, run: LoadTestRun) -> str:
        """The last lines of the run's made master, or ``""``."""
        ...

    def __contains__(self, cluster_id: object) -> bool: ...


def _never(step: str) -> None:
    """The default checkpoint: nothing happens between steps."""


class RunLifecycle:
    """Drives runs through their statuses; one per Orchestrator.

    Args:
        storage: Where runs and snapshots live.
        masters: The masters of the clusters this replica knows.
        clock: The time source (wall time for records, monotonic for waits).
        claim: Takes this replica's monitoring claim on a run; ``begin`` takes
            it at once, so no heir touches a start in progress.
        actor: The identity in audits of changes the library makes by itself.
        settle: Seconds to wait after a run stops for the workers' last reports
            (they report every 3 s) before the final figures are read.
        checkpoint: Called with each name of :data:`STEPS` as the run passes it;
            the crash tests end the process there.
        buffer_limit: Snapshots held in memory, across runs, while the storage
            is unreachable; they are written when it is back. Past the limit
            the oldest are dropped and counted on their run.
    """

    def __init__(
        self,
        storage: Storage,
        masters: Masters,
        *,
        clock: Clock,
        claim: Callable[[str], bool],
        actor: str = "loadmanager",
        settle: float = 3.5,
        checkpoint: Callable[[str], None] | None = None,
        buffer_limit: int = 10_000,
    ) -> None:
        self._storage = storage
        self._masters = masters
        self._clock = clock
        self._claim = claim
        self.actor = actor
        self.settle = settle
        self._checkpoint = checkpoint or _never
        self._lock = threading.Lock()
        self._launching: set[str] = set()
        self._idle_since: dict[str, datetime] = {}  # pending runs seen idle, and since when
        self.deltas = HistogramDeltas(
            lambda run_id, since: storage.metrics.snapshots(run_id, start=since)
        )
        self.held = HeldSnapshots(
            GroupWriter(storage.metrics.add_many),
            lambda run_id, since: storage.metrics.snapshots(run_id, start=since),
            limit=buffer_limit,
        )

    @property
    def launching(self) -> frozenset[str]:
        """Runs this replica is starting right now (pending, swarm not yet confirmed)."""
        with self._lock:
            return frozenset(self._launching)

    # -- starting ---------------------------------------------------------------

    def begin(
        self,
        test: LoadTest,
        params: RunParameters,
        *,
        run_id: str,
        actor: str,
        exclusive: bool = True,
    ) -> LoadTestRun:
        """Record the run ``pending`` (taking the cluster's lease) and claim it.

        Args:
            exclusive: The run holds its cluster's lease (a static master);
                ``False`` for a cluster made for this run alone.
        """
        # Marked as launching before it is visible, so this replica's own
        # Monitor never mistakes it for a start whose host died.
        with self._lock:
            self._launching.add(run_id)
        try:
            run = self._storage.runs.add(
                LoadTestRun.new(
                    test, params, id=run_id, at=self._clock.now(), actor=actor, exclusive=exclusive
                )
            )
        except BaseException:
            self._done_launching(run_id)
            raise
        if not self._claim(run.id):  # an heir saw it first and has settled it
            self._done_launching(run.id)
            stored = self._storage.runs.get(run.id)
            raise InvalidTransitionError(run.id, stored.status.value, RunStatus.RUNNING.value)
        self._checkpoint("pending")
        return run

    def launch(
        self, run: LoadTestRun, *, actor: str, locustfile: ResolvedLocustfile | None = None
    ) -> LoadTestRun:
        """Make the run's cluster (if a provider makes one), ask it to swarm, record ``running``.

        The cluster is recorded on the run before the swarm, so an heir finds
        it. A failure after the swarm was sent stops the master before the run
        is recorded ``failed``, so no load outlives a run that failed to start;
        a made cluster is released when the run ends, failed or not.
        """
        swarmed = False
        try:
            run = self._made(run, locustfile, actor)
            master = self._masters.master(run)
            master.reset_stats()
            p = run.parameters
            swarmed = True
            master.swarm(
                p.target_users,
                p.spawn_rate,
                host=p.target_url,
                run_time=p.run_time,
                user_classes=p.user_classes or None,
                tags=p.tags or None,
            )
            self._checkpoint("swarm-accepted")
            running = self._mark_running(run, master, actor)
        except LocustError as exc:
            self._abandon(run, swarmed, actor, f"Locust did not start the run: {exc}")
            exc.run_id = run.id
            raise
        except ProvisioningError as exc:
            self._abandon(run, swarmed, actor, f"no cluster for the run: {exc}")
            exc.run_id = run.id
            raise
        except BaseException:
            self._abandon(run, swarmed, actor, "the start was aborted")
            raise
        finally:
            self._done_launching(run.id)
        self._checkpoint("running")
        return running

    def _made(
        self, run: LoadTestRun, locustfile: ResolvedLocustfile | None, actor: str
    ) -> LoadTestRun:
        """The run with the cluster made for it recorded (unchanged on a static master)."""
        handle = self._masters.provision(run, locustfile)
        if handle is None:
            return run
        made = run.with_cluster(handle, at=self._clock.now(), actor=actor)
        try:
            run = self._storage.runs.update(made)
        except (StaleVersionError, NotFoundError):
            self._masters.release(made)  # an heir settled the run while it was being made
            raise InvalidTransitionError(run.id, "settled", RunStatus.RUNNING.value) from None
        self._checkpoint("cluster-made")
        return run

    def _mark_running(self, run: LoadTestRun, master: LocustMaster, actor: str) -> LoadTestRun:
        try:
            return self._storage.runs.update(
                run.transition(RunStatus.RUNNING, at=self._clock.now(), actor=actor)
            )
        except (StaleVersionError, NotFoundError):
            # An heir decided while the swarm was slow: it either adopted the
            # run (fine) or failed it, and then the load we started must stop.
            stored = self._find(run.id)
            if stored is not None and stored.status is not RunStatus.FAILED:
                return stored
            self._stop_quietly(master)
            raise InvalidTransitionError(
                run.id, "failed" if stored else "deleted", RunStatus.RUNNING.value
            ) from None

    def _abandon(self, run: LoadTestRun, swarmed: bool, actor: str, reason: str) -> None:
        current = self._find(run.id)
        if current is None or current.status is not RunStatus.PENDING:
            return  # an heir settled it meanwhile, and owns the master now
        # Stopped while the run still holds the lease, so no other run's load is hit.
        if swarmed and run.locust_cluster_id in self._masters:
            self._stop_quietly(self._masters.master(current))
        self._end(current, RunStatus.FAILED, reason, actor=actor)

    def _done_launching(self, run_id: str) -> None:
        with self._lock:
            self._launching.discard(run_id)

    # -- stopping ---------------------------------------------------------------

    def stop(self, run: LoadTestRun, *, actor: str) -> LoadTestRun:
        """Record ``stopping`` and ask the master to stop; a poll records ``stopped``.

        The run keeps who stopped it as its reason (``stopped by alice``), so a
        reader can tell a person's stop from an abort.
        """
        if run.status is RunStatus.STOPPING:
            return run
        stopping = self._storage.runs.update(
            run.transition(
                RunStatus.STOPPING, at=self._clock.now(), actor=actor, reason=f"stopped by {actor}"
            )
        )
        return self._send_stop(stopping, actor=actor)

    def _send_stop(self, run: LoadTestRun, *, actor: str, reason: str = "") -> LoadTestRun:
        try:
            self._masters.master(run).stop()
        except (LocustError, ValidationError) as exc:
            why = f"{reason}; then " if reason else ""
            failure = f"{why}Locust master unreachable while stopping: {exc}"
            return self._end(run, RunStatus.FAILED, failure, actor=actor)
        self._checkpoint("stop-sent")
        return run

    # -- polling ------------------------------------------------------------------

    def slot(self, run: LoadTestRun, at: datetime) -> int:
        """The poll slot ``at`` falls in: whole poll intervals since the run started."""
        began = run.started_at or run.audit.created_at
        elapsed = max(0.0, (at - began).total_seconds())
        return int(elapsed // run.parameters.poll_interval)

    def slot_start(self, run: LoadTestRun, slot: int) -> datetime:
        """When the run's poll slot ``slot`` begins: the inverse of :meth:`slot`."""
        began = run.started_at or run.audit.created_at
        return began + timedelta(seconds=slot * run.parameters.poll_interval)

    def poll(self, run: LoadTestRun, slot: int | None = None) -> LoadTestRun:
        """Poll the run's master once: store a snapshot, then abort, finish or fail it.

        The caller holds the run's monitoring claim. A pending run that is not
        being started here had its starter die: it is adopted or failed.

        Args:
            slot: The poll slot this poll was scheduled for (the Monitor's);
                ``None`` means the slot of the moment of the answer. A late
                answer keeps its slot, the gap it was meant to fill, while this
                replica holds the claim (checked again past the claim's
                expiry); after another replica took the run over it is dropped,
                since that replica's polls cover the moment.
        """
        if not self._ours_to_poll(run):
            return run
        if run.status is RunStatus.PENDING:
            return self._adopt(run)
        master = self._masters.master(run)
        try:
            polled = master.poll()
        except LocustError as exc:
            return self._end(run, RunStatus.FAILED, f"Locust master unreachable: {exc}")
        [(after, then)] = self.answered([(run, slot, master, polled)])
        return after if then is None else then()

    def _ours_to_poll(self, run: LoadTestRun) -> bool:
        """Whether a poll here may judge the run: it is active, not being
        started here (the starter does), and its cluster is known here (else
        a replica that knows it will)."""
        with self._lock:
            if run.id in self._launching:
                return False
        return run.is_active and run.locust_cluster_id in self._masters

    def send_poll(self, run: LoadTestRun) -> tuple[LocustMaster, InFlightPoll] | None:
        """Send the run's poll without waiting for it, when a poll only reads its figures.

        The caller (the Monitor's loop) waits for the answer, then hands it to
        :meth:`answered`. ``None`` when :meth:`poll` must do it: the run is
        pending or being started here, its cluster is not known here, or its
        master cannot take a poll so (a test's fake, HTTPS, no kept-alive
        connection yet).
        """
        if run.status is RunStatus.PENDING or not self._ours_to_poll(run):
            return None
        try:
            master = self._masters.master(run)
        except ValidationError:
            return None  # poll() says why
        send: Callable[[], InFlightPoll | None] | None = getattr(master, "send_poll", None)
        sent = None if send is None else send()
        return None if sent is None else (master, sent)

    def answered(self, answers: Sequence[Answer]) -> list[tuple[LoadTestRun, Next | None]]:
        """Store the answers' snapshots in one write, and say what each asks for next.

        For each answer, in order: the run as it stands, and the step it asks
        for (finish, fail, stop again or abort the run), or ``None``. The steps
        may wait on a master or sleep, so the caller runs them where that
        blocks nobody; deciding them here costs only memory reads (and the
        storage, once a run, for the window its abort criteria read).

        A late answer (past this replica's claim) is dropped if another
        replica took the run over; see :meth:`poll`.
        """
        now = self._clock.now()
        kept: list[tuple[int, MetricSnapshot]] = []
        for i, (run, slot, _, polled) in enumerate(answers):
            current = self.slot(run, now)
            if slot is None:
                slot = current
            elif current > slot + 1 and not self._still_ours(run.id):
                # Late past this replica's claim, and another has taken the run
                # over since: its polls cover this moment, so this answer goes.
                log.info("run %s: the answer for slot %d came after a takeover", run.id, slot)
                continue
            changes = self._histogram_changes(run, slot, polled)
            kept.append((i, polled.stats.to_snapshot(run.id, now, slot, changes)))
        outcome: list[tuple[LoadTestRun, Next | None]] = [(a[0], None) for a in answers]
        stored = self.held.store_many([snapshot for _, snapshot in kept])
        for (i, snapshot), written in zip(kept, stored, strict=True):
            run, _, master, polled = answers[i]
            if written is None:  # the run vanished (its test was deleted) between reads
                self.forget(run.id)
            elif not written:  # the storage is down: nothing can be decided or recorded now
                log.warning(
                    "storage down: %d snapshot(s) of run %s held", self.held.held(run.id), run.id
                )
            else:
                outcome[i] = (run, self._next(run, snapshot, polled.stats, master, now))
        return outcome

    def _next(
        self,
        run: LoadTestRun,
        snapshot: MetricSnapshot,
        stats: LocustStats,
        master: LocustMaster,
        now: datetime,
    ) -> Next | None:
        """The step a stored answer asks for, if any (see :meth:`answered`)."""
        if run.started_at is None or now - run.started_at < CACHE_GUARD:
            return None
        if run.status is RunStatus.RUNNING and stats.state.generating_load:
            breach = self._breach(run, snapshot)
            if breach is None:
                return None
            return functools.partial(self._abort, run, snapshot, breach)
        if stats.state.ended:
            return functools.partial(self._finish, run, master)
        if stats.state.lost:
            reason = f"the master no longer runs this test (state {stats.state.value!r})"
            return functools.partial(self._end, run, RunStatus.FAILED, reason)
        if run.status is RunStatus.STOPPING and now - run.audit.updated_at >= CACHE_GUARD:
            # asked to stop, still runs: again
            return functools.partial(self._send_stop, run, actor=self.actor)
        return None

    def _histogram_changes(
        self, run: LoadTestRun, slot: int, polled: MasterPoll
    ) -> tuple[HistogramDelta, ...]:
        """The plugin's histogram changes for the snapshot of ``slot``; none without it."""
        if polled.figures_error is not None:  # the live figures are in: keep them alone
            log.warning("run %s: the plugin's histograms could not be read: %s",
                        run.id, polled.figures_error)  # fmt: skip
            self.deltas.forget(run.id)
            return ()
        if polled.figures is None:
            return ()
        return self.deltas.changes(
            run.id, slot, polled.figures, functools.partial(self.slot_start, run)
        )

    def _still_ours(self, run_id: str) -> bool:
        try:
            return self._claim(run_id)
        except RepositoryUnavailableError:
            # Nobody can take the run over through a storage that is down; and
            # should the answer still clash with another's, its slot is taken.
            return True

    def _adopt(self, run: LoadTestRun) -> LoadTestRun:
        """Settle a pending run whose starter died: running if the load runs, else failed."""
        run = self._storage.runs.get(run.id)  # the caller's copy may predate the launch
        if run.status is not RunStatus.PENDING:
            return run
        try:
            master = self._masters.master(run)
        except ValidationError:  # a provider's cluster was never recorded: never began
            reason = "the start was interrupted before its cluster was made"
            return self._end(run, RunStatus.FAILED, reason)
        try:
            state = master.stats().state
        except LocustError as exc:
            reason = f"the start was interrupted and the master is unreachable: {exc}"
            return self._end(run, RunStatus.FAILED, reason)
        if state.generating_load:
            try:
                adopted = self._storage.runs.update(
                    run.transition(RunStatus.RUNNING, at=self._clock.now(), actor=self.actor)
                )
            except StaleVersionError:
                return self._storage.runs.get(run.id)
            except NotFoundError:  # its test was deleted: nobody may own this load
                self._stop_quietly(master)
                return run
            log.warning("run %s adopted: its starter stopped after Locust began", run.id)
            return adopted
        # Locust caches this answer for 2 s, so it may predate a swarm that did
        # land: only an idle answer read CACHE_GUARD after the first one counts.
        now = self._clock.now()
        with self._lock:
            first = self._idle_since.setdefault(run.id, now)
        if now - first < CACHE_GUARD:
            return run
        self._stop_quietly(master)  # in case the swarm lands even now
        reason = f"the start was interrupted before Locust started the load (state {state.value!r})"
        return self._end(run, RunStatus.FAILED, reason)

    def _breach(self, run: LoadTestRun, snapshot: MetricSnapshot) -> Breach | None:
        """The first frozen criterion marked ``abort`` that broke, if any."""
        aborting = [t for t in run.parameters.thresholds if t.abort_on_fail]
        if not aborting:
            return None
        longest = max(t.window or 0.0 for t in aborting)
        since = snapshot.timestamp - timedelta(seconds=longest + 3 * run.parameters.poll_interval)
        recent = self.held.window(snapshot, since)
        return first_abort(aborting, recent, baseline=run.parameters.baseline)

    def _abort(self, run: LoadTestRun, snapshot: MetricSnapshot, breach: Breach) -> LoadTestRun:
        """Stop the run at once: a frozen criterion marked ``abort`` broke."""
        at = f"{breach.at:%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z"
        reason = f"aborted: {render(breach.threshold)} broke with {breach.observed:.6g} at {at}"
        log.warning("run %s %s", run.id, reason)
        try:
            stopping = self._storage.runs.update(
                run.transition(RunStatus.STOPPING, at=snapshot.timestamp, actor=self.actor,
                               reason=reason)
            )  # fmt: skip
        except StaleVersionError:
            return self._storage.runs.get(run.id)
        return self._send_stop(stopping, actor=self.actor, reason=reason)

    # -- ending -------------------------------------------------------------------

    def _settled_rows(self, master: LocustMaster) -> tuple[EndpointSummary, ...]:
        """The final figures once the workers' last reports have arrived."""
        started = self._clock.monotonic()
        rows = master.stats_csv()
        while True:
            self._clock.sleep(1.0)
            again = master.stats_csv()
            waited = self._clock.monotonic() - started
            if (again == rows and waited >= self.settle) or waited >= self.settle + 10:
                return again
            rows = again

    def _finish(self, run: LoadTestRun, master: LocustMaster) -> LoadTestRun:
        try:
            rows = self._settled_rows(master)
        except LocustError as exc:
            why = f"Locust master unreachable for the final figures: {exc}"
            return self._end(run, RunStatus.FAILED, why)
        try:
            failures = tuple(e.to_failure() for e in master.failures())
            exceptions = tuple(e.to_exception() for e in master.exceptions())
        except LocustError as exc:  # the figures are in: keep them, say what is missing
            log.warning("run %s: Locust's failures could not be read: %s", run.id, exc)
            failures, exceptions = (), ()
        self._checkpoint("final-figures")
        summary = RunSummary(
            taken_at=self._clock.now(),
            aggregated=rows[-1],
            endpoints=rows[:-1],
            histograms=self._final_histograms(run, master),
        )
        p = run.parameters
        # Every snapshot is read only for windowed criteria: a 24-hour run's
        # are 43,200, ten seconds on SQLite, in the poll that ends the run.
        peak = self._storage.metrics.peak_worker_cpu(run.id)
        saturated = peak is not None and peak >= SATURATED_CPU
        verdict = None
        if p.thresholds:
            windowed = any(t.windowed for t in p.thresholds)
            snapshots = self._storage.metrics.snapshots(run.id) if windowed else []
            verdict = evaluate(
                p.thresholds, summary, snapshots, baseline=p.baseline, users=p.target_users
            )
        reason: str | None = run.failure_reason
        if run.status is RunStatus.STOPPING:
            to = RunStatus.STOPPED
        elif p.run_time is not None:
            to = RunStatus.FINISHED
        else:
            to, reason = RunStatus.STOPPED, "stopped outside loadmanager"
        ended = self._end(
            run.with_summary(
                summary, verdict, failures=failures, exceptions=exceptions, saturated=saturated
            ),
            to,
            reason,
        )
        self._checkpoint("summary-written")
        return ended

    @staticmethod
    def _final_histograms(run: LoadTestRun, master: LocustMaster) -> tuple[HistogramDelta, ...]:
        """The final cumulative histograms, read with the final figures (plugin only)."""
        try:
            figures = master.figures()
        except LocustError as exc:
            log.warning("run %s: the plugin's final histograms could not be read: %s", run.id, exc)
            return ()
        if figures is None:
            return ()
        rows = (*figures.endpoints, figures.aggregated)
        return tuple(HistogramDelta(r.key, r.histogram) for r in sorted(rows, key=lambda r: r.key))

    def fail(self, run: LoadTestRun, reason: str) -> LoadTestRun:
        """Record the run ``failed`` with ``reason`` (if nobody changed it meanwhile)."""
        return self._end(run, RunStatus.FAILED, reason)

    def _end(
        self, run: LoadTestRun, to: RunStatus, reason: str | None, *, actor: str | None = None
    ) -> LoadTestRun:
        if to is RunStatus.FAILED:
            tail = self._masters.log_tail(run)
            if tail and reason is not None:
                reason = f"{reason}\n--- master log (tail) ---\n{tail}"
            log.warning("run %s failed: %s", run.id, reason)
        dropped = self.held.dropped(run.id)
        if dropped:
            run = run.with_dropped(dropped)
        ended = run.transition(to, at=self._clock.now(), actor=actor or self.actor, reason=reason)
        try:
            stored = self._storage.runs.update(ended)
        except StaleVersionError:
            # Someone changed the run meanwhile (a stop, another replica);
            # the next poll sees their version and decides again.
            return self._storage.runs.get(run.id)
        self.forget(run.id)
        self._masters.release(stored)
        return stored

    # -- helpers ------------------------------------------------------------------

    def forget(self, run_id: str) -> None:
        """Drop what is kept in memory for a run this replica no longer polls."""
        self.held.forget(run_id)
        self.deltas.forget(run_id)
        with self._lock:
            self._idle_since.pop(run_id, None)

    def _find(self, run_id: str) -> LoadTestRun | None:
        try:
            return self._storage.runs.get(run_id)
        except NotFoundError:
            return None

    @staticmethod
    def _stop_quietly(master: LocustMaster) -> None:
        try:
            master.stop()
        except LocustError as exc:  # best effort: the run's record says what happened
            log.warning("could not stop a master whose run did not start: %s", exc)
