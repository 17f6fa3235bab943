"""GroupWriter: snapshot batches written at one moment share a write, and each
caller still learns its own batch's outcome. Real SQLite storage, real threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import loadmanager as lm
from loadmanager.held import GroupWriter, HeldSnapshots
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run, make_snapshot

T0 = datetime(2025, 5, 1, tzinfo=timezone.utc)
CALLERS = 12


class Gate:
    """Counts the storage's writes; the first one waits until every caller has queued."""

    def __init__(self, storage: lm.Storage) -> None:
        self.storage = storage
        self.writes: list[int] = []
        self.first = True
        self.writer: GroupWriter | None = None

    def hold_first(self) -> None:
        if self.first:
            self.first = False
            deadline = time.monotonic() + 10
            while len(self.writer._queue) < CALLERS - 1:  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the other callers never queued"
                time.sleep(0.005)

    def __call__(self, batch: Sequence[lm.MetricSnapshot]) -> object:
        self.hold_first()
        self.writes.append(len(batch))
        return self.storage.metrics.add_many(batch)


def run_callers(
    writer: GroupWriter, gate: Gate, batches: list[list[lm.MetricSnapshot]]
) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = [None] * len(batches)

    gate.writer = writer

    def call(i: int) -> None:
        try:
            writer(batches[i])
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(batches))]
    threads[0].start()  # the leader, held in its write until the rest queue
    while not writer._leading:
        time.sleep(0.001)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()
    return outcomes


@pytest.fixture
def storage(tmp_path: Path) -> lm.Storage:
    with lm.connect(f"sqlite:///{tmp_path / 'group.db'}") as storage:
        yield storage


def runs(storage: lm.Storage, n: int) -> list[lm.LoadTestRun]:
    test = storage.load_tests.add(make_load_test())
    return [
        storage.runs.add(make_run(test, id=f"r{i}", status=RunStatus.FINISHED)) for i in range(n)
    ]


def test_batches_queued_during_a_write_are_written_together(storage: lm.Storage) -> None:
    gate = Gate(storage)
    writer = GroupWriter(gate)
    batches = [
        [make_snapshot(run.id, T0 + timedelta(seconds=2 * k), slot=k) for k in range(2)]
        for run in runs(storage, CALLERS)
    ]
    outcomes = run_callers(writer, gate, batches)
    assert outcomes == [None] * CALLERS
    # The leader's own batch, then everything queued meanwhile in one write.
    assert gate.writes == [2, 2 * (CALLERS - 1)]
    for i in range(CALLERS):
        assert storage.metrics.count(f"r{i}") == 2


def test_a_batch_whose_run_is_gone_fails_alone(storage: lm.Storage) -> None:
    gate = Gate(storage)
    writer = GroupWriter(gate)
    batches = [[make_snapshot(run.id, T0, slot=0)] for run in runs(storage, CALLERS)]
    batches[5] = [make_snapshot("deleted-run", T0, slot=0)]
    outcomes = run_callers(writer, gate, batches)
    assert isinstance(outcomes[5], lm.NotFoundError)
    assert [o for i, o in enumerate(outcomes) if i != 5] == [None] * (CALLERS - 1)
    assert [storage.metrics.count(f"r{i}") for i in range(CALLERS) if i != 5] == [1] * (CALLERS - 1)
    # The joined write failed whole (a transaction), then each batch went alone.
    assert gate.writes == [1, CALLERS - 1, *([1] * (CALLERS - 1))]


def test_a_storage_outage_reaches_every_caller_of_the_joined_write(
    storage: lm.Storage,
) -> None:
    batches = [[make_snapshot(run.id, T0, slot=0)] for run in runs(storage, CALLERS)]
    gate = Gate(storage)

    def down(batch: Sequence[lm.MetricSnapshot]) -> object:
        if gate.first:
            return gate(batch)  # the leader's own write goes through, and holds the rest back
        gate.writes.append(len(batch))
        raise lm.RepositoryUnavailableError("the database went away")

    outcomes = run_callers(GroupWriter(down), gate, batches)
    assert outcomes[0] is None
    assert all(isinstance(o, lm.RepositoryUnavailableError) for o in outcomes[1:])
    assert gate.writes == [1, CALLERS - 1]  # tried once, together, not once each


def test_concurrent_callers_all_store_without_a_lost_or_doubled_snapshot(
    storage: lm.Storage,
) -> None:
    """No gate: 16 threads writing 40 slots each, leadership passed around freely."""
    writer = GroupWriter(storage.metrics.add_many)
    all_runs = runs(storage, 16)

    def work(run: lm.LoadTestRun) -> None:
        for k in range(40):
            writer([make_snapshot(run.id, T0 + timedelta(seconds=2 * k), slot=k)])

    threads = [threading.Thread(target=work, args=(run,)) for run in all_runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    assert [storage.metrics.count(run.id) for run in all_runs] == [40] * 16


def test_an_error_joining_a_group_fails_that_group_and_the_next_caller_leads(
    storage: lm.Storage,
) -> None:
    """An error that is not the storage's (here: reading one batch while joining
    the group) reaches every caller of that group, and later callers still get a
    leader."""
    (run,) = runs(storage, 1)
    first = threading.Event()

    def write(batch: Sequence[lm.MetricSnapshot]) -> object:
        if not first.is_set():
            first.set()  # the first leader's own write: hold it until two more queued
            deadline = time.monotonic() + 10
            while len(writer._queue) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.005)
        return storage.metrics.add_many(batch)

    writer = GroupWriter(write)

    class Unreadable(list[lm.MetricSnapshot]):
        def __iter__(self):  # type: ignore[no-untyped-def]
            raise MemoryError("simulated")

    outcomes: dict[str, BaseException | None] = {}

    def call(name: str, batch: Sequence[lm.MetricSnapshot]) -> None:
        try:
            writer(batch)
            outcomes[name] = None
        except BaseException as exc:
            outcomes[name] = exc

    lead = threading.Thread(target=call, args=("lead", [make_snapshot(run.id, T0, slot=0)]))
    lead.start()
    assert first.wait(10)
    bad = threading.Thread(
        target=call, args=("bad", Unreadable([make_snapshot(run.id, T0, slot=1)]))
    )
    good = threading.Thread(target=call, args=("good", [make_snapshot(run.id, T0, slot=2)]))
    bad.start()
    while len(writer._queue) < 1:
        time.sleep(0.001)
    good.start()
    for t in (lead, bad, good):
        t.join(timeout=10)
        assert not t.is_alive(), "a caller waits for a lead that was never passed"
    assert outcomes["lead"] is None
    assert isinstance(outcomes["bad"], MemoryError)
    assert isinstance(outcomes["good"], MemoryError)  # it shared the group that failed
    last = threading.Thread(target=call, args=("last", [make_snapshot(run.id, T0, slot=3)]))
    last.start()
    last.join(timeout=10)
    assert not last.is_alive(), "the lead was left with the failed group"
    assert outcomes["last"] is None
    assert storage.metrics.count(run.id) == 2


# -- HeldSnapshots.store_many: the Monitor loop's answers, one write for many runs ----------


def test_store_many_writes_every_run_at_once_and_a_gone_run_alone(storage: lm.Storage) -> None:
    writes: list[int] = []

    def write(batch: Sequence[lm.MetricSnapshot]) -> object:
        writes.append(len(batch))
        return storage.metrics.add_many(batch)

    held = HeldSnapshots(write, lambda run_id, since: [])
    ids = [run.id for run in runs(storage, 4)]
    assert held.store_many([make_snapshot(i, T0, slot=0) for i in ids]) == [True] * 4
    assert writes == [4]
    again = [make_snapshot(i, T0 + timedelta(seconds=2), slot=1) for i in ids]
    again[2] = make_snapshot("deleted-run", T0, slot=0)
    assert held.store_many(again) == [True, True, None, True]
    assert writes == [4, 4, 1, 1, 1, 1]  # the joined write failed whole, then each alone
    assert [storage.metrics.count(i) for i in ids] == [2, 2, 1, 2]


def test_store_many_holds_every_snapshot_while_the_storage_is_down(storage: lm.Storage) -> None:
    down = [True]

    def write(batch: Sequence[lm.MetricSnapshot]) -> object:
        if down[0]:
            raise lm.RepositoryUnavailableError("the database went away")
        return storage.metrics.add_many(batch)

    held = HeldSnapshots(write, lambda run_id, since: [])
    ids = [run.id for run in runs(storage, 3)]
    assert held.store_many([make_snapshot(i, T0, slot=0) for i in ids]) == [False] * 3
    assert [held.held(i) for i in ids] == [1, 1, 1]
    down[0] = False
    later = [make_snapshot(i, T0 + timedelta(seconds=2), slot=1) for i in ids]
    assert held.store_many(later) == [True] * 3
    assert [held.held(i) for i in ids] == [0, 0, 0]
    assert [[s.slot for s in storage.metrics.snapshots(i)] for i in ids] == [[0, 1]] * 3


def test_store_many_raises_an_unexpected_failure_and_loses_nothing(storage: lm.Storage) -> None:
    failing = [True]

    def write(batch: Sequence[lm.MetricSnapshot]) -> object:
        if failing[0]:
            raise RuntimeError("a bug in a storage adapter")
        return storage.metrics.add_many(batch)

    held = HeldSnapshots(write, lambda run_id, since: [])
    ids = [run.id for run in runs(storage, 2)]
    with pytest.raises(RuntimeError, match="a bug"):
        held.store_many([make_snapshot(i, T0, slot=0) for i in ids])
    failing[0] = False
    assert held.store_many([make_snapshot(i, T0 + timedelta(seconds=2), slot=1) for i in ids]) == [
        True,
        True,
    ]
    assert [storage.metrics.count(i) for i in ids] == [2, 2]
