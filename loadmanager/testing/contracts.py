"""The behaviour every storage backend must show, written once.

Subclass :class:`StorageContract` in a test module and provide a ``storage``
fixture that yields a fresh, empty :class:`~loadmanager.repositories.Storage`;
pytest collects every test below against it.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..clock import to_millis
from ..errors import (
    ActiveRunError,
    ClusterBusyError,
    DuplicateError,
    NotFoundError,
    StaleVersionError,
    ValidationError,
)
from ..filters import LoadTestFilter, RunFilter
from ..locustfiles import Locustfile
from ..metrics import (
    AGGREGATED,
    EndpointStats,
    HistogramDelta,
    MetricSnapshot,
    SeriesBucket,
    WorkerHealth,
)
from ..models import LoadTest
from ..repositories import MonitorClaim, Storage
from ..repositories._series import python_series, snapshot_values, window_for
from ..status import RunStatus
from .factories import make_load_test, make_run, make_snapshot, make_summary

__all__ = ["StorageContract"]

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


_PER_BACKEND = settings(
    max_examples=25,
    deadline=None,
    # One contract class runs per backend, so one method has several executors;
    # each example builds its own test and run, so none leaks into the next.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
)
"""The settings of the contract suite's properties."""


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class LoadTestContract:
    """Load test CRUD, filters, ordering and concurrency."""

    def test_add_then_get_returns_an_equal_test(self, storage: Storage) -> None:
        test = make_load_test(description="ünïcode ✓", tags=("a", "b"), default_run_time="1h2m3s")
        storage.load_tests.add(test)
        assert storage.load_tests.get(test.id) == test

    def test_get_missing_raises_not_found(self, storage: Storage) -> None:
        with pytest.raises(NotFoundError) as info:
            storage.load_tests.get("nope")
        assert info.value.object_id == "nope"
        assert isinstance(info.value, LookupError)

    def test_add_same_id_twice_is_a_duplicate(self, storage: Storage) -> None:
        test = make_load_test()
        storage.load_tests.add(test)
        with pytest.raises(DuplicateError):
            storage.load_tests.add(attrs.evolve(test, name="other"))
        assert storage.load_tests.get(test.id).name == test.name

    def test_update_bumps_the_version_and_stores_the_change(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        changed = storage.load_tests.update(attrs.evolve(test, name="renamed", tags=("new",)))
        assert changed.version == test.version + 1
        assert storage.load_tests.get(test.id) == changed
        assert storage.load_tests.find(LoadTestFilter(tags=["new"])) == [changed]
        assert storage.load_tests.find(LoadTestFilter(tags=["api"])) == []

    def test_stale_update_is_refused_and_changes_nothing(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        storage.load_tests.update(attrs.evolve(test, name="first"))
        with pytest.raises(StaleVersionError) as info:
            storage.load_tests.update(attrs.evolve(test, name="second"))
        assert (info.value.expected_version, info.value.actual_version) == (1, 2)
        assert storage.load_tests.get(test.id).name == "first"

    def test_update_of_a_missing_test_is_not_found(self, storage: Storage) -> None:
        with pytest.raises(NotFoundError):
            storage.load_tests.update(make_load_test())

    def test_concurrent_updates_of_one_version_let_exactly_one_win(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        outcomes: list[str] = []
        barrier = threading.Barrier(8)

        def write(n: int) -> None:
            barrier.wait()
            try:
                storage.load_tests.update(attrs.evolve(test, name=f"writer {n}"))
                outcomes.append("won")
            except StaleVersionError:
                outcomes.append("stale")

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["stale"] * 7 + ["won"]
        assert storage.load_tests.get(test.id).version == 2

    def test_delete_removes_the_test_its_runs_and_their_metrics(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        keep = storage.load_tests.add(make_load_test(locust_cluster_id="other"))
        run = storage.runs.add(make_run(test, status=RunStatus.FINISHED))
        kept_run = storage.runs.add(make_run(keep, status=RunStatus.FINISHED))
        storage.metrics.add(make_snapshot(run.id, _at(0)))
        storage.metrics.add(make_snapshot(kept_run.id, _at(0)))
        storage.load_tests.delete(test.id)
        with pytest.raises(NotFoundError):
            storage.load_tests.get(test.id)
        with pytest.raises(NotFoundError):
            storage.runs.get(run.id)
        assert storage.metrics.count(run.id) == 0
        assert storage.runs.get(kept_run.id) == kept_run
        assert storage.metrics.count(kept_run.id) == 1

    def test_delete_with_an_active_run_is_refused_and_keeps_everything(
        self, storage: Storage
    ) -> None:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.RUNNING))
        storage.metrics.add(make_snapshot(run.id, _at(0)))
        with pytest.raises(ActiveRunError) as info:
            storage.load_tests.delete(test.id)
        assert info.value.run_id == run.id
        assert storage.load_tests.get(test.id) == test
        assert storage.metrics.count(run.id) == 1

    def test_delete_missing_is_not_found(self, storage: Storage) -> None:
        with pytest.raises(NotFoundError):
            storage.load_tests.delete("nope")

    def _three(self, storage: Storage) -> tuple[LoadTest, LoadTest, LoadTest]:
        a = storage.load_tests.add(
            make_load_test(
                name="checkout 50%_off",
                tenant_id="t1",
                env_id="prod",
                tags=("api", "prod"),
                at=_at(1),
                actor="alice",
            )
        )
        b = storage.load_tests.add(
            make_load_test(
                name="search .*",
                tenant_id="t1",
                env_id="dev",
                tags=("api",),
                at=_at(2),
                actor="bob",
            )
        )
        c = storage.load_tests.add(
            make_load_test(
                name="login",
                tenant_id="t2",
                env_id="prod",
                tags=("prod", "web"),
                at=_at(3),
                actor="alice",
            )
        )
        return a, b, c

    def test_find_without_filter_lists_all_oldest_first(self, storage: Storage) -> None:
        a, b, c = self._three(storage)
        assert storage.load_tests.find(LoadTestFilter()) == [a, b, c]

    def test_find_filters_by_tenant_env_and_creator(self, storage: Storage) -> None:
        a, b, c = self._three(storage)
        assert storage.load_tests.find(LoadTestFilter(tenant_id="t1")) == [a, b]
        assert storage.load_tests.find(LoadTestFilter(tenant_ids=["t2", "t9"])) == [c]
        assert storage.load_tests.find(LoadTestFilter(tenant_ids=[])) == []
        assert storage.load_tests.find(LoadTestFilter(env_id="prod")) == [a, c]
        assert storage.load_tests.find(LoadTestFilter(tenant_id="t1", env_id="prod")) == [a]
        assert storage.load_tests.find(LoadTestFilter(created_by="alice")) == [a, c]

    def test_find_by_tags_needs_all_of_them(self, storage: Storage) -> None:
        a, b, c = self._three(storage)
        assert storage.load_tests.find(LoadTestFilter(tags=["api"])) == [a, b]
        assert storage.load_tests.find(LoadTestFilter(tags=["api", "prod"])) == [a]
        assert storage.load_tests.find(LoadTestFilter(tags=["prod", "prod"])) == [a, c]
        assert storage.load_tests.find(LoadTestFilter(tags=["api", "web"])) == []

    def test_find_by_name_takes_the_text_literally(self, storage: Storage) -> None:
        a, b, c = self._three(storage)
        assert storage.load_tests.find(LoadTestFilter(name_contains="50%_")) == [a]
        assert storage.load_tests.find(LoadTestFilter(name_contains="%")) == [a]
        assert storage.load_tests.find(LoadTestFilter(name_contains=".*")) == [b]
        assert storage.load_tests.find(LoadTestFilter(name_contains="_")) == [a]
        assert storage.load_tests.find(LoadTestFilter(name_contains="LOGIN")) == []
        assert storage.load_tests.find(LoadTestFilter(name_contains="ogi")) == [c]

    def test_find_respects_the_limit_in_order(self, storage: Storage) -> None:
        a, b, _ = self._three(storage)
        assert storage.load_tests.find(LoadTestFilter(limit=2)) == [a, b]

    def test_ties_in_creation_time_are_ordered_by_id(self, storage: Storage) -> None:
        tests = [make_load_test(id=i, at=_at(5)) for i in ("c3", "a1", "b2")]
        for t in tests:
            storage.load_tests.add(t)
        assert [t.id for t in storage.load_tests.find(LoadTestFilter())] == ["a1", "b2", "c3"]


class RunContract:
    """Runs: CRUD, filters and the per-cluster lease."""

    def test_add_then_get_returns_an_equal_run(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        run = make_run(test, status=RunStatus.FINISHED, summary=make_summary(_at(9)))
        storage.runs.add(run)
        assert storage.runs.get(run.id) == run

    def test_get_missing_raises_not_found(self, storage: Storage) -> None:
        with pytest.raises(NotFoundError):
            storage.runs.get("nope")

    def test_a_run_of_a_missing_test_is_refused(self, storage: Storage) -> None:
        with pytest.raises(NotFoundError) as info:
            storage.runs.add(make_run(make_load_test(id="ghost")))
        assert info.value.object_id == "ghost"

    def test_duplicate_run_id_is_refused(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.FINISHED))
        with pytest.raises(DuplicateError):
            storage.runs.add(run)

    def test_second_active_run_on_a_cluster_is_busy_and_names_the_holder(
        self, storage: Storage
    ) -> None:
        test = storage.load_tests.add(make_load_test())
        holder = storage.runs.add(make_run(test))
        with pytest.raises(ClusterBusyError) as info:
            storage.runs.add(make_run(test))
        assert info.value.cluster_id == test.locust_cluster_id
        assert info.value.active_run_id == holder.id
        assert storage.runs.active_on_cluster(test.locust_cluster_id) == holder

    def test_other_clusters_and_ended_runs_do_not_hold_the_lease(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        other = storage.load_tests.add(make_load_test(locust_cluster_id="cluster-2"))
        storage.runs.add(make_run(test, status=RunStatus.FINISHED))
        storage.runs.add(make_run(test, status=RunStatus.FAILED))
        first = storage.runs.add(make_run(test, status=RunStatus.RUNNING))
        storage.runs.add(make_run(other))
        assert storage.runs.active_on_cluster("cluster-1") == first
        assert storage.runs.active_on_cluster("nowhere") is None

    def test_ending_a_run_releases_the_lease(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.RUNNING))
        ended = storage.runs.update(run.transition(RunStatus.FINISHED, at=_at(5), actor="m"))
        assert ended.version == run.version + 1
        assert storage.runs.active_on_cluster(test.locust_cluster_id) is None
        storage.runs.add(make_run(test))

    def test_runs_on_clusters_of_their_own_hold_no_lease(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        own = [storage.runs.add(make_run(test, exclusive=False)) for _ in range(3)]
        assert storage.runs.active_on_cluster(test.locust_cluster_id) is None
        held = storage.runs.add(make_run(test))  # a static run still takes the lease
        assert storage.runs.active_on_cluster(test.locust_cluster_id) == held
        with pytest.raises(ClusterBusyError):
            storage.runs.add(make_run(test))
        again = storage.runs.get(own[0].id)
        assert not again.exclusive
        assert again.lease_key == f"run:{own[0].id}"
        storage.runs.update(again.transition(RunStatus.RUNNING, at=_at(1), actor="a"))
        assert storage.runs.active_on_cluster(test.locust_cluster_id) == held

    def test_stale_run_update_is_refused(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test))
        storage.runs.update(run.transition(RunStatus.RUNNING, at=_at(1), actor="a"))
        with pytest.raises(StaleVersionError):
            storage.runs.update(run.transition(RunStatus.FAILED, at=_at(1), actor="b"))
        assert storage.runs.get(run.id).status is RunStatus.RUNNING

    def test_racing_threads_get_the_lease_exactly_once(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        barrier = threading.Barrier(16)
        winners: list[str] = []
        busy: list[str | None] = []

        def start() -> None:
            run = make_run(test)
            barrier.wait()
            try:
                storage.runs.add(run)
                winners.append(run.id)
            except ClusterBusyError as exc:
                busy.append(exc.active_run_id)

        threads = [threading.Thread(target=start) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1
        assert len(busy) == 15
        assert storage.runs.active_on_cluster(test.locust_cluster_id).id == winners[0]  # type: ignore[union-attr]

    def _runs(self, storage: Storage) -> dict[str, object]:
        t1 = storage.load_tests.add(make_load_test(tenant_id="t1", env_id="prod", at=_at(0)))
        t2 = storage.load_tests.add(
            make_load_test(tenant_id="t2", env_id="dev", locust_cluster_id="c2", at=_at(0))
        )
        r1 = storage.runs.add(make_run(t1, status=RunStatus.FINISHED, at=_at(10)))
        r2 = storage.runs.add(make_run(t1, status=RunStatus.STOPPED, at=_at(20)))
        r3 = storage.runs.add(make_run(t2, status=RunStatus.RUNNING, at=_at(30)))
        r4 = storage.runs.add(make_run(t1, status=RunStatus.PENDING, at=_at(40)))
        return {"t1": t1, "t2": t2, "r1": r1, "r2": r2, "r3": r3, "r4": r4}

    def test_find_runs_by_test_tenant_env_and_cluster(self, storage: Storage) -> None:
        o = self._runs(storage)
        t1 = o["t1"]
        assert isinstance(t1, LoadTest)
        find = storage.runs.find
        assert find(RunFilter(load_test_id=t1.id)) == [o["r1"], o["r2"], o["r4"]]
        assert find(RunFilter(tenant_id="t2")) == [o["r3"]]
        assert find(RunFilter(tenant_ids=["t1"], limit=2)) == [o["r1"], o["r2"]]
        assert find(RunFilter(env_id="dev")) == [o["r3"]]
        assert find(RunFilter(locust_cluster_id="cluster-1")) == [o["r1"], o["r2"], o["r4"]]
        assert find(RunFilter()) == [o["r1"], o["r2"], o["r3"], o["r4"]]

    def test_find_runs_by_status_and_start_time(self, storage: Storage) -> None:
        o = self._runs(storage)
        find = storage.runs.find
        assert find(RunFilter(statuses=[RunStatus.STOPPED, "running"])) == [o["r2"], o["r3"]]
        assert find(RunFilter(statuses=["failed"])) == []
        assert find(RunFilter(statuses=[])) == []
        # r4 is pending: never started, so no start-time filter matches it.
        assert find(RunFilter(started_after=_at(20))) == [o["r2"], o["r3"]]
        assert find(RunFilter(started_before=_at(20))) == [o["r1"]]
        assert find(RunFilter(started_after=_at(10), started_before=_at(30))) == [o["r1"], o["r2"]]


class MonitorClaimContract:
    """The monitoring claim that lets several host replicas share the work."""

    def test_a_claim_excludes_others_until_it_expires(self, storage: Storage) -> None:
        run = storage.runs.add(
            make_run(storage.load_tests.add(make_load_test()), status=RunStatus.RUNNING)
        )
        ttl = timedelta(seconds=3)
        assert storage.runs.claim_monitor(run.id, "a", now=_at(0), ttl=ttl)
        assert not storage.runs.claim_monitor(run.id, "b", now=_at(1), ttl=ttl)
        assert storage.runs.claim_monitor(run.id, "a", now=_at(2), ttl=ttl)  # renewal
        assert not storage.runs.claim_monitor(run.id, "b", now=_at(4.9), ttl=ttl)
        assert storage.runs.claim_monitor(run.id, "b", now=_at(5.1), ttl=ttl)  # expired
        assert not storage.runs.claim_monitor(run.id, "a", now=_at(5.2), ttl=ttl)

    def test_many_claims_at_once_take_exactly_what_one_at_a_time_would(
        self, storage: Storage
    ) -> None:
        test = storage.load_tests.add(make_load_test())
        runs = [
            storage.runs.add(make_run(test, status=RunStatus.RUNNING, exclusive=False))
            for _ in range(5)
        ]
        free, mine, theirs, lapsed, ended = (r.id for r in runs)
        ttl = timedelta(seconds=3)
        assert storage.runs.claim_monitor(mine, "a", now=_at(0), ttl=ttl)
        assert storage.runs.claim_monitor(theirs, "b", now=_at(0), ttl=ttl)
        assert storage.runs.claim_monitor(lapsed, "b", now=_at(-10), ttl=ttl)
        storage.runs.update(runs[4].transition(RunStatus.FINISHED, at=_at(0), actor="m"))
        asked = [free, mine, theirs, lapsed, ended, "ghost", free]
        taken = storage.runs.claim_monitors(asked, "a", now=_at(1), ttl=ttl)
        assert taken == {free, mine, lapsed}
        for run_id in (free, mine, lapsed):
            assert storage.runs.monitor_of(run_id) == MonitorClaim("a", _at(1) + ttl)
        assert storage.runs.monitor_of(theirs) == MonitorClaim("b", _at(0) + ttl)
        assert storage.runs.claim_monitors([], "a", now=_at(1), ttl=ttl) == set()

    def test_release_lets_another_claim_at_once(self, storage: Storage) -> None:
        run = storage.runs.add(
            make_run(storage.load_tests.add(make_load_test()), status=RunStatus.RUNNING)
        )
        ttl = timedelta(seconds=30)
        assert storage.runs.claim_monitor(run.id, "a", now=_at(0), ttl=ttl)
        storage.runs.release_monitor(run.id, "b")  # not the holder: no effect
        assert not storage.runs.claim_monitor(run.id, "b", now=_at(1), ttl=ttl)
        storage.runs.release_monitor(run.id, "a")
        assert storage.runs.claim_monitor(run.id, "b", now=_at(1), ttl=ttl)

    def test_ended_or_missing_runs_cannot_be_claimed(self, storage: Storage) -> None:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.RUNNING))
        ttl = timedelta(seconds=30)
        assert storage.runs.claim_monitor(run.id, "a", now=_at(0), ttl=ttl)
        ended = storage.runs.update(run.transition(RunStatus.FINISHED, at=_at(1), actor="m"))
        assert not storage.runs.claim_monitor(run.id, "a", now=_at(2), ttl=ttl)
        assert storage.runs.get(run.id) == ended
        assert not storage.runs.claim_monitor("ghost", "a", now=_at(2), ttl=ttl)

    def test_claims_do_not_change_the_run(self, storage: Storage) -> None:
        run = storage.runs.add(
            make_run(storage.load_tests.add(make_load_test()), status=RunStatus.RUNNING)
        )
        storage.runs.claim_monitor(run.id, "a", now=_at(0), ttl=timedelta(seconds=5))
        assert storage.runs.get(run.id) == run
        updated = storage.runs.update(run.transition(RunStatus.STOPPING, at=_at(1), actor="m"))
        assert storage.runs.get(run.id) == updated
        # The claim survives an update of the run itself.
        assert not storage.runs.claim_monitor(run.id, "b", now=_at(2), ttl=timedelta(seconds=5))

    def test_racing_claims_have_one_winner(self, storage: Storage) -> None:
        run = storage.runs.add(
            make_run(storage.load_tests.add(make_load_test()), status=RunStatus.RUNNING)
        )
        barrier = threading.Barrier(8)
        won: list[str] = []

        def claim(owner: str) -> None:
            barrier.wait()
            if storage.runs.claim_monitor(run.id, owner, now=_at(0), ttl=timedelta(seconds=5)):
                won.append(owner)

        threads = [threading.Thread(target=claim, args=(f"o{n}",)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1

    def test_the_stored_claim_can_be_read(self, storage: Storage) -> None:
        run = storage.runs.add(
            make_run(storage.load_tests.add(make_load_test()), status=RunStatus.RUNNING)
        )
        assert storage.runs.monitor_of(run.id) is None
        storage.runs.claim_monitor(run.id, "a", now=_at(0), ttl=timedelta(seconds=3))
        claim = storage.runs.monitor_of(run.id)
        assert claim is not None
        assert (claim.owner, claim.expires_at) == ("a", _at(3))
        storage.runs.release_monitor(run.id, "a")
        assert storage.runs.monitor_of(run.id) is None
        assert storage.runs.monitor_of("ghost") is None


class MetricsContract:
    """Snapshots: storage, ranges and the downsampled series."""

    extremes_rel_tol: float = 0.0
    """How far a series' minima and maxima may be from the brute force's: exact
    by default. A backend whose server rounds what it compares may say how much."""

    @pytest.fixture
    def runs(self, storage: Storage) -> None:
        # Snapshots belong to runs; these tests write to runs "r", "run1", "run2".
        test = storage.load_tests.add(make_load_test())
        for run_id in ("r", "run1", "run2"):
            storage.runs.add(make_run(test, id=run_id, status=RunStatus.FINISHED))

    def test_a_snapshot_of_an_unknown_run_is_refused(self, storage: Storage, runs: None) -> None:
        with pytest.raises(NotFoundError):
            storage.metrics.add(make_snapshot("ghost", _at(0)))
        with pytest.raises(NotFoundError):
            storage.metrics.add_many([make_snapshot("r", _at(0)), make_snapshot("ghost", _at(1))])
        assert storage.metrics.count("r") == 0

    def test_snapshots_come_back_equal_and_in_time_order(
        self, storage: Storage, runs: None
    ) -> None:
        snaps = [make_snapshot("run1", _at(s), user_count=s) for s in (3, 1, 2)]
        assert storage.metrics.add_many(snaps) == 3
        storage.metrics.add(make_snapshot("run2", _at(0)))
        assert storage.metrics.snapshots("run1") == sorted(snaps, key=lambda s: s.timestamp)
        assert storage.metrics.count("run1") == 3
        assert storage.metrics.count("none") == 0

    def test_a_second_snapshot_of_one_slot_is_a_no_op(self, storage: Storage, runs: None) -> None:
        first = make_snapshot("r", _at(0.9), slot=0)
        assert storage.metrics.add(first) is True
        assert storage.metrics.add(make_snapshot("r", _at(1.1), slot=0, user_count=99)) is False
        batch = [make_snapshot("r", _at(t), slot=slot) for t, slot in ((2, 1), (2.5, 1), (4, 2))]
        assert storage.metrics.add_many(batch) == 2
        assert storage.metrics.add(make_snapshot("run1", _at(0.5), slot=0))  # another run
        assert [(s.slot, s.user_count) for s in storage.metrics.snapshots("r")] == [
            (0, first.user_count),
            (1, 10),
            (2, 10),
        ]

    def test_snapshots_without_a_slot_are_never_deduplicated(
        self, storage: Storage, runs: None
    ) -> None:
        assert storage.metrics.add(make_snapshot("r", _at(0)))
        assert storage.metrics.add(make_snapshot("r", _at(0)))
        assert storage.metrics.count("r") == 2

    def test_racing_writers_of_one_slot_store_it_once(self, storage: Storage, runs: None) -> None:
        barrier = threading.Barrier(6)
        stored: list[bool] = []

        def write(n: int) -> None:
            barrier.wait()
            stored.append(storage.metrics.add(make_snapshot("r", _at(n / 10), slot=7)))

        threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(stored) == [False] * 5 + [True]
        assert storage.metrics.count("r") == 1

    def test_snapshot_range_is_start_inclusive_end_exclusive(
        self, storage: Storage, runs: None
    ) -> None:
        storage.metrics.add_many(make_snapshot("r", _at(s), user_count=s) for s in range(10))
        got = storage.metrics.snapshots("r", start=_at(2), end=_at(5))
        assert [s.user_count for s in got] == [2, 3, 4]
        assert [s.user_count for s in storage.metrics.snapshots("r", limit=2)] == [0, 1]

    @_PER_BACKEND
    @given(data=st.data())
    def test_a_series_equals_the_brute_force_series_of_the_stored_snapshots(
        self, storage: Storage, data: st.DataObject
    ) -> None:
        """Whatever a backend keeps to answer fast (columns, indexes), its series
        is the one computed snapshot by snapshot, as batches arrive in any order."""
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.FINISHED))
        for _ in range(data.draw(st.integers(1, 3), label="rounds")):
            batch = data.draw(st.lists(_series_snapshots(run.id), max_size=25), label="batch")
            storage.metrics.add_many(batch)
            buckets = data.draw(st.integers(1, 40), label="buckets")
            endpoint = data.draw(st.sampled_from([None, "GET /a", "POST /b", "/nowhere"]))
            bounds = data.draw(
                st.none()
                | st.tuples(st.integers(0, 400), st.integers(1, 400))
                | st.tuples(st.integers(0, 400_000), st.integers(1, 600_000)),
                label="window",
            )
            start = end = None
            if bounds is not None:
                start, end = _at(min(bounds)), _at(min(bounds) + max(bounds))
            got = storage.metrics.series(run.id, buckets, endpoint=endpoint, start=start, end=end)
            stored = storage.metrics.snapshots(run.id)
            assert_same_series(
                got,
                _brute_series(stored, buckets, endpoint, start, end),
                extremes_rel_tol=self.extremes_rel_tol,
            )

    def test_histogram_changes_of_one_key(self, storage: Storage, runs: None) -> None:
        def at(second: float, *changes: HistogramDelta) -> MetricSnapshot:
            return make_snapshot("r", _at(second), histograms=changes)

        storage.metrics.add_many([
            at(0, HistogramDelta("GET /a", {5: 1}), HistogramDelta("GET /ab", {7: 2})),
            at(1),  # a master without the plugin: left out
            at(2, HistogramDelta(AGGREGATED, {9: 3, 250: 1}), HistogramDelta("GET /ab", {8: 1})),
            at(3, HistogramDelta("GET /a", {5: 4})),
        ])  # fmt: skip
        changes = storage.metrics.histogram_changes
        assert changes("r", endpoint="GET /ab") == [
            (_at(0), {7: 2}),
            (_at(2), {8: 1}),
            (_at(3), {}),
        ]
        assert changes("r") == [(_at(0), {}), (_at(2), {9: 3, 250: 1}), (_at(3), {})]
        assert changes("r", endpoint="GET /a", start=_at(1), end=_at(3)) == [(_at(2), {})]
        assert changes("r", endpoint="GET /") == [(_at(0), {}), (_at(2), {}), (_at(3), {})]
        assert changes("run1") == []

    @_PER_BACKEND
    @given(data=st.data())
    def test_histogram_changes_are_those_of_the_stored_snapshots(
        self, storage: Storage, data: st.DataObject
    ) -> None:
        """Read on their own, one key's changes are what whole snapshots hold, in order,
        leaving out the snapshots without any; whatever the keys' text."""
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.FINISHED))
        keys = [AGGREGATED, "GET /a", 'POST /"b"\\', *data.draw(_odd_keys, label="keys")]
        storage.metrics.add_many(
            data.draw(st.lists(_histogram_snapshots(run.id, keys), max_size=20), label="snaps")
        )
        endpoint = data.draw(st.sampled_from([None, *keys, "GET /nowhere"]), label="endpoint")
        start = data.draw(st.sampled_from([None, _at(3)]), label="start")
        end = data.draw(st.sampled_from([None, _at(6)]), label="end")
        got = storage.metrics.histogram_changes(run.id, endpoint=endpoint, start=start, end=end)
        key = endpoint or AGGREGATED
        assert got == [
            (s.timestamp, s.histogram(key))
            for s in storage.metrics.snapshots(run.id, start=start, end=end)
            if s.histograms
        ]

    def test_the_peak_worker_cpu_is_the_highest_any_worker_reported(
        self, storage: Storage, runs: None
    ) -> None:
        def workers(*cpus: float) -> tuple[WorkerHealth, ...]:
            return tuple(WorkerHealth(f"w{i}", "running", 5, cpu) for i, cpu in enumerate(cpus))

        assert storage.metrics.peak_worker_cpu("r") is None
        storage.metrics.add(make_snapshot("r", _at(0)))  # no worker reported yet
        assert storage.metrics.peak_worker_cpu("r") is None
        storage.metrics.add_many([
            make_snapshot("r", _at(1), workers=workers(12.5, 97.25)),
            make_snapshot("r", _at(2), workers=workers(40.0)),
            make_snapshot("run1", _at(1), workers=workers(99.5)),  # another run's
        ])  # fmt: skip
        assert storage.metrics.peak_worker_cpu("r") == 97.25
        assert storage.metrics.peak_worker_cpu("run2") is None

    @_PER_BACKEND
    @given(cpus=st.lists(st.lists(st.floats(0, 1e4, allow_nan=False), max_size=3), max_size=8))
    def test_the_peak_worker_cpu_is_that_of_the_stored_snapshots(
        self, storage: Storage, cpus: list[list[float]]
    ) -> None:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.FINISHED))
        storage.metrics.add_many(
            make_snapshot(
                run.id, _at(i), workers=tuple(WorkerHealth("w", "running", 1, c) for c in row)
            )
            for i, row in enumerate(cpus)
        )
        stored = storage.metrics.snapshots(run.id)
        expected = max((w.cpu_usage for s in stored for w in s.workers), default=None)
        got = storage.metrics.peak_worker_cpu(run.id)
        if expected is None:
            assert got is None
        else:
            assert got is not None
            assert math.isclose(got, expected, rel_tol=self.extremes_rel_tol), (got, expected)

    def test_a_wide_series_stays_exact_as_a_run_grows(self, storage: Storage) -> None:
        """Rolled-up cells are extended as snapshots arrive, the last one partial."""
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.RUNNING))
        stored: list[MetricSnapshot] = []
        for batch in range(6):
            fresh = [
                make_snapshot(
                    run.id, _at(2 * i + 0.5), user_count=i % 7, current_rps=float(i % 11),
                    current_p50=None if i % 5 == 0 else float(i),
                    endpoints=(EndpointStats("GET", "/a", i, 0, float(i % 3), 0.0, float(i)),),
                )
                for i in range(batch * 97, (batch + 1) * 97)
            ]  # fmt: skip
            storage.metrics.add_many(fresh)
            stored += fresh
            for buckets in (3, 20, 200):  # 1 min and 10 s cells, and the exact layout
                for endpoint in (None, "GET /a"):
                    got = storage.metrics.series(run.id, buckets, endpoint=endpoint)
                    expected = _brute_series(stored, buckets, endpoint, None, None)
                    assert_same_series(got, expected, extremes_rel_tol=self.extremes_rel_tol)

    def test_series_of_an_empty_run_is_empty(self, storage: Storage, runs: None) -> None:
        assert storage.metrics.series("nothing", 10) == []

    def test_series_of_one_snapshot_is_one_bucket(self, storage: Storage, runs: None) -> None:
        storage.metrics.add(make_snapshot("r", _at(0), user_count=7, current_p50=None))
        [bucket] = storage.metrics.series("r", 10)
        assert bucket.samples == 1
        assert bucket.start == _at(0)
        assert (bucket.user_count.min, bucket.user_count.avg, bucket.user_count.max) == (7, 7, 7)
        assert bucket.current_p50.avg is None

    def test_more_buckets_than_snapshots_puts_each_in_its_own(
        self, storage: Storage, runs: None
    ) -> None:
        storage.metrics.add_many(make_snapshot("r", _at(s * 2), user_count=s) for s in range(5))
        buckets = storage.metrics.series("r", 100)
        assert [b.samples for b in buckets] == [1] * 5
        assert [b.user_count.avg for b in buckets] == [0, 1, 2, 3, 4]

    def test_series_aggregates_each_bucket(self, storage: Storage, runs: None) -> None:
        # 12 snapshots one second apart; the span is 11.001 s, so 3 buckets of 3.667 s.
        storage.metrics.add_many(
            make_snapshot(
                "r",
                _at(s),
                user_count=s,
                current_rps=float(s * 10),
                current_p95=None if s == 0 else float(s),
            )
            for s in range(12)
        )
        buckets = storage.metrics.series("r", 3)
        assert [b.samples for b in buckets] == [4, 4, 4]
        assert [b.start for b in buckets] == [_at(0), _at(3.667), _at(7.334)]
        first = buckets[0]
        assert (first.user_count.min, first.user_count.avg, first.user_count.max) == (0, 1.5, 3)
        assert first.current_rps.avg == pytest.approx(15.0)
        assert (first.current_p95.min, first.current_p95.avg, first.current_p95.max) == (1, 2, 3)

    def test_series_window_limits_and_lays_out_the_buckets(
        self, storage: Storage, runs: None
    ) -> None:
        storage.metrics.add_many(make_snapshot("r", _at(s), user_count=s) for s in range(10))
        buckets = storage.metrics.series("r", 2, start=_at(2), end=_at(6))
        assert [(b.start, b.end, b.samples) for b in buckets] == [
            (_at(2), _at(4), 2),
            (_at(4), _at(6), 2),
        ]

    def test_a_window_that_misses_every_snapshot_is_empty(
        self, storage: Storage, runs: None
    ) -> None:
        storage.metrics.add_many(make_snapshot("r", _at(s)) for s in range(5))
        assert storage.metrics.series("r", 5, start=_at(100), end=_at(200)) == []
        assert storage.metrics.series("r", 5, start=_at(3), end=_at(3)) == []

    def test_series_of_one_endpoint_uses_its_own_row(self, storage: Storage, runs: None) -> None:
        storage.metrics.add_many(
            make_snapshot(
                "r",
                _at(s),
                user_count=s,
                endpoints=(
                    EndpointStats(
                        "GET", "/a b", 10, 0, float(s), 0.5, 9.0, 1.0, 20.0, 8.0 + s, 18.0, 19.0
                    ),
                    EndpointStats(
                        "", "custom", 5, 1, 100.0, 1.0, None, None, None, None, None, None
                    ),
                ),
            )
            for s in range(4)
        )
        storage.metrics.add(make_snapshot("r", _at(4), user_count=4, endpoints=()))
        [bucket] = storage.metrics.series("r", 1, endpoint="GET /a b")
        assert bucket.samples == 4  # the last snapshot has no such row
        assert (bucket.current_rps.min, bucket.current_rps.max) == (0, 3)
        assert bucket.current_p50.avg == pytest.approx(9.5)
        assert bucket.current_p95.avg == 18
        assert bucket.user_count.max == 3
        [custom] = storage.metrics.series("r", 1, endpoint="custom")
        assert (custom.samples, custom.current_rps.avg, custom.current_p95.avg) == (4, 100, None)
        assert storage.metrics.series("r", 1, endpoint="GET /nowhere") == []

    def test_of_two_rows_one_key_matches_in_a_snapshot_the_first_counts(
        self, storage: Storage, runs: None
    ) -> None:
        """``GET /a`` names the row ``("GET", "/a")`` and the method-less ``("", "GET /a")``;
        a snapshot holding both gives its series one sample, the first row's."""
        both = (
            EndpointStats("GET", "/a", 1, 0, 1.0, 0.0, p95_response_time=10.0),
            EndpointStats("", "GET /a", 1, 0, 3.0, 0.0, p95_response_time=30.0),
        )
        swapped = both[::-1]
        storage.metrics.add_many(
            make_snapshot("r", _at(2 * s), endpoints=both if s % 2 else swapped) for s in range(60)
        )
        for buckets in (1, 60):  # cells (a bucket of 118 s) and snapshots (2 s)
            found = storage.metrics.series("r", buckets, endpoint="GET /a")
            assert sum(b.samples for b in found) == 60
            assert {b.current_rps.min for b in found} | {b.current_rps.max for b in found} == (
                {1.0, 3.0}
            )
            if buckets == 1:
                assert found[0].current_rps.avg == pytest.approx(2.0)
                assert found[0].current_p95.avg == pytest.approx(20.0)

    def test_bucket_count_is_validated(self, storage: Storage, runs: None) -> None:
        for bad in (0, -1, 100_001):
            with pytest.raises(ValidationError):
                storage.metrics.series("r", bad)


BAD_KEYS = ({"$ne": None}, 2**63, None, b"id", ["id"], "x\ud800", "x" * 2000)
"""Ids no backend may pass to its driver: each is a ValidationError, everywhere."""


class ArgumentContract:
    """Bad plain arguments are refused identically, before any I/O."""

    def test_bad_ids_are_validation_errors(self, storage: Storage) -> None:
        calls = [
            storage.load_tests.get,
            storage.load_tests.delete,
            storage.runs.get,
            storage.runs.active_on_cluster,
            storage.runs.monitor_of,
            lambda key: storage.runs.release_monitor(key, "owner"),
            lambda key: storage.runs.claim_monitor(key, "o", now=T0, ttl=timedelta(1)),
            lambda key: storage.runs.claim_monitors([key], "o", now=T0, ttl=timedelta(1)),
            storage.metrics.snapshots,
            storage.metrics.count,
            lambda key: storage.metrics.series(key, 10),
        ]
        for bad in BAD_KEYS:
            for call in calls:
                with pytest.raises(ValidationError):
                    call(bad)  # type: ignore[operator]

    def test_a_bare_string_of_run_ids_is_a_validation_error(self, storage: Storage) -> None:
        for ids in ("run-1", 5, None):
            with pytest.raises(ValidationError):
                storage.runs.claim_monitors(ids, "o", now=T0, ttl=timedelta(1))  # type: ignore[arg-type]

    def test_naive_times_and_bad_limits_are_validation_errors(self, storage: Storage) -> None:
        naive = datetime(2025, 1, 1)
        for kwargs in ({"start": naive}, {"end": naive}, {"limit": -1}, {"limit": "5"}):
            with pytest.raises(ValidationError):
                storage.metrics.snapshots("r", **kwargs)
        with pytest.raises(ValidationError):
            storage.metrics.series("r", 10, start=naive)
        with pytest.raises(ValidationError):
            storage.metrics.series("r", 10, endpoint=5)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            storage.runs.claim_monitor("r", "o", now=naive, ttl=timedelta(1))

    def test_filters_refuse_what_is_not_a_list_of_strings(self) -> None:
        bad_tests: list[dict[str, Any]] = [
            {"tags": 5},
            {"tenant_ids": 5},
            {"tenant_ids": "tenant-a"},
            {"limit": -1},
        ]
        for bad in bad_tests:
            with pytest.raises(ValidationError):
                LoadTestFilter(**bad)
        bad_runs: list[dict[str, Any]] = [
            {"limit": "5"},
            {"limit": 0},
            {"statuses": ["nope"]},
            {"tenant_ids": "t"},
        ]
        for bad in bad_runs:
            with pytest.raises(ValidationError):
                RunFilter(**bad)
        assert LoadTestFilter(tags="api").tags == ("api",)  # one tag, not three letters

    def test_text_that_cannot_be_encoded_is_refused_everywhere(self, storage: Storage) -> None:
        with pytest.raises(ValidationError):
            make_load_test(description="x\ud800")
        with pytest.raises(ValidationError):
            storage.load_tests.find(LoadTestFilter(name_contains="x\ud800"))
        assert storage.load_tests.find(LoadTestFilter()) == []


class LocustfileContract:
    """Stored locustfiles: versions per (tenant, name), never overwritten."""

    def test_each_put_is_a_new_version_and_old_ones_stay(self, storage: Storage) -> None:
        first = storage.locustfiles.add(Locustfile("web/shop.py", "t1", "A = 1\n", created_at=T0))
        second = storage.locustfiles.add(
            Locustfile("web/shop.py", "t1", "A = 2 # ünï\n", version=2, created_by="bob")
        )
        assert storage.locustfiles.get("t1", "web/shop.py") == second
        assert storage.locustfiles.get("t1", "web/shop.py", 1) == first
        assert storage.locustfiles.get("t1", "web/shop.py").sha256 == second.sha256
        assert storage.locustfiles.versions("t1", "web/shop.py") == [1, 2]

    def test_a_version_is_written_once(self, storage: Storage) -> None:
        storage.locustfiles.add(Locustfile("a.py", "t1", "A = 1\n"))
        with pytest.raises(StaleVersionError):
            storage.locustfiles.add(Locustfile("a.py", "t1", "B = 1\n"))
        with pytest.raises(StaleVersionError):
            storage.locustfiles.add(Locustfile("a.py", "t1", "B = 1\n", version=3))
        assert storage.locustfiles.get("t1", "a.py").content == "A = 1\n"

    def test_tenants_do_not_see_each_others_files(self, storage: Storage) -> None:
        storage.locustfiles.add(Locustfile("a.py", "t1", "A = 1\n"))
        storage.locustfiles.add(Locustfile("b.py", "t1", "B = 1\n"))
        storage.locustfiles.add(Locustfile("a.py", "t2", "A = 2\n"))
        assert [f.name for f in storage.locustfiles.find("t1")] == ["a.py", "b.py"]
        assert [f.content for f in storage.locustfiles.find("t2")] == ["A = 2\n"]
        with pytest.raises(NotFoundError):
            storage.locustfiles.get("t3", "a.py")
        with pytest.raises(NotFoundError):
            storage.locustfiles.get("t1", "a.py", 2)

    def test_delete_removes_every_version_of_one_name(self, storage: Storage) -> None:
        storage.locustfiles.add(Locustfile("a.py", "t1", "A = 1\n"))
        storage.locustfiles.add(Locustfile("a.py", "t1", "A = 2\n", version=2))
        storage.locustfiles.add(Locustfile("a.py", "t2", "A = 3\n"))
        assert storage.locustfiles.delete("t1", "a.py") == 2
        assert storage.locustfiles.versions("t1", "a.py") == []
        assert storage.locustfiles.get("t2", "a.py").content == "A = 3\n"
        with pytest.raises(NotFoundError):
            storage.locustfiles.delete("t1", "a.py")
        again = storage.locustfiles.add(Locustfile("a.py", "t1", "A = 4\n"))
        assert again.version == 1

    def test_racing_puts_make_distinct_versions(self, storage: Storage) -> None:
        barrier = threading.Barrier(8)
        made: list[int] = []

        def put(n: int) -> None:
            barrier.wait()
            while True:
                latest = storage.locustfiles.versions("t1", "race.py")
                version = (latest[-1] if latest else 0) + 1
                try:
                    storage.locustfiles.add(
                        Locustfile("race.py", "t1", f"N = {n}\n", version=version)
                    )
                except StaleVersionError:
                    continue
                made.append(version)
                return

        threads = [threading.Thread(target=put, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(made) == list(range(1, 9))
        assert storage.locustfiles.versions("t1", "race.py") == list(range(1, 9))


class StorageContract(
    LoadTestContract,
    RunContract,
    MonitorClaimContract,
    MetricsContract,
    ArgumentContract,
    LocustfileContract,
):
    """Everything a backend must do. Provide a ``storage`` fixture."""

    def test_storage_reports_its_url(self, storage: Storage) -> None:
        assert "://" in storage.url


def _series_snapshots(run_id: str) -> st.SearchStrategy[MetricSnapshot]:
    figure = st.floats(0, 1e6, allow_nan=False)
    row = st.builds(
        EndpointStats,
        method=st.just("GET"),
        name=st.just("/a"),
        num_requests=st.integers(0, 10**6),
        num_failures=st.just(0),
        current_rps=figure,
        current_fail_per_sec=figure,
        median_response_time=st.none() | figure,
        p95_response_time=st.none() | figure,
    )
    other = st.builds(
        EndpointStats,
        method=st.just("POST"),
        name=st.just("/b"),
        num_requests=st.integers(0, 10**6),
        num_failures=st.just(0),
        current_rps=figure,
        current_fail_per_sec=figure,
    )
    return st.builds(
        lambda second, users, rps, p50, rows: make_snapshot(
            run_id, _at(second / 10), user_count=users, current_rps=rps, current_p50=p50,
            endpoints=tuple(rows),
        ),
        st.integers(0, 6000) | st.integers(0, 60_000).map(lambda n: n * 100),
        st.integers(0, 10_000),
        figure,
        st.none() | figure,
        st.lists(st.one_of(row, other), max_size=2, unique_by=lambda r: r.method),
    )  # fmt: skip


_odd_keys = st.lists(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
        lambda k: k.strip() == k
    ),
    max_size=3,
)
"""Endpoint keys in any script, quotes, backslashes and JSON-path syntax included."""


def _histogram_snapshots(run_id: str, keys: list[str]) -> st.SearchStrategy[MetricSnapshot]:
    change = st.dictionaries(st.integers(0, 10**6), st.integers(0, 10**9), max_size=6)
    changes = st.lists(
        st.builds(HistogramDelta, st.sampled_from(keys), change),
        max_size=4,
        unique_by=lambda h: h.key,
    )  # a master without the plugin: none at all
    return st.builds(
        lambda tenths, histograms: make_snapshot(
            run_id, _at(tenths / 10), histograms=tuple(histograms)
        ),
        st.integers(0, 100),
        changes,
    )


def _brute_series(
    stored: list[MetricSnapshot],
    buckets: int,
    endpoint: str | None,
    start: datetime | None,
    end: datetime | None,
) -> list[SeriesBucket]:
    asked = [
        to_millis(s.timestamp)
        for s in stored
        if (start is None or s.timestamp >= start) and (end is None or s.timestamp < end)
    ]
    window = window_for(start, end, min(asked, default=None), max(asked, default=None), buckets)
    if window is None:
        return []
    points = []
    for snap in stored:
        values = snapshot_values(snap, endpoint)
        if values is not None:
            points.append((to_millis(snap.timestamp), values))
    return python_series(window, points)


def assert_same_series(
    got: list[SeriesBucket], expected: list[SeriesBucket], *, extremes_rel_tol: float = 0.0
) -> None:
    """Equal buckets; averages may differ in the last bits (sums in another order).

    Minima and maxima are exact unless ``extremes_rel_tol`` says otherwise.
    """
    assert [(b.start, b.end, b.samples) for b in got] == [
        (b.start, b.end, b.samples) for b in expected
    ]
    for mine, theirs in zip(got, expected, strict=True):
        for field in ("user_count", "current_rps", "current_fail_per_sec",
                      "current_p50", "current_p95"):  # fmt: skip
            a, b = getattr(mine, field), getattr(theirs, field)
            if extremes_rel_tol:
                for x, y in ((a.min, b.min), (a.max, b.max)):
                    assert (x is None) == (y is None), field
                    if x is not None and y is not None:
                        assert math.isclose(x, y, rel_tol=extremes_rel_tol, abs_tol=0), field
            else:
                assert (a.min, a.max) == (b.min, b.max), field
            assert (a.avg is None) == (b.avg is None), field
            if a.avg is not None and b.avg is not None:
                assert math.isclose(a.avg, b.avg, rel_tol=1e-9, abs_tol=1e-9), field
