"""The Orchestrator's service behaviour, on the in-memory backend.

Locust masters here are fakes built with httpx.MockTransport, used only to
inject faults or to stand still; the happy path against a real master is in
test_orchestrator_real.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import tenacity

import loadmanager as lm
from loadmanager.testing import ManualClock
from loadmanager.testing.seed import seed_load_test_body

SEED_BODY = seed_load_test_body()
ACTOR = "user@example.com"


class FakeMaster:
    """A scripted Locust master: answers what the test tells it to."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.swarm_answer: Callable[[httpx.Request], httpx.Response] = lambda r: httpx.Response(
            200, json={"success": True, "message": "Swarming started", "host": "h"}
        )
        self.state = "running"

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/swarm"):
            return self.swarm_answer(request)
        if path.endswith("/stop"):
            self.state = "stopped"
            return httpx.Response(200, json={"success": True, "message": "Test stopped"})
        if path.endswith("/stats/reset"):
            return httpx.Response(200, text="ok")
        if path.endswith("/stats/requests"):
            return httpx.Response(
                200, json={"stats": [], "errors": [], "state": self.state, "user_count": 0}
            )
        return httpx.Response(404)

    def factory(self, config: lm.ClusterConfig) -> lm.LocustClient:
        http = httpx.Client(transport=httpx.MockTransport(self.handle), base_url=config.url + "/")
        no_wait = tenacity.Retrying(stop=tenacity.stop_after_attempt(2), sleep=lambda s: None)
        return lm.LocustClient(config.url, client=http, retrying=lambda: no_wait)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(step=timedelta(milliseconds=1))


@pytest.fixture
def master() -> FakeMaster:
    return FakeMaster()


@pytest.fixture
def orch(clock: ManualClock, master: FakeMaster) -> Iterator[lm.Orchestrator]:
    storage = lm.connect("memory://")
    clusters = lm.ClusterRegistry({"cluster-1": "http://master-1", "cluster-2": "http://master-2"})
    with lm.Orchestrator(
        storage=storage,
        clusters=clusters,
        clock=clock,
        client_factory=master.factory,
        monitor=False,
    ) as o:
        yield o


def create(orch: lm.Orchestrator, **changes: Any) -> lm.LoadTest:
    return orch.create_load_test({**SEED_BODY, **changes}, actor=ACTOR)


# -- the seed's checklist: LoadTest operations ---------------------------------


def test_create_a_load_test_with_all_fields(orch: lm.Orchestrator, clock: ManualClock) -> None:
    at = clock.advance(0)
    test = create(
        orch, defaultRunTime="1m", thresholds=[{"metric": "p95", "op": "<", "value": 500}]
    )
    doc = lm.to_dict(test)
    for key, value in SEED_BODY.items():
        assert doc[key] == value
    assert doc["defaultRunTime"] == "1m"
    assert test.thresholds[0].metric == "p95"
    assert test.version == 1
    assert test.audit.created_at == test.audit.updated_at == at
    assert test.audit.created_by == test.audit.updated_by == ACTOR


def test_get_a_load_test_by_id(orch: lm.Orchestrator) -> None:
    test = create(orch)
    assert orch.get_load_test(test.id) == test
    with pytest.raises(lm.NotFoundError):
        orch.get_load_test("missing")


def test_list_load_tests_with_filters(orch: lm.Orchestrator) -> None:
    a = create(orch, tenantId="t1", envId="prod", tags=["api", "prod"])
    b = create(orch, tenantId="t1", envId="dev", tags=["api"])
    c = create(orch, tenantId="t2", envId="prod", tags=["web"])
    assert orch.list_load_tests(tenant_id="t1") == [a, b]
    assert orch.list_load_tests(env_id="prod") == [a, c]
    assert orch.list_load_tests(tags=["api", "prod"]) == [a]
    assert orch.list_load_tests(tenant_id="t1", env_id="dev", tags=["api"]) == [b]
    assert orch.list_load_tests(limit=1) == [a]


def test_update_a_load_test_keeps_the_audit_trail(
    orch: lm.Orchestrator, clock: ManualClock
) -> None:
    test = create(orch)
    later = clock.advance(60)
    updated = orch.update_load_test(
        test.id, {"defaultUsers": 250, "tags": ["api"]}, actor="bob@example.com"
    )
    assert (updated.default_users, updated.tags, updated.version) == (250, ("api",), 2)
    assert updated.name == test.name
    assert updated.audit.created_by == ACTOR
    assert updated.audit.created_at == test.audit.created_at
    assert updated.audit.updated_by == "bob@example.com"
    assert updated.audit.updated_at == later
    assert orch.get_load_test(test.id) == updated


def test_delete_a_load_test(orch: lm.Orchestrator) -> None:
    test = create(orch)
    orch.delete_load_test(test.id, actor=ACTOR)
    with pytest.raises(lm.NotFoundError):
        orch.get_load_test(test.id)


# -- validation and concurrency -----------------------------------------------


def test_a_body_claiming_another_creator_is_refused(orch: lm.Orchestrator) -> None:
    with pytest.raises(lm.ValidationError) as info:
        orch.create_load_test(SEED_BODY, actor="mallory@example.com")
    assert info.value.paths == ("createdBy",)
    assert orch.list_load_tests() == []


def test_an_unknown_cluster_is_a_validation_error(orch: lm.Orchestrator) -> None:
    with pytest.raises(lm.ValidationError) as info:
        create(orch, locustClusterId="nowhere")
    assert info.value.paths == ("locustClusterId",)
    test = create(orch)
    orch.clusters.remove("cluster-1")
    with pytest.raises(lm.ValidationError):
        orch.start_run(test.id, actor=ACTOR)
    assert orch.list_runs() == []


def test_bad_updates_name_their_fields_and_change_nothing(orch: lm.Orchestrator) -> None:
    test = create(orch)
    with pytest.raises(lm.ValidationError) as info:
        orch.update_load_test(test.id, {"defaultUsers": 0, "id": "x"}, actor=ACTOR)
    assert set(info.value.paths) == {"defaultUsers", "id"}
    assert orch.get_load_test(test.id) == test


def test_expected_version_guards_updates_and_deletes(orch: lm.Orchestrator) -> None:
    test = create(orch)
    orch.update_load_test(test.id, {"name": "v2"}, actor=ACTOR, expected_version=1)
    with pytest.raises(lm.StaleVersionError):
        orch.update_load_test(test.id, {"name": "v3"}, actor=ACTOR, expected_version=1)
    with pytest.raises(lm.StaleVersionError):
        orch.delete_load_test(test.id, actor=ACTOR, expected_version=1)
    assert orch.get_load_test(test.id).name == "v2"


def test_the_actor_is_required(orch: lm.Orchestrator) -> None:
    with pytest.raises(lm.ValidationError):
        orch.create_load_test(SEED_BODY, actor="")


# -- tenant scoping ------------------------------------------------------------


def test_another_tenants_objects_look_missing(orch: lm.Orchestrator) -> None:
    theirs = create(orch, tenantId="tenant-2")
    mine = create(orch, tenantId="tenant-1")
    scope = {"tenant-1"}
    with pytest.raises(lm.NotFoundError) as info:
        orch.get_load_test(theirs.id, tenants=scope)
    assert str(info.value) == f"LoadTest {theirs.id!r} not found"
    assert orch.list_load_tests(tenants=scope) == [mine]
    with pytest.raises(lm.NotFoundError):
        orch.update_load_test(theirs.id, {"name": "x"}, actor=ACTOR, tenants=scope)
    with pytest.raises(lm.NotFoundError):
        orch.delete_load_test(theirs.id, actor=ACTOR, tenants=scope)
    with pytest.raises(lm.NotFoundError):
        orch.start_run(theirs.id, actor=ACTOR, tenants=scope)
    assert orch.get_load_test(theirs.id) == theirs


def test_writing_for_a_foreign_tenant_is_denied(orch: lm.Orchestrator) -> None:
    with pytest.raises(lm.PermissionDeniedError):
        orch.create_load_test(
            {**SEED_BODY, "tenantId": "tenant-2"}, actor=ACTOR, tenants={"tenant-1"}
        )
    mine = create(orch)
    with pytest.raises(lm.PermissionDeniedError):
        orch.update_load_test(mine.id, {"tenantId": "tenant-2"}, actor=ACTOR, tenants={"tenant-1"})
    assert orch.get_load_test(mine.id).tenant_id == "tenant-1"


# -- runs against scripted masters -------------------------------------------


def test_start_resolves_overrides_and_sends_them(orch: lm.Orchestrator, master: FakeMaster) -> None:
    test = create(orch, defaultRunTime="10m")
    run = orch.start_run(
        test.id,
        {"targetUsers": 200, "spawnRate": 20, "userClasses": ["ApiUser"], "createdBy": ACTOR},
        actor=ACTOR,
    )
    assert run.status is lm.RunStatus.RUNNING
    assert run.version == 2  # recorded pending first, then running
    assert (run.parameters.target_users, run.parameters.spawn_rate) == (200, 20.0)
    assert run.parameters.run_time == "10m"
    paths = [r.url.path for r in master.requests]
    assert paths == ["/stats/reset", "/swarm"]
    form = httpx.QueryParams(master.requests[1].content.decode())
    assert (form["user_count"], form["spawn_rate"], form["run_time"]) == ("200", "20.0", "10m")
    assert form["host"] == "https://api.example.com"
    assert form.get_list("user_classes") == ["ApiUser"]


def test_a_busy_cluster_names_the_active_run(orch: lm.Orchestrator) -> None:
    test = create(orch)
    first = orch.start_run(test.id, actor=ACTOR)
    with pytest.raises(lm.ClusterBusyError) as info:
        orch.start_run(test.id, actor=ACTOR)
    assert info.value.active_run_id == first.id
    other = create(orch, locustClusterId="cluster-2")
    assert orch.start_run(other.id, actor=ACTOR).status is lm.RunStatus.RUNNING


def test_a_refused_start_fails_the_run_and_frees_the_cluster(
    orch: lm.Orchestrator, master: FakeMaster
) -> None:
    test = create(orch)
    master.swarm_answer = lambda r: httpx.Response(
        200, json={"success": False, "message": "No runner", "host": None}
    )
    with pytest.raises(lm.LocustRejectedError) as info:
        orch.start_run(test.id, actor=ACTOR)
    failed = orch.get_run(info.value.run_id or "")
    assert failed.status is lm.RunStatus.FAILED
    assert failed.failure_reason is not None
    assert "No runner" in failed.failure_reason
    assert orch.storage.runs.active_on_cluster("cluster-1") is None


def test_an_unreachable_master_fails_the_run_and_frees_the_cluster(
    orch: lm.Orchestrator, master: FakeMaster
) -> None:
    test = create(orch)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    master.swarm_answer = refuse
    with pytest.raises(lm.LocustConnectionError) as info:
        orch.start_run(test.id, actor=ACTOR)
    assert orch.get_run(info.value.run_id or "").status is lm.RunStatus.FAILED
    assert orch.storage.runs.active_on_cluster("cluster-1") is None


def test_stop_goes_through_stopping(orch: lm.Orchestrator, master: FakeMaster) -> None:
    run = orch.start_run(create(orch).id, actor=ACTOR)
    stopping = orch.stop_run(run.id, actor="bob@example.com")
    assert stopping.status is lm.RunStatus.STOPPING
    assert stopping.audit.updated_by == "bob@example.com"
    assert master.requests[-1].url.path == "/stop"
    assert orch.stop_run(run.id, actor=ACTOR) == stopping


def test_stopping_an_ended_run_is_an_invalid_transition(
    orch: lm.Orchestrator, master: FakeMaster
) -> None:
    test = create(orch)
    master.swarm_answer = lambda r: httpx.Response(200, json={"success": False, "message": "no"})
    with pytest.raises(lm.LocustRejectedError) as info:
        orch.start_run(test.id, actor=ACTOR)
    with pytest.raises(lm.InvalidTransitionError):
        orch.stop_run(info.value.run_id or "", actor=ACTOR)


def test_a_test_with_an_active_run_cannot_be_deleted(orch: lm.Orchestrator) -> None:
    test = create(orch)
    run = orch.start_run(test.id, actor=ACTOR)
    with pytest.raises(lm.ActiveRunError) as info:
        orch.delete_load_test(test.id, actor=ACTOR)
    assert info.value.run_id == run.id


def test_list_runs_per_test_and_across_tests(orch: lm.Orchestrator, master: FakeMaster) -> None:
    a = create(orch)
    b = create(orch, locustClusterId="cluster-2", envId="dev")
    ra = orch.start_run(a.id, actor=ACTOR)
    rb = orch.start_run(b.id, actor=ACTOR)
    assert orch.list_runs(load_test_id=a.id) == [ra]
    assert orch.list_runs() == [ra, rb]
    assert orch.list_runs(env_id="dev") == [rb]
    assert orch.list_runs(statuses=["running"], locust_cluster_id="cluster-2") == [rb]
    assert orch.list_runs(statuses=["finished"]) == []


def test_wait_times_out_with_a_typed_error_while_the_run_goes_on(
    orch: lm.Orchestrator,
) -> None:
    run = orch.start_run(create(orch).id, actor=ACTOR)
    with pytest.raises(lm.WaitTimeoutError) as info:
        orch.wait(run.id, timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    assert info.value.status == "running"
    assert orch.get_run(run.id).status is lm.RunStatus.RUNNING


def test_a_closed_orchestrator_refuses_work(orch: lm.Orchestrator) -> None:
    orch.close()
    with pytest.raises(RuntimeError):
        orch.list_load_tests()


def test_the_seed_example_is_a_valid_json_document_after_create(orch: lm.Orchestrator) -> None:
    doc = lm.to_dict(create(orch))
    assert json.loads(json.dumps(doc))["createdBy"] == ACTOR


def test_one_slow_master_does_not_delay_the_others() -> None:
    """Polls run in a pool: a master that hangs for seconds costs only its own run."""
    import time

    fast, slow = FakeMaster(), FakeMaster()
    original = slow.handle

    def hang(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stats/requests"):
            time.sleep(3)
        return original(request)

    slow.handle = hang  # type: ignore[method-assign]
    masters = {"http://fast": fast, "http://slow": slow}

    def factory(config: lm.ClusterConfig) -> lm.LocustClient:
        return masters[config.url].factory(config)

    with (
        lm.connect("memory://") as storage,
        lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"fast": "http://fast", "slow": "http://slow"}),
            client_factory=factory,
            poll_interval=0.5,
        ) as orch,
    ):
        runs = {
            name: orch.start_run(create(orch, locustClusterId=name).id, actor=ACTOR)
            for name in ("slow", "fast")
        }
        time.sleep(2.6)
        fast_snaps = len(orch.snapshots(runs["fast"].id))
        slow_snaps = len(orch.snapshots(runs["slow"].id))
    assert fast_snaps >= 4, fast_snaps  # about one every 0.5 s
    assert slow_snaps <= 1, slow_snaps


def test_the_latest_snapshot_is_recent_while_a_run_lives_and_the_last_once_it_ended(
    orch: lm.Orchestrator, clock: ManualClock
) -> None:
    test = create(orch)
    run = orch.start_run(test.id, actor=ACTOR)
    assert orch.latest_snapshot(run.id) is None
    polled = orch.refresh(run.id)
    latest = orch.latest_snapshot(run.id)
    assert latest is not None
    assert latest.load_test_run_id == run.id
    clock.advance(3 * polled.parameters.poll_interval + 1)
    assert orch.latest_snapshot(run.id) is None  # too old to stand for "now"
    orch.stop_run(run.id, actor=ACTOR)
    orch.refresh(run.id)
    ended = orch.get_run(run.id)
    assert not ended.is_active
    assert orch.latest_snapshot(run.id) is not None  # an ended run's last one
    with pytest.raises(lm.NotFoundError):
        orch.latest_snapshot(run.id, tenants={"someone-else"})


def test_the_load_test_of_a_run_is_none_where_it_cannot_be_read(orch: lm.Orchestrator) -> None:
    test = create(orch)
    run = orch.start_run(test.id, actor=ACTOR)
    assert orch.load_test_of(run) == orch.get_load_test(test.id)
    assert orch.load_test_of(run, tenants={"someone-else"}) is None
