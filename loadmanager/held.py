"""What a replica keeps of its runs' snapshots in memory, between polls.

Two things, both per run and both bounded:

- the **recent window** that a run's abort criteria are judged on, kept from poll
  to poll so that a poll reads nothing beyond the snapshot it just took (it is
  read from storage once, when this replica first judges the run);
- the **held back** snapshots, taken while the storage was unreachable, written
  with the next snapshot once it is back. Past ``limit`` snapshots across all
  runs the oldest of the run being added to are dropped, and counted, so the
  run can record what it lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from .errors import NotFoundError, RepositoryUnavailableError, ValidationError
from .metrics import MetricSnapshot

__all__ = ["GroupWriter", "HeldSnapshots"]

Writer = Callable[[Sequence[MetricSnapshot]], object]
Reader = Callable[[str, datetime], list[MetricSnapshot]]


class HeldSnapshots:
    """Recent windows and outage buffers of one replica's runs.

    Args:
        write: Stores a batch of snapshots (``metrics.add_many``).
        read: A run's snapshots since a time (``metrics.snapshots``).
        limit: Snapshots held back across all runs while the storage is down.
    """

    def __init__(self, write: Writer, read: Reader, *, limit: int = 10_000) -> None:
        self._write = write
        self._read = read
        self.limit = limit
        self._lock = threading.Lock()
        self._recent: dict[str, list[MetricSnapshot]] = {}
        self._unsaved: dict[str, list[MetricSnapshot]] = {}
        self._dropped: dict[str, int] = {}

    def store(self, snapshot: MetricSnapshot) -> bool:
        """Write the snapshot with any held back; ``False`` if the storage is down.

        Then it is held, with the others, for the next call.

        Raises:
            NotFoundError: the run is gone.
        """
        with self._lock:
            batch = self._take(snapshot)
        return self._store(batch)

    def store_many(self, snapshots: Sequence[MetricSnapshot]) -> list[bool | None]:
        """Write the snapshots of several runs, each with any held back, in one write.

        Returns, for each snapshot: ``True`` when written, ``False`` when the
        storage is down (it is held, as :meth:`store` holds it), ``None``
        when its run is gone. A write that fails for one run (deleted, say)
        is done again run by run, so the others are written all the same.

        Raises:
            Anything else storing one run's batch raised, once every run's
            was tried (what could not be written is held).
        """
        with self._lock:
            batches = [self._take(snapshot) for snapshot in snapshots]
        if len(batches) <= 1:
            return [self._outcome(batch) for batch in batches]
        try:
            self._write([s for batch in batches for s in batch])
        except (NotFoundError, ValidationError):
            pass  # one run's fault: each batch on its own below learns its outcome
        except RepositoryUnavailableError:
            for batch in batches:
                self._hold(batch)
            return [False] * len(batches)
        except BaseException:
            with self._lock:  # an unexpected failure loses nothing either
                for batch in batches:
                    run_id = batch[-1].load_test_run_id
                    self._unsaved[run_id] = [*batch, *self._unsaved.get(run_id, [])]
            raise
        else:
            return [True] * len(batches)
        outcomes: list[bool | None] = []
        failure: BaseException | None = None
        for batch in batches:
            try:
                outcomes.append(self._outcome(batch))
            except Exception as exc:  # noqa: BLE001 - raised once every batch was tried
                failure = failure or exc
                outcomes.append(False)
        if failure is not None:
            raise failure
        return outcomes

    def _take(self, snapshot: MetricSnapshot) -> list[MetricSnapshot]:
        """The snapshot after its run's held back ones (the caller holds the lock)."""
        return [*self._unsaved.pop(snapshot.load_test_run_id, []), snapshot]

    def _outcome(self, batch: list[MetricSnapshot]) -> bool | None:
        try:
            return self._store(batch)
        except NotFoundError:
            return None

    def _store(self, batch: list[MetricSnapshot]) -> bool:
        run_id = batch[-1].load_test_run_id
        try:
            self._write(batch)
        except NotFoundError:
            raise  # the run is gone, and its snapshots with it
        except RepositoryUnavailableError:
            self._hold(batch)
            return False
        except BaseException:
            with self._lock:  # an unexpected failure loses nothing either
                self._unsaved[run_id] = [*batch, *self._unsaved.get(run_id, [])]
            raise
        return True

    def _hold(self, batch: list[MetricSnapshot]) -> None:
        """Keep a batch the storage could not take, dropping the oldest past the limit."""
        run_id = batch[-1].load_test_run_id
        with self._lock:
            held = sum(len(v) for v in self._unsaved.values())
            over = max(0, held + len(batch) - self.limit)
            if over:
                batch = batch[over:]
                self._dropped[run_id] = self._dropped.get(run_id, 0) + over
            self._unsaved[run_id] = batch

    def held(self, run_id: str) -> int:
        """How many of the run's snapshots wait for the storage."""
        with self._lock:
            return len(self._unsaved.get(run_id, ()))

    def dropped(self, run_id: str) -> int:
        """How many of the run's snapshots were dropped past the limit."""
        with self._lock:
            return self._dropped.get(run_id, 0)

    def window(self, snapshot: MetricSnapshot, since: datetime) -> list[MetricSnapshot]:
        """The run's snapshots from ``since`` up to ``snapshot``, kept in memory."""
        run_id = snapshot.load_test_run_id
        with self._lock:
            recent = self._recent.get(run_id)
        if recent is None:
            recent = self._read(run_id, since)
        elif not recent or recent[-1].timestamp < snapshot.timestamp:
            recent.append(snapshot)
        recent = [s for s in recent if s.timestamp >= since]
        with self._lock:
            self._recent[run_id] = recent
        return recent

    def forget(self, run_id: str) -> None:
        """Drop the run's window and its dropped count (it ended, or is not ours)."""
        with self._lock:
            self._recent.pop(run_id, None)
            self._dropped.pop(run_id, None)


class GroupWriter:
    """Joins snapshot batches written at the same moment into one write.

    The Monitor's polls finish in many threads at once; one transaction each
    made them queue for the storage's single writer, and the queue made polls
    late. Here the first caller becomes the *leader*: it writes everything
    queued by then in one call, and hands the lead to the first caller that
    queued during that write (group commit, as databases do it for their logs).
    Each caller still learns whether *its* batch was stored: when a joined
    write fails for a reason other than the storage being down (one run
    deleted, say), every batch is written again on its own.

    Args:
        write: Stores a batch of snapshots (``metrics.add_many``).
    """

    def __init__(self, write: Writer) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False

    def __call__(self, batch: Sequence[MetricSnapshot]) -> None:
        """Store ``batch``, joined with any written at the same moment.

        Raises:
            Whatever storing ``batch`` on its own would raise.
        """
        mine = _Pending(batch)
        with self._lock:
            self._queue.append(mine)
            if not self._leading:
                self._leading = mine.lead = True
        if not mine.lead:
            mine.wait()  # written by a leader, or made the leader
        if not mine.done:
            with self._lock:
                group, self._queue = self._queue, []
            try:
                self._flush(group)
            except BaseException as exc:  # noqa: BLE001 - each caller gets it below
                self._settle([p for p in group if not p.done], exc)
            finally:  # whatever happened, the lead passes on: nobody waits forever
                with self._lock:
                    if self._queue:
                        self._queue[0].lead = True
                        self._queue[0].wake()
                    else:
                        self._leading = False
        if mine.error is not None:
            raise mine.error

    def _flush(self, group: list[_Pending]) -> None:
        if len(group) > 1:
            try:
                self._write([s for pending in group for s in pending.batch])
            except (NotFoundError, ValidationError):
                pass  # written one by one below: each learns its own outcome
            except BaseException as exc:  # noqa: BLE001 - the storage is down: for everyone
                self._settle(group, exc)
                return
            else:
                self._settle(group, None)
                return
        for pending in group:
            try:
                self._write(pending.batch)
            except BaseException as exc:  # noqa: BLE001 - handed to its caller
                self._settle([pending], exc)
            else:
                self._settle([pending], None)

    @staticmethod
    def _settle(group: list[_Pending], error: BaseException | None) -> None:
        for pending in group:
            pending.error = error
            pending.done = True
            pending.wake()


class _Pending:
    """One caller's batch, and how its caller learns the outcome.

    A waiting caller blocks on a lock taken when the batch was made, which
    :meth:`wake` releases: once when it is written or made the leader, and once
    more for a leader settling its own group, which holds that lock by then. An
    Event did the same through a Condition, whose Python-level wait and notify
    were 7 % of the Monitor's GIL time at 2,000 runs (docs/performance.md).
    """

    __slots__ = ("_woken", "batch", "done", "error", "lead")

    def __init__(self, batch: Sequence[MetricSnapshot]) -> None:
        self.batch = batch
        self.lead = False
        self.done = False
        self.error: BaseException | None = None
        self._woken = threading.Lock()
        self._woken.acquire()

    def wait(self) -> None:
        """Block until :meth:`wake`."""
        self._woken.acquire()

    def wake(self) -> None:
        """Let the waiting caller go on."""
        self._woken.release()
