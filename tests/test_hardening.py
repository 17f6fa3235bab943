"""Regression tests for the defects a hostile and chaotic probe found (issue 14).

Each runs on memory, SQLite and the MongoDB stand-in where storage is involved.
The delete-versus-start race is in test_delete_race.py, the storage outage in
test_storage_outage.py, and MongoDB's legacy collection in test_storage_mongo.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

import loadmanager as lm
from loadmanager.http import Api, ApiRequest, Principal, bearer_tokens
from loadmanager.testing import FakeLocustMaster, make_load_test, make_run
from loadmanager.testing.seed import seed_load_test_body

ACTOR = "user@example.com"


@pytest.fixture
def storage(each_storage: lm.Storage) -> lm.Storage:
    return each_storage


@pytest.fixture
def orch(storage: lm.Storage) -> Iterator[lm.Orchestrator]:
    masters: dict[str, FakeLocustMaster] = {}
    clusters = lm.ClusterRegistry(
        {
            "shared": "http://shared",
            "reserved": lm.ClusterConfig("http://reserved", tenants={"tenant-b"}),
        }
    )
    with lm.Orchestrator(
        storage=storage,
        clusters=clusters,
        client_factory=lambda config: masters.setdefault(config.url, FakeLocustMaster()),
        monitor=False,
    ) as o:
        yield o


def create(orch: lm.Orchestrator, **changes: Any) -> lm.LoadTest:
    body = {**seed_load_test_body(), "locustClusterId": "shared", **changes}
    return orch.create_load_test(body, actor=ACTOR)


def everything(orch: lm.Orchestrator) -> tuple[int, int]:
    return len(orch.list_load_tests(limit=10_000)), len(orch.list_runs(limit=10_000))


# 1. a tenant scope given as one string --------------------------------------


def test_a_tenant_scope_given_as_one_string_is_refused(orch: lm.Orchestrator) -> None:
    test = create(orch, tenantId="t")  # the tenant a character-split scope would reach
    with pytest.raises(lm.ValidationError):
        Principal("carol", "tenant-a")  # type: ignore[arg-type]
    with pytest.raises(lm.ValidationError):
        lm.ClusterConfig("http://m", tenants="tenant-a")  # type: ignore[arg-type]
    for call in (
        lambda: orch.get_load_test(test.id, tenants="tenant-a"),
        lambda: orch.list_load_tests(tenants="tenant-a"),
        lambda: orch.list_runs(tenants="tenant-a"),
        lambda: orch.update_load_test(test.id, {"name": "x"}, actor=ACTOR, tenants="tenant-a"),
        lambda: orch.create_load_test(seed_load_test_body(), actor=ACTOR, tenants="tenant-1"),
    ):
        with pytest.raises(lm.ValidationError) as info:
            call()
        assert info.value.paths == ("tenants",)
    assert orch.get_load_test(test.id).name == test.name
    assert Principal("carol", ["tenant-a"]).tenants == frozenset({"tenant-a"})


# 4. lone surrogates ------------------------------------------------------------


def test_lone_surrogates_are_refused_before_anything_is_written(orch: lm.Orchestrator) -> None:
    test = create(orch)
    before = everything(orch)
    for field in ("name", "description"):
        with pytest.raises(lm.ValidationError):
            create(orch, **{field: "x\ud800"})
    with pytest.raises(lm.ValidationError):
        create(orch, tags=["ok", "x\udfff"])
    with pytest.raises(lm.ValidationError):
        orch.start_run(test.id, {"tags": ["x\ud800"]}, actor=ACTOR)
    with pytest.raises(lm.ValidationError):
        orch.list_load_tests(name_contains="x\ud800")
    with pytest.raises(lm.ValidationError):
        orch.get_load_test("x\ud800")
    assert everything(orch) == before


# 5. the busy cluster and reserved clusters -----------------------------------


def test_a_busy_cluster_names_its_holder_only_to_those_who_may_see_it(
    orch: lm.Orchestrator,
) -> None:
    mine = create(orch, tenantId="tenant-a")
    theirs = create(orch, tenantId="tenant-b")
    holder = orch.start_run(theirs.id, actor=ACTOR, tenants={"tenant-b"})
    with pytest.raises(lm.ClusterBusyError) as info:
        orch.start_run(mine.id, actor=ACTOR, tenants={"tenant-a"})
    assert info.value.active_run_id is None
    assert holder.id not in str(info.value)
    with pytest.raises(lm.ClusterBusyError) as seen:
        orch.start_run(theirs.id, actor=ACTOR, tenants={"tenant-b"})
    assert seen.value.active_run_id == holder.id


def test_a_reserved_cluster_refuses_other_tenants(orch: lm.Orchestrator) -> None:
    with pytest.raises(lm.PermissionDeniedError):
        create(orch, tenantId="tenant-a", locustClusterId="reserved")
    allowed = create(orch, tenantId="tenant-b", locustClusterId="reserved")
    assert orch.start_run(allowed.id, actor=ACTOR).status is lm.RunStatus.RUNNING
    other = create(orch, tenantId="tenant-a")
    with pytest.raises(lm.PermissionDeniedError):
        orch.update_load_test(other.id, {"locustClusterId": "reserved"}, actor=ACTOR)
    with pytest.raises(lm.PermissionDeniedError):
        orch.update_load_test(allowed.id, {"tenantId": "tenant-a"}, actor=ACTOR)


# 6, 7. bodies over HTTP ------------------------------------------------------


def api_call(orch: lm.Orchestrator, body: bytes, content_type: str | None) -> Any:
    api = Api(orch, bearer_tokens({"t": Principal(ACTOR, None)}))
    headers = {"authorization": "Bearer t"}
    if content_type is not None:
        headers["content-type"] = content_type
    return api.handle(ApiRequest("POST", "/v1/load-tests", headers=headers, body=body))


def test_deeply_nested_json_is_a_422_not_a_500(orch: lm.Orchestrator) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    response = api_call(orch, deep, "application/json")
    assert response.status == 422
    assert "nests deeper" in response.body["detail"]
    moderately = b'{"name": ' + b"[" * 40 + b"]" * 40 + b"}"
    assert api_call(orch, moderately, "application/json").status == 422


def test_bodies_not_declared_as_json_are_415_and_write_nothing(orch: lm.Orchestrator) -> None:
    import json

    body = json.dumps({**seed_load_test_body(), "locustClusterId": "shared"}).encode()
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
        assert api_call(orch, body, kind).status == 415
    assert everything(orch) == (0, 0)
    assert api_call(orch, body, "application/json; charset=utf-8").status == 201
    assert api_call(orch, body, "application/vnd.api+json").status == 201


# 8. list filters --------------------------------------------------------------


def test_one_tag_given_as_a_string_is_one_tag(orch: lm.Orchestrator) -> None:
    tagged = create(orch, tags=["api"])
    create(orch, tags=["a", "p", "i"])
    assert orch.list_load_tests(tags="api") == [tagged]
    for bad in ({"tags": 5}, {"tenants": 5}, {"limit": -1}, {"limit": "5"}):
        with pytest.raises(lm.ValidationError):
            orch.list_load_tests(**bad)


# 9. library arguments ---------------------------------------------------------


def test_bad_ids_times_and_limits_are_validation_errors(orch: lm.Orchestrator) -> None:
    test = create(orch)
    run = orch.start_run(test.id, actor=ACTOR)
    naive = datetime(2025, 1, 1)  # naive: the point of the test
    for bad_id in ({"$ne": None}, 2**63, 7, None):
        for call in (orch.get_load_test, orch.get_run, orch.snapshots):
            with pytest.raises(lm.ValidationError):
                call(bad_id)  # type: ignore[operator]
    for kwargs in ({"start": naive}, {"end": naive}, {"limit": -1}, {"limit": "5"}):
        with pytest.raises(lm.ValidationError):
            orch.snapshots(run.id, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(lm.ValidationError):
        orch.series(run.id, start=naive)
    with pytest.raises(lm.ValidationError):
        orch.list_runs(started_after=naive)


# 10. storage URLs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("sqlite:///a\x00b.db", "url"),
        ("sqlite:///x\ud800.db", "url"),
        ("mongodb://127.0.0.1:99999/db", "url.port"),
        ("mongodb://us@er:p@ss@127.0.0.1/db", "url.credentials"),
        ("mongodb://127.0.0.1/d b", "url.database"),
        ("sqlite:/x.db", "url"),
    ],
)
def test_bad_storage_urls_name_the_part_that_is_wrong(url: str, part: str) -> None:
    with pytest.raises(lm.ValidationError) as info:
        lm.connect(url)
    assert info.value.paths == (part,)


# 11. a busy cluster always names its holder ----------------------------------


def test_a_busy_error_names_its_holder_even_when_the_holder_just_ended(
    storage: lm.Storage,
) -> None:
    test = storage.load_tests.add(make_load_test(locust_cluster_id="c1"))
    missing = 0
    for n in range(20):
        holder = storage.runs.add(make_run(test, id=f"h{n}"))
        barrier = threading.Barrier(2)

        def end(run: lm.LoadTestRun = holder, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            storage.runs.update(run.transition(lm.RunStatus.FAILED, at=lm.utc_now(), actor="x"))

        ender = threading.Thread(target=end)
        ender.start()
        barrier.wait()
        try:
            storage.runs.add(make_run(test, id=f"c{n}"))
        except lm.ClusterBusyError as exc:
            missing += exc.active_run_id is None
        ender.join()
        for run in storage.runs.find(lm.RunFilter(statuses=["pending"], limit=100)):
            storage.runs.update(run.transition(lm.RunStatus.FAILED, at=lm.utc_now(), actor="x"))
    assert missing == 0
