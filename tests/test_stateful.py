"""Repositories as state machines, checked against a plain dict model."""

from __future__ import annotations

from collections.abc import Callable

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

import loadmanager as lm
from loadmanager.repositories import Storage
from loadmanager.testing import make_load_test, make_run

NAMES = st.sampled_from(["alpha", "beta", "gamma 50%", "delta_x"])
TAGS = st.lists(st.sampled_from(["api", "prod", "web"]), max_size=3, unique=True).map(tuple)
TENANTS = st.sampled_from(["t1", "t2"])
CLUSTERS = st.sampled_from(["c1", "c2"])


def machine(open_storage: Callable[[], Storage]) -> type[RuleBasedStateMachine]:
    class RepositoryMachine(RuleBasedStateMachine):
        tests = Bundle("tests")
        runs = Bundle("runs")

        def __init__(self) -> None:
            super().__init__()
            self.storage = open_storage()
            self.model_tests: dict[str, lm.LoadTest] = {}
            self.model_runs: dict[str, lm.LoadTestRun] = {}

        def teardown(self) -> None:
            self.storage.close()

        @rule(target=tests, name=NAMES, tags=TAGS, tenant=TENANTS, cluster=CLUSTERS)
        def add_test(self, name: str, tags: tuple[str, ...], tenant: str, cluster: str) -> str:
            test = make_load_test(name=name, tags=tags, tenant_id=tenant, locust_cluster_id=cluster)
            self.storage.load_tests.add(test)
            self.model_tests[test.id] = test
            return test.id

        @rule(test_id=tests, name=NAMES, stale=st.booleans())
        def update_test(self, test_id: str, name: str, stale: bool) -> None:
            if test_id not in self.model_tests:
                try:
                    self.storage.load_tests.get(test_id)
                except lm.NotFoundError:
                    return
                raise AssertionError("a deleted test came back")
            current = self.model_tests[test_id]
            base = attrs.evolve(current, version=current.version + 1) if stale else current
            try:
                stored = self.storage.load_tests.update(attrs.evolve(base, name=name))
            except lm.StaleVersionError:
                assert stale
                return
            assert not stale
            assert stored.version == current.version + 1
            self.model_tests[test_id] = stored

        @rule(test_id=tests)
        def delete_test(self, test_id: str) -> None:
            active = [
                r for r in self.model_runs.values() if r.load_test_id == test_id and r.is_active
            ]
            try:
                self.storage.load_tests.delete(test_id)
            except lm.NotFoundError:
                assert test_id not in self.model_tests
                return
            except lm.ActiveRunError:
                assert active
                return
            assert not active
            del self.model_tests[test_id]
            for run_id in [r.id for r in self.model_runs.values() if r.load_test_id == test_id]:
                del self.model_runs[run_id]

        @rule(target=runs, test_id=tests)
        def start_run(self, test_id: str) -> str:
            test = self.model_tests.get(test_id)
            run = make_run(test or make_load_test(id=test_id))
            busy = test is not None and any(
                r.is_active and r.locust_cluster_id == test.locust_cluster_id
                for r in self.model_runs.values()
            )
            try:
                self.storage.runs.add(run)
            except lm.NotFoundError:
                assert test is None
            except lm.ClusterBusyError:
                assert busy
            else:
                assert test is not None
                assert not busy
                self.model_runs[run.id] = run
            return run.id

        @rule(run_id=runs, to=st.sampled_from(lm.RunStatus))
        def move_run(self, run_id: str, to: lm.RunStatus) -> None:
            run = self.model_runs.get(run_id)
            if run is None or not run.status.can_become(to):
                return
            moved = run.transition(to, at=run.audit.created_at, actor="m")
            self.model_runs[run_id] = self.storage.runs.update(moved)

        @invariant()
        def same_tests(self) -> None:
            found = self.storage.load_tests.find(lm.LoadTestFilter(limit=10_000))
            assert {t.id: t for t in found} == self.model_tests
            for tag in ("api", "web"):
                tagged = self.storage.load_tests.find(lm.LoadTestFilter(tags=[tag]))
                assert {t.id for t in tagged} == {
                    t.id for t in self.model_tests.values() if tag in t.tags
                }

        @invariant()
        def same_runs_and_leases(self) -> None:
            found = self.storage.runs.find(lm.RunFilter(limit=10_000))
            assert {r.id: r for r in found} == self.model_runs
            for cluster in ("c1", "c2"):
                active = self.storage.runs.active_on_cluster(cluster)
                expected = [
                    r
                    for r in self.model_runs.values()
                    if r.is_active and r.locust_cluster_id == cluster
                ]
                assert len(expected) <= 1
                assert active == (expected[0] if expected else None)

    return RepositoryMachine


TestMemoryMachine = machine(lambda: lm.connect("memory://")).TestCase
TestSqliteMachine = machine(lambda: lm.connect("sqlite://")).TestCase
TestMemoryMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestSqliteMachine.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
