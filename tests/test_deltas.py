"""HistogramDeltas: the changes stored slot by slot add up to the master's
histograms exactly, across skipped slots and replicas, and a skipped slot reads
the run only since this replica's last poll. Real storage, memory and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest

import loadmanager as lm
from loadmanager import histograms as h
from loadmanager.deltas import HistogramDeltas, cumulative
from loadmanager.locust.stats import EndpointHistogram, MasterFigures
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run, make_snapshot

T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)
INTERVAL = timedelta(seconds=2)
MS = timedelta(milliseconds=1)


def slot_start(slot: int) -> datetime:
    return T0 + slot * INTERVAL


def figures_at(slot: int) -> MasterFigures:
    """The master's cumulative histograms at a slot: buckets grow, new ones appear."""
    items = {1: 3 * slot, 5: slot * slot, **{40 + k: 1 for k in range(slot + 1)}}
    aggregated = {b: c for b, c in items.items() if c}
    return MasterFigures(
        state="running",
        endpoints=(EndpointHistogram("GET", "/items", sum(aggregated.values()), 0, aggregated),),
        aggregated=EndpointHistogram("", "Aggregated", sum(aggregated.values()), 0, aggregated),
        errors=(),
        workers=(),
        locustfiles={},
    )


class Replica:
    """One replica's deltas over the shared storage, recording what it read."""

    def __init__(self, storage: lm.Storage, run_id: str) -> None:
        self.storage, self.run_id = storage, run_id
        self.reads: list[datetime | None] = []
        self.deltas = HistogramDeltas(self.read)

    def read(self, run_id: str, since: datetime | None) -> list[lm.MetricSnapshot]:
        self.reads.append(since)
        return self.storage.metrics.snapshots(run_id, start=since)

    def poll(self, slot: int, into: timedelta = INTERVAL / 2) -> None:
        """Poll at ``into`` the slot (a late answer keeps its slot: later still)."""
        changes = self.deltas.changes(self.run_id, slot, figures_at(slot), slot_start)
        at = slot_start(slot) + into
        snapshot = attrs.evolve(make_snapshot(self.run_id, at, slot=slot), histograms=changes)
        self.storage.metrics.add_many([snapshot])


@pytest.fixture(params=["memory", "sqlite"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[lm.Storage, str]]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'deltas.db'}"
    with lm.connect(url) as storage:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.RUNNING))
        yield storage, run.id


def stored_total(storage: lm.Storage, run_id: str) -> dict[str, dict[int, int]]:
    return cumulative(storage.metrics.snapshots(run_id))


def master_total(slot: int) -> dict[str, dict[int, int]]:
    figures = figures_at(slot)
    return {e.key: h.merge([e.histogram]) for e in (*figures.endpoints, figures.aggregated)}


def test_consecutive_slots_read_nothing_but_the_first_time(run: tuple[lm.Storage, str]) -> None:
    storage, run_id = run
    replica = Replica(storage, run_id)
    for slot in range(6):
        replica.poll(slot)
    assert replica.reads == [None]  # new to the run: everything once, then memory
    assert stored_total(storage, run_id) == master_total(5)


def test_skipped_slots_read_since_the_last_poll_not_the_whole_run(
    run: tuple[lm.Storage, str],
) -> None:
    storage, run_id = run
    replica = Replica(storage, run_id)
    for slot in (0, 1, 2, 6, 7, 11):
        replica.poll(slot)
    assert replica.reads == [None, slot_start(3) - MS, slot_start(8) - MS]
    assert stored_total(storage, run_id) == master_total(11)


def test_slots_another_replica_stored_meanwhile_are_counted_once(
    run: tuple[lm.Storage, str],
) -> None:
    """A took the run's first slots, B took it over for a while, A took it back."""
    storage, run_id = run
    a, b = Replica(storage, run_id), Replica(storage, run_id)
    for slot in (0, 1, 2):
        a.poll(slot)
    b.poll(3, into=timedelta(0))  # B is new to the run: it reads everything A stored;
    for slot in (4, 5):  # its first answer is stamped at the very start of slot 3
        b.poll(slot)
    a.poll(7)  # A skipped 3-6: B's changes for 3-5 are added to what A kept at 2
    assert a.reads == [None, slot_start(3) - MS]
    assert b.reads == [None]
    assert stored_total(storage, run_id) == master_total(7)


def test_without_slot_starts_a_skipped_slot_reads_everything(
    run: tuple[lm.Storage, str],
) -> None:
    storage, run_id = run
    replica = Replica(storage, run_id)
    replica.poll(0)
    changes = replica.deltas.changes(run_id, 3, figures_at(3))
    assert replica.reads == [None, None]
    assert {d.key: d.as_dict() for d in changes} == {
        k: h.diff(v, master_total(0)[k]) for k, v in master_total(3).items()
    }
