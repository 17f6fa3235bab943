"""A run's whole life on a fake master built from captured answers, on a manual clock.

No test here sleeps: the clock's ``sleep`` moves manual time. Each master is a
:class:`~loadmanager.testing.FakeLocustMaster`, whose answers are a real run's
bodies parsed by the real parser; the same scenarios against real Locust are in
test_orchestrator_real.py and test_crash_recovery.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import loadmanager as lm
from loadmanager.deltas import cumulative
from loadmanager.locust import _wire
from loadmanager.testing import FakeLocustMaster, ManualClock, fake_master
from loadmanager.testing.seed import seed_load_test_body

ACTOR = "user@example.com"
INTERVAL = 2.0


class Masters:
    """One fake master per cluster URL, shared by every replica of a test."""

    def __init__(self) -> None:
        self.by_url: dict[str, FakeLocustMaster] = {}

    def __getitem__(self, url: str) -> FakeLocustMaster:
        return self.by_url.setdefault(url, FakeLocustMaster())

    def factory(self, config: lm.ClusterConfig) -> FakeLocustMaster:
        return self[config.url]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def masters() -> Masters:
    return Masters()


@pytest.fixture
def storage() -> Iterator[lm.Storage]:
    with lm.connect("memory://") as s:
        yield s


def replica(
    storage: lm.Storage, clock: ManualClock, masters: Masters, clusters: Any = None, **kw: Any
) -> lm.Orchestrator:
    registry = lm.ClusterRegistry(clusters or {"cluster-1": "http://m1"})
    return lm.Orchestrator(
        storage=storage,
        clusters=registry,
        clock=clock,
        client_factory=masters.factory,
        monitor=False,
        poll_interval=INTERVAL,
        **kw,
    )


@pytest.fixture
def orch(storage: lm.Storage, clock: ManualClock, masters: Masters) -> Iterator[lm.Orchestrator]:
    with replica(storage, clock, masters) as o:
        yield o


def create(orch: lm.Orchestrator, **changes: Any) -> lm.LoadTest:
    return orch.create_load_test({**seed_load_test_body(), **changes}, actor=ACTOR)


def test_a_timed_run_finishes_with_the_masters_final_figures(
    orch: lm.Orchestrator, clock: ManualClock, masters: Masters
) -> None:
    began = time.monotonic()
    run = orch.start_run(create(orch, defaultRunTime="10s").id, actor=ACTOR)
    master = masters["http://m1"]
    assert master.calls == ["reset_stats", "swarm"]
    for _ in range(5):
        clock.advance(INTERVAL)
        assert orch.refresh(run.id).status is lm.RunStatus.RUNNING
    master.state = "stopped"
    clock.advance(INTERVAL)
    ended = orch.refresh(run.id)
    assert ended.status is lm.RunStatus.FINISHED
    assert ended.summary is not None
    assert ended.summary.aggregated == master.stats_csv()[-1]
    assert clock.slept
    assert sum(clock.slept) >= orch._lifecycle.settle
    assert time.monotonic() - began < 5  # manual time: nothing really waited


def test_each_snapshot_is_keyed_by_its_poll_slot(orch: lm.Orchestrator, clock: ManualClock) -> None:
    run = orch.start_run(create(orch).id, actor=ACTOR)
    for step in (0.5, 0.4, 1.2, 2.0, 2.0):  # at 0.5, 0.9, 2.1, 4.1 and 6.1 s
        clock.advance(step)
        orch.refresh(run.id)
    slots = [s.slot for s in orch.snapshots(run.id)]
    assert slots == [0, 1, 2, 3]


def test_a_slots_start_falls_in_that_slot_and_the_moment_before_it_in_the_last(
    orch: lm.Orchestrator, clock: ManualClock
) -> None:
    run = orch.start_run(create(orch).id, actor=ACTOR)
    clock.advance(0.5)
    run = orch.refresh(run.id)
    lifecycle = orch._lifecycle
    for slot in (0, 1, 7, 1800):
        start = lifecycle.slot_start(run, slot)
        assert lifecycle.slot(run, start) == slot
        if slot:
            assert lifecycle.slot(run, start - timedelta(milliseconds=1)) == slot - 1


def _grown(times: int) -> dict[str, Any]:
    """The captured plugin answer with every bucket ``times`` as full."""
    doc = json.loads((fake_master.DATA / "plugin_figures.json").read_text())
    for row in (*doc["entries"], doc["total"]):
        row["histogram"] = {k: v * times for k, v in row["histogram"].items()}
    return doc


def test_an_unreadable_plugin_answer_keeps_the_snapshot_and_loses_no_request(
    orch: lm.Orchestrator, clock: ManualClock, masters: Masters
) -> None:
    run = orch.start_run(create(orch).id, actor=ACTOR)
    master = masters["http://m1"]
    for answer in (_grown(1), {"format": 99}, _grown(3)):
        master.plugin_figures = answer
        clock.advance(INTERVAL)
        orch.refresh(run.id)
    stored = orch.snapshots(run.id)
    assert [bool(s.histograms) for s in stored] == [True, False, True]
    assert len({s.slot for s in stored}) == 3  # the live figures were kept all along
    final = _wire.parse_figures(json.dumps(_grown(3)), "fake://m")
    expected = {e.key: e.histogram for e in (*final.endpoints, final.aggregated)}
    assert cumulative(stored) == expected  # the changes after the gap cover it exactly


def test_two_replicas_polling_one_slot_store_it_once(
    storage: lm.Storage, clock: ManualClock, masters: Masters
) -> None:
    with replica(storage, clock, masters) as a, replica(storage, clock, masters) as b:
        run = a.start_run(create(a).id, actor=ACTOR)
        clock.advance(1.0)
        a.refresh(run.id)
        clock.advance(3.5)  # a's claim lapsed; b takes the run over
        b.refresh(run.id)
        lifecycle_a = a._lifecycle
        assert lifecycle_a.slot(run, clock.now()) == 2
        # a still believes it polls: its late write lands in b's slot and is a no-op.
        late = masters["http://m1"].stats().to_snapshot(run.id, clock.now(), 2)
        assert storage.metrics.add(late) is False
        assert [s.slot for s in storage.metrics.snapshots(run.id)] == [0, 2]


def test_a_stop_is_recorded_once_locust_confirms(
    orch: lm.Orchestrator, clock: ManualClock, masters: Masters
) -> None:
    run = orch.start_run(create(orch).id, actor=ACTOR)
    clock.advance(3)
    stopping = orch.stop_run(run.id, actor="bob@example.com")
    assert stopping.status is lm.RunStatus.STOPPING
    assert masters["http://m1"].calls[-1] == "stop"
    clock.advance(INTERVAL)
    stopped = orch.refresh(run.id)
    assert stopped.status is lm.RunStatus.STOPPED
    assert stopped.summary is not None


def test_a_swarm_that_fails_after_it_was_sent_stops_the_master(
    orch: lm.Orchestrator, masters: Masters
) -> None:
    master = masters["http://m1"]
    original = master.swarm

    def ambiguous(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)  # Locust started ...
        raise lm.LocustTimeoutError("no answer in time", url="fake://master/swarm")  # ... but

    master.swarm = ambiguous  # type: ignore[method-assign]
    with pytest.raises(lm.LocustTimeoutError) as info:
        orch.start_run(create(orch).id, actor=ACTOR)
    failed = orch.get_run(info.value.run_id or "")
    assert failed.status is lm.RunStatus.FAILED
    assert master.calls[-1] == "stop"
    assert master.state == "stopped"
    assert orch.storage.runs.active_on_cluster("cluster-1") is None


def test_a_refused_swarm_fails_the_run_with_lokusts_message(
    orch: lm.Orchestrator, masters: Masters
) -> None:
    masters["http://m1"].refuse_swarm = "No runner"
    with pytest.raises(lm.LocustRejectedError) as info:
        orch.start_run(create(orch).id, actor=ACTOR)
    failed = orch.get_run(info.value.run_id or "")
    assert "No runner" in (failed.failure_reason or "")
    assert masters["http://m1"].state == "stopped"  # stopped to be sure; harmless if idle


# -- a start whose host died ---------------------------------------------------


def pending_run(orch: lm.Orchestrator, clock: ManualClock) -> lm.LoadTestRun:
    """A run recorded pending by a host that then died (nobody claims it)."""
    test = create(orch)
    params = lm.RunOverrides().resolve(test, poll_interval=INTERVAL)
    return orch.storage.runs.add(
        lm.LoadTestRun.new(test, params, id="orphan", at=clock.now(), actor=ACTOR)
    )


def test_a_pending_run_whose_load_runs_is_adopted(
    orch: lm.Orchestrator, clock: ManualClock, masters: Masters
) -> None:
    pending_run(orch, clock)
    masters["http://m1"].state = "running"  # the swarm landed before the host died
    [adopted] = orch.reconcile()
    assert adopted.status is lm.RunStatus.RUNNING
    assert "stop" not in masters["http://m1"].calls
    clock.advance(3)
    orch.refresh(adopted.id)
    assert orch.storage.metrics.count(adopted.id) == 1  # monitored from here on


def test_a_pending_run_that_never_began_fails_once_lokusts_cache_has_passed(
    orch: lm.Orchestrator, clock: ManualClock, masters: Masters
) -> None:
    pending_run(orch, clock)
    [first_look] = orch.reconcile()  # "ready" may be Locust's answer from before the swarm
    assert first_look.status is lm.RunStatus.PENDING
    assert "stop" not in masters["http://m1"].calls
    clock.advance(3)
    [settled] = orch.reconcile()
    assert settled.status is lm.RunStatus.FAILED
    assert "interrupted" in (settled.failure_reason or "")
    assert masters["http://m1"].calls[-1] == "stop"


def test_a_start_in_progress_is_left_to_its_starter(
    storage: lm.Storage, clock: ManualClock, masters: Masters
) -> None:
    """A heir touches a pending run only once the starter's claim has lapsed."""
    with replica(storage, clock, masters) as starter, replica(storage, clock, masters) as heir:
        test = create(starter)
        params = lm.RunOverrides().resolve(test, poll_interval=INTERVAL)
        pending = starter._lifecycle.begin(test, params, run_id="r1", actor=ACTOR)
        assert heir.reconcile() == [pending]  # claimed by the starter: untouched
        clock.advance(3.5)  # the starter is stuck past its claim
        heir.reconcile()  # the master looks idle: look again after Locust's cache
        clock.advance(3)
        [failed] = heir.reconcile()
        assert failed.status is lm.RunStatus.FAILED
        # The starter comes back: its swarm starts Locust, which must not be left running.
        with pytest.raises(lm.InvalidTransitionError):
            starter._lifecycle.launch(pending, actor=ACTOR)
        assert masters["http://m1"].state == "stopped"


# -- replicas with different clusters -----------------------------------------


def test_a_replica_leaves_runs_on_clusters_it_does_not_know(
    storage: lm.Storage, clock: ManualClock, masters: Masters
) -> None:
    with (
        replica(storage, clock, masters, {"cluster-1": "http://m1"}) as one,
        replica(storage, clock, masters, {"cluster-2": "http://m2"}) as two,
    ):
        run = one.start_run(create(one).id, actor=ACTOR)
        clock.advance(10)  # one's claim lapsed long ago
        assert two.refresh(run.id).status is lm.RunStatus.RUNNING
        assert two.reconcile() == [run]
        assert storage.metrics.count(run.id) == 0
        assert [r.id for r in two.unmonitored_runs()] == [run.id]
        one.clusters.remove("cluster-1")  # forgetting a cluster fails nothing
        assert one.refresh(run.id).status is lm.RunStatus.RUNNING
        one.clusters.register("cluster-1", "http://m1")
        one.refresh(run.id)
        assert two.unmonitored_runs() == []
        assert storage.metrics.count(run.id) == 1


# -- criteria travel with the run ----------------------------------------------


def test_editing_the_criteria_mid_run_does_not_change_its_verdict(
    orch: lm.Orchestrator, clock: ManualClock, masters: Masters
) -> None:
    test = create(orch, thresholds=["error_rate < 50%"])
    run = orch.start_run(test.id, actor=ACTOR)
    assert [lm.grammar.render(t) for t in run.parameters.thresholds] == ["error_rate < 50%"]
    orch.update_load_test(test.id, {"thresholds": ["error_rate < 1%"]}, actor=ACTOR)
    clock.advance(3)
    orch.stop_run(run.id, actor=ACTOR)
    clock.advance(INTERVAL)
    ended = orch.refresh(run.id)
    assert ended.verdict is not None
    assert ended.verdict.passed  # judged by the criteria it started with
    [result] = ended.verdict.results
    assert result.criterion == "error_rate < 50%"
    assert lm.to_dict(ended)["thresholds"] == [lm.to_dict(t) for t in run.parameters.thresholds]


def test_the_baseline_figures_are_frozen_at_the_start(
    orch: lm.Orchestrator, clock: ManualClock, masters: Masters
) -> None:
    test = create(orch, thresholds=["median <= baseline * 1.5"], defaultRunTime="5s")
    first = orch.start_run(test.id, actor=ACTOR)
    clock.advance(3)
    masters["http://m1"].state = "stopped"
    first = orch.refresh(first.id)
    assert first.verdict is not None
    orch.set_baseline(test.id, first.id, actor=ACTOR)
    second = orch.start_run(test.id, actor=ACTOR)
    assert second.parameters.baseline is not None
    assert second.parameters.baseline.run_id == first.id
    assert (
        second.parameters.baseline.figure("median", None)
        == first.summary.aggregated.median_response_time
    )  # type: ignore[union-attr]


class CountingStorage:
    """Memory storage that counts the reads an abort check could make."""

    def __init__(self, inner: lm.Storage) -> None:
        self.inner = inner
        self.reads: list[str] = []
        outer = self

        class Metrics:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner.metrics, name)

            def snapshots(self, *args: Any, **kwargs: Any) -> list[lm.MetricSnapshot]:
                outer.reads.append("snapshots")
                return inner.metrics.snapshots(*args, **kwargs)

        class Tests:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner.load_tests, name)

            def get(self, test_id: str) -> lm.LoadTest:
                outer.reads.append("load_tests.get")
                return inner.load_tests.get(test_id)

        self.metrics = Metrics()
        self.load_tests = Tests()
        self.runs = inner.runs
        self.locustfiles = inner.locustfiles
        self.url = inner.url

    def close(self) -> None:
        self.inner.close()


def test_the_abort_check_reads_nothing_per_poll_beyond_the_snapshot(
    clock: ManualClock, masters: Masters
) -> None:
    counting = CountingStorage(lm.connect("memory://"))
    with replica(counting, clock, masters) as orch:  # type: ignore[arg-type]
        test = create(orch, thresholds=["fail_rps < 100 for 10s, abort"])
        run = orch.start_run(test.id, actor=ACTOR)
        counting.reads.clear()
        for _ in range(6):
            clock.advance(INTERVAL)
            orch.refresh(run.id)
        assert counting.reads == ["snapshots"]  # once, when it first judged the run
        masters["http://m1"].overrides = {"current_fail_per_sec": 500.0}
        for _ in range(7):
            clock.advance(INTERVAL)
            run = orch.refresh(run.id)
            if run.status is not lm.RunStatus.RUNNING:
                break
        assert run.status is lm.RunStatus.STOPPING
        assert (run.failure_reason or "").startswith("aborted: fail_rps < 100 for 10s, abort")
        assert counting.reads == ["snapshots"]
        clock.advance(INTERVAL)
        ended = orch.refresh(run.id)
        assert ended.status is lm.RunStatus.STOPPED
        assert ended.verdict is not None
        assert not ended.verdict.passed


def test_a_late_answer_keeps_its_slot_unless_the_run_was_taken_over(
    storage: lm.Storage, clock: ManualClock, masters: Masters
) -> None:
    with replica(storage, clock, masters) as a, replica(storage, clock, masters) as b:
        run = a.start_run(create(a).id, actor=ACTOR)
        clock.advance(INTERVAL * 1.5)  # scheduled in slot 0, answered in slot 1: kept as 0
        a._lifecycle.poll(run, slot=0)
        clock.advance(INTERVAL * 2)  # scheduled in slot 1, answered in slot 3; still a's
        a._lifecycle.poll(run, slot=1)
        assert [s.slot for s in storage.metrics.snapshots(run.id)] == [0, 1]
        clock.advance(INTERVAL * 2)  # a stalls past its claim; b takes over, polls slot 5
        assert b.monitor.claim(run.id)
        b._lifecycle.poll(run, slot=5)
        a._lifecycle.poll(run, slot=2)  # a's answer for slot 2 arrives in slot 5: dropped
        assert [s.slot for s in storage.metrics.snapshots(run.id)] == [0, 1, 5]


def test_a_stale_idle_answer_does_not_fail_a_start_whose_swarm_landed(
    orch: lm.Orchestrator, clock: ManualClock, masters: Masters
) -> None:
    """The heir's first look may be Locust's cached answer from before the swarm."""
    pending_run(orch, clock)
    [first_look] = orch.reconcile()  # cached: still "ready"
    assert first_look.status is lm.RunStatus.PENDING
    masters["http://m1"].state = "running"  # the cache expired: the load runs
    clock.advance(3)
    [adopted] = orch.reconcile()
    assert adopted.status is lm.RunStatus.RUNNING
    assert "stop" not in masters["http://m1"].calls


# -- overload ------------------------------------------------------------------


def test_an_overloaded_monitor_polls_the_runs_furthest_behind_first(
    storage: lm.Storage, clock: ManualClock, masters: Masters
) -> None:
    from loadmanager.monitor import Monitor

    clusters = {f"c{i}": f"http://m{i}" for i in range(6)}
    with replica(storage, clock, masters, clusters) as orch:
        runs = [
            orch.start_run(create(orch, name=f"t{i}", locustClusterId=f"c{i}").id, actor=ACTOR)
            for i in range(6)
        ]
        polled: list[str] = []
        gate = threading.Event()
        for i, run in enumerate(runs):

            def answer(run_id: str = run.id) -> None:
                gate.wait(10)  # every master is slow until the gate opens
                polled.append(run_id)

            masters[f"http://m{i}"].on_stats = answer
        # One worker, room for two polls: the capacity of a third of the runs.
        monitor = Monitor(
            storage, orch._lifecycle, clock=clock, owner=orch.owner,
            knows=orch.clusters.__contains__, interval=INTERVAL, max_workers=1, max_backlog=2,
        )  # fmt: skip
        try:
            clock.advance(1.2)  # the middle of every run's first slot
            assert monitor.tick() == 2
            assert monitor.tick() == 0  # both still in progress: no room
            gate.set()
            _settle(monitor, polled, 2)
            assert monitor.tick() == 2  # two of the four left; the first two are done
            _settle(monitor, polled, 4)
            assert len(set(polled)) == 4
            clock.advance(INTERVAL)  # the next slot: all six due again
            assert monitor.tick() == 2
            _settle(monitor, polled, 6)
            # The two never polled are the furthest behind, so they go first.
            assert set(polled[4:]) == {r.id for r in runs} - set(polled[:4])
        finally:
            gate.set()
            monitor.stop()


def test_a_monitor_started_again_after_stop_polls_again(
    storage: lm.Storage, clock: ManualClock, masters: Masters
) -> None:
    from loadmanager.monitor import Monitor

    with replica(storage, clock, masters) as orch:
        run = orch.start_run(create(orch).id, actor=ACTOR)
        polled: list[str] = []
        masters["http://m1"].on_stats = lambda: polled.append(run.id)
        monitor = Monitor(
            storage, orch._lifecycle, clock=clock, owner=orch.owner,
            knows=orch.clusters.__contains__, interval=INTERVAL,
        )  # fmt: skip
        monitor.start()
        monitor.stop()
        monitor.start()
        try:
            clock.advance(1.2)  # the middle of the first slot: the loop's next tick polls
            _settle(monitor, polled, 1)
        finally:
            monitor.stop()


def _settle(monitor: Any, polled: list[str], count: int) -> None:
    deadline = time.monotonic() + 10
    while (len(polled) < count or monitor._in_flight) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(polled) >= count
