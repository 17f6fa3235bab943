"""The Monitor: which replica polls which run, and when.

It decides nothing about a run's status: each poll is handed to the run
lifecycle (:mod:`loadmanager.lifecycle`). What it owns is the schedule and the
claims.

Claims: a replica polls a run only while it holds the run's monitoring claim,
which expires 1.5 poll intervals after it was last renewed. When a replica dies,
another claims its runs within one expiry. A replica only ever claims runs on
clusters it knows, so two services that share one store but not their clusters
never take over each other's runs.

Schedule: a run's poll slots are whole poll intervals since it started (the
run's own interval, frozen at its start). The Monitor polls each run once per
slot, in the middle of the slot, and hands the slot to the poll: the snapshot is
stored under it even when the answer is up to one slot late (a busy process).
Later than that another replica may have taken the run over (a stalled master),
so the answer is kept only if this replica still holds the claim. A run keeps
one snapshot per slot in every backend, and the claims keep two replicas from
covering one moment, so none is stored twice. A run whose last poll was two
slots ago (one tick held up, by a slow storage say) is polled at once for the
slot it missed, whose moment is less than an interval past; one further
behind is polled at once for the current slot. Never in a burst.

Threads: the background thread sends each due poll on its master's kept-alive
connection and waits on every answer at once (:mod:`loadmanager._poll_loop`),
then stores the answers of 50 ms in one write. A pool of workers runs only
what would hold that thread up: a poll that cannot go so (a run's first poll,
one whose answer failed, a master reached through httpx) and the step an
answer asks for (finish, fail, stop or abort the run), which waits on its
master. One thread for the polls is what let one process poll 2,000 runs at
0.2 to 0.3 ms of CPU a poll instead of 0.4 to 0.5 (docs/performance.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Literal

from ._poll_loop import PollLoop
from ._workers import Workers
from .clock import Clock
from .errors import RepositoryUnavailableError
from .filters import MAX_LIMIT, RunFilter
from .lifecycle import Answer, LocustMaster, Next, RunLifecycle
from .models import LoadTestRun
from .repositories import Storage
from .status import ACTIVE_STATUSES, RunStatus

__all__ = ["Monitor"]

log = logging.getLogger("loadmanager")

_GATHER = 0.05
"""Seconds the loop gathers answers before storing them in one write."""


class Monitor:
    """Schedules the polls of active runs; see the module docstring.

    Args:
        storage: Where runs and claims live.
        lifecycle: What a poll does.
        clock: The time source.
        owner: This replica's name in monitoring claims.
        knows: Whether this replica knows a cluster (only those runs are claimed).
        interval: Seconds between two polls of a run (Locust's cache is 2 s);
            a claim lasts 1.5 intervals.
        max_workers: Threads for what would hold up the loop (see the module
            docstring), so one slow master delays no other.
        max_backlog: Polls and steps given to the workers (running or
            waiting), at most (sixteen per worker by default: fewer held polls
            back that the network, not the CPU, was delaying). Past it the
            Monitor gives the workers the runs that waited longest and leaves
            the rest for the next tick, instead of queueing polls whose
            answers would come slots late. The loop's polls do not count.

    Attributes:
        polls_looped: Polls sent on the background thread's loop so far.
        polls_pooled: Polls made in the pool so far (first polls, failed
            answers polled again, masters without kept-alive reads): a
            figure to watch, since each costs about twice a looped one.
            Both are exact when ``tick()`` runs beside the background thread.
    """

    def __init__(
        self,
        storage: Storage,
        lifecycle: RunLifecycle,
        *,
        clock: Clock,
        owner: str,
        knows: Callable[[str], bool],
        interval: float = 2.0,
        max_workers: int = 32,
        max_backlog: int | None = None,
    ) -> None:
        self._storage = storage
        self._lifecycle = lifecycle
        self._clock = clock
        self.owner = owner
        self._knows = knows
        self.interval = interval
        self.ttl = timedelta(seconds=interval * 1.5)
        self._max_workers = max_workers
        self._pool = Workers(max_workers, "lm-poll")
        self._max_backlog = max_backlog if max_backlog is not None else 16 * max_workers
        self._in_flight: set[str] = set()
        self._pool_jobs = 0  # polls and steps given to the pool and not yet done
        # run -> (pending?, slot, when the next slot is due), as last submitted
        self._polled: dict[str, tuple[bool, int, datetime]] = {}
        self._listed: tuple[float, list[LoadTestRun]] | None = None
        # Set when the storage failed, cleared by the next listing that works:
        # while it is down, each call to it blocks for its timeout, so the
        # Monitor probes it once a half interval and claims nothing meanwhile.
        self._storage_down = False
        self._tick = max(0.05, interval / 10)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_loop: PollLoop[tuple[LoadTestRun, int, LocustMaster]] | None = None
        self.polls_looped = 0
        self.polls_pooled = 0

    # -- the background thread ----------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self.running:
            return
        if self._pool.closed:  # started again after stop(): the old workers are gone
            self._pool = Workers(self._max_workers, "lm-poll")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="lm-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for polls in progress; claims lapse by themselves."""
        self._stop.set()
        loop = self._poll_loop
        if loop is not None:
            loop.wake()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._pool.shutdown()

    def _loop(self) -> None:
        # One thread sends every due poll and waits on all their answers at
        # once (PollLoop); the pool runs what would block it: polls that
        # cannot go so, and the steps an answer asks for (finish, stop...).
        # Its pace is real time, as the network's is, not the injected clock.
        loop: PollLoop[tuple[LoadTestRun, int, LocustMaster]] = PollLoop()
        self._poll_loop = loop
        answers: list[Answer] = []
        gathering = 0.0  # when the oldest of the answers not yet handled came
        next_tick = time.monotonic() + self._tick
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_tick:
                    try:
                        self._schedule(loop)
                    except Exception:  # a bad tick (storage down, say) must not end monitoring
                        log.exception("monitor tick failed; trying again next interval")
                    next_tick = now + self._tick
                until = next_tick - now
                if answers:
                    until = min(until, gathering + _GATHER - now)
                for (run, slot, master), polled in loop.wait(until):
                    if polled is None:  # failed or late: the usual poll says why
                        self._pooled(run, slot)
                        continue
                    if not answers:
                        gathering = time.monotonic()
                    answers.append((run, slot, master, polled))
                if answers and (not loop or time.monotonic() - gathering >= _GATHER):
                    self._handle(answers)
                    answers = []
        finally:
            self._poll_loop = None
            for run, _, _ in loop.close():
                self._done(run.id)
            if answers:  # answered before the stop: stored, not lost
                self._handle(answers)

    # -- claims ---------------------------------------------------------------

    def claim(self, run_id: str) -> bool:
        """Claim (or renew) monitoring of one run for this replica."""
        return self._storage.runs.claim_monitor(
            run_id, self.owner, now=self._clock.now(), ttl=self.ttl
        )

    def _claim_or_keep(self, run_ids: list[str]) -> set[str]:
        """Claim the runs in one call; while the storage is down, keep the runs held before."""
        with self._lock:
            held = {r for r in run_ids if r in self._polled}
        if self._storage_down or not run_ids:
            return held
        try:
            return self._storage.runs.claim_monitors(
                run_ids, self.owner, now=self._clock.now(), ttl=self.ttl
            )
        except RepositoryUnavailableError:
            self._storage_down = True
            return held

    @contextmanager
    def alone(self, run_id: str) -> Iterator[bool]:
        """Whether the caller may poll the run now: no poll of it is in progress here.

        ``refresh`` and ``reconcile`` poll in the caller's thread; two polls of
        one run at once would both settle it, and the second would use a
        master the first had released.
        """
        with self._lock:
            busy = run_id in self._in_flight
            if not busy:
                self._in_flight.add(run_id)
        try:
            yield not busy
        finally:
            if not busy:
                with self._lock:
                    self._in_flight.discard(run_id)

    def mine(self, run: LoadTestRun) -> bool:
        """Whether this replica may poll the run now: it knows the cluster and holds the claim."""
        return self._knows(run.locust_cluster_id) and self.claim(run.id)

    # -- scheduling -------------------------------------------------------------

    def _active(self) -> list[LoadTestRun]:
        # Listing every active run is the costly part of a tick; the list is
        # refreshed twice an interval, and the fine-grained ticks between use it.
        # While the storage is down, the last list stands: the runs this replica
        # held go on being polled, their snapshots held by the lifecycle.
        now = self._clock.monotonic()
        if self._listed is None or now - self._listed[0] >= self.interval / 2:
            try:
                found = self._storage.runs.find(
                    RunFilter(statuses=ACTIVE_STATUSES, limit=MAX_LIMIT)
                )
            except RepositoryUnavailableError:
                if self._listed is None:
                    raise
                self._storage_down = True
                self._listed = (now, self._listed[1])  # probe again in half an interval
                return self._listed[1]
            self._storage_down = False
            self._listed = (now, found)
            with self._lock:  # forget the schedule of runs that ended
                ids = {r.id for r in found}
                for gone in [k for k in self._polled if k not in ids]:
                    del self._polled[gone]
        return self._listed[1]

    def _slot_due(self, run: LoadTestRun, now: datetime, last: int) -> int | None:
        """The slot to poll the run in now, or ``None`` if it is not due."""
        began = run.started_at or run.audit.created_at
        phase = max(0.0, (now - began).total_seconds()) / run.parameters.poll_interval
        slot = int(phase)
        if last >= 0 and last == slot - 2:
            return slot - 1  # just missed one (a tick held up): its moment is recent, fill it
        behind = slot - 1 > last
        if slot > last and (phase - slot >= 0.5 or behind):
            return slot
        return None

    def tick(self) -> int:
        """One pass: claim and hand to the lifecycle every run that is due. Returns how many.

        Each poll runs in the pool's threads; the background thread's passes
        send the polls that can go so on its own loop instead.
        """
        return self._schedule(None)

    def _schedule(self, loop: PollLoop[tuple[LoadTestRun, int, LocustMaster]] | None) -> int:
        launching = self._lifecycle.launching
        now = self._clock.now()
        known: dict[str, bool] = {}
        due: list[tuple[LoadTestRun, bool, int, int]] = []
        submitted = 0
        active = self._active()
        with self._lock:  # one copy per tick rather than a lock per run
            polled, in_flight = dict(self._polled), set(self._in_flight)
        for run in active:
            pending = run.status is RunStatus.PENDING
            entry = polled.get(run.id)
            busy = run.id in in_flight
            # Slots count from the start once a run runs, from its creation
            # before: leaving pending begins a new count.
            last, next_due = (entry[1], entry[2]) if entry and entry[0] == pending else (-1, None)
            if busy or (next_due is not None and now < next_due):
                continue  # the cheap skip: most runs, most ticks
            cluster = run.locust_cluster_id
            if cluster not in known:
                known[cluster] = self._knows(cluster)
            if not known[cluster]:
                continue
            slot = self._slot_due(run, now, last)
            if slot is not None:
                due.append((run, pending, slot, last))
        # Should the pool's room run out, the runs most slots behind go first.
        due.sort(key=lambda d: d[3] - d[2])  # last - slot < 0: most behind first
        with self._lock:
            room = self._max_backlog - self._pool_jobs
        if loop is None:
            # Claim only what the pool has room for: a replica whose workers
            # are all held up (by hung masters, say) lets the claims of the
            # runs it cannot poll lapse, and another replica takes them.
            polls = [d for d in due if d[0].id not in launching]
            due = [d for d in due if d[0].id in launching] + polls[: max(0, room)]
        # Every claim due this tick renewed at once: one write, not one each.
        claimed = self._claim_or_keep([run.id for run, _, _, _ in due])
        for run, pending, slot, _ in due:
            if run.id not in claimed:
                continue
            if run.id not in launching:  # a start of ours: the claim is renewed, the start goes on
                way = self._submit(run, slot, loop, pool=room > 0)
                if way is None:
                    continue  # no room: due again next tick, and further behind
                room -= way == "pool"
                submitted += 1
            began = run.started_at or run.audit.created_at
            next_due = began + timedelta(seconds=(slot + 1.5) * run.parameters.poll_interval)
            with self._lock:
                self._polled[run.id] = (pending, slot, next_due)
        return submitted

    def _submit(
        self,
        run: LoadTestRun,
        slot: int,
        loop: PollLoop[tuple[LoadTestRun, int, LocustMaster]] | None,
        *,
        pool: bool,
    ) -> Literal["loop", "pool"] | None:
        """Poll the run on the loop if it can go so, else in the pool if ``pool``.

        Only the pool's polls count against the backlog. An overloaded Monitor
        that queued every due poll for its workers answered them slots late,
        and a late answer costs a claim check on top: at five times its
        capacity it stored a quarter of what it stores at capacity. The loop's
        polls need no such bound: the thread that sends them is the one that
        reads their answers, so it sends no more than it keeps up with.
        """
        with self._lock:
            self._in_flight.add(run.id)
        if loop is not None:
            try:
                sent = self._lifecycle.send_poll(run)
            except Exception:  # noqa: BLE001 - the pool's poll meets it again and says why
                sent = None
            if sent is not None:
                master, request = sent
                try:
                    loop.add(request, (run, slot, master))
                except (OSError, ValueError):  # a socket the selector refuses
                    log.exception("waiting on the poll of run %s failed", run.id)
                    request.cancel()
                else:
                    with self._lock:  # tick() may run beside the background thread
                        self.polls_looped += 1
                    return "loop"
        if not pool:
            self._done(run.id)
            return None
        self._pooled(run, slot)
        return "pool"

    def _pooled(self, run: LoadTestRun, slot: int) -> None:
        """Poll the run in the pool (it is in flight already)."""
        with self._lock:
            self.polls_pooled += 1
        self._to_pool(run.id, self._poll_task, run, slot)

    def _to_pool(self, run_id: str, task: Callable[..., None], *args: object) -> None:
        with self._lock:
            self._pool_jobs += 1
        try:
            self._pool.submit(task, *args)
        except RuntimeError:  # the pool shut down between the check and here
            with self._lock:
                self._pool_jobs -= 1
            self._done(run_id)

    def _poll_task(self, run: LoadTestRun, slot: int) -> None:
        try:
            if not self._lifecycle.poll(run, slot).is_active:
                self._storage.runs.release_monitor(run.id, self.owner)
        except Exception:
            log.exception("polling run %s failed", run.id)
        finally:
            self._done(run.id, pooled=True)

    def _handle(self, answers: list[Answer]) -> None:
        """Store the loop's answers in one write; their next steps go to the pool."""
        try:
            outcomes = self._lifecycle.answered(answers)
        except Exception:
            log.exception("storing the answers of %d polls failed", len(answers))
            for run, _, _, _ in answers:
                self._done(run.id)
            return
        for run, then in outcomes:
            if then is None:
                self._done(run.id)
                continue
            # Stopping (the pool shut down): the next poll, here or elsewhere, asks again.
            self._to_pool(run.id, self._step_task, run.id, then)

    def _step_task(self, run_id: str, then: Next) -> None:
        try:
            if not then().is_active:
                self._storage.runs.release_monitor(run_id, self.owner)
        except Exception:
            log.exception("the next step of run %s failed", run_id)
        finally:
            self._done(run_id, pooled=True)

    def _done(self, run_id: str, *, pooled: bool = False) -> None:
        with self._lock:
            self._in_flight.discard(run_id)
            self._pool_jobs -= pooled
