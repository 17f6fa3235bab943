"""The HTTP API in-process: every route on every backend, auth, errors, tenants."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.http import Principal, bearer_tokens, create_app
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run, make_summary
from loadmanager.testing.target import TargetServer

LOCUSTFILE = Path(__file__).parent / "locustfiles" / "basic.py"
ALICE = {"Authorization": "Bearer alice-token"}
TOKENS = {
    "alice-token": Principal("alice@example.com", {"tenant-1"}),
    "bob-token": Principal("bob@example.com", {"tenant-2"}),
    "root-token": Principal("root@example.com", None),
}


def body(target_url: str = "https://api.example.com", **changes: Any) -> dict[str, Any]:
    return {
        "name": "API Load Test", "description": "Tests API performance", "tags": ["api", "prod"],
        "tenantId": "tenant-1", "envId": "prod", "locustClusterId": "cluster-1",
        "targetUrl": target_url, "locustfile": "basic.py", "defaultUsers": 4,
        "defaultSpawnRate": 4, **changes,
    }  # fmt: skip


def client_for(orch: lm.Orchestrator) -> httpx.Client:
    app = create_app(orch, authenticate=bearer_tokens(TOKENS))
    return httpx.Client(transport=_SyncASGI(app), base_url="http://testserver")


class _SyncASGI(httpx.BaseTransport):
    """httpx's ASGITransport is async; this drives it from synchronous tests."""

    def __init__(self, app: Any) -> None:
        import anyio.from_thread

        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._transport = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            body = request.read()
            async_request = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self._transport.handle_async_request(async_request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self._portal.call(send)

    def close(self) -> None:
        self._portal_cm.__exit__(None, None, None)


@pytest.fixture
def memory_orch() -> Iterator[lm.Orchestrator]:
    with (
        lm.connect("memory://") as storage,
        lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"cluster-1": "http://127.0.0.1:9"}),
            monitor=False,
        ) as orch,
    ):
        yield orch


@pytest.fixture
def api(memory_orch: lm.Orchestrator) -> Iterator[httpx.Client]:
    with client_for(memory_orch) as client:
        yield client


# -- auth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic YWxpY2U6eA=="},
     {"Authorization": "Bearer wrong"}, {"Authorization": "bearer alice-token-but-longer"}],
)  # fmt: skip
def test_bad_credentials_get_401_and_write_nothing(
    api: httpx.Client, memory_orch: lm.Orchestrator, headers: dict[str, str]
) -> None:
    response = api.post("/v1/load-tests", json=body(), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    assert memory_orch.list_load_tests() == []


def test_no_hook_no_app(memory_orch: lm.Orchestrator) -> None:
    with pytest.raises(ValueError, match="allow_anonymous"):
        create_app(memory_orch)
    assert create_app(memory_orch, authenticate=lm.http.allow_anonymous) is not None


def test_the_actor_comes_from_the_principal_not_the_body(api: httpx.Client) -> None:
    response = api.post("/v1/load-tests", json=body(createdBy="mallory@example.com"), headers=ALICE)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "path": "createdBy",
            "message": "must be left out or equal the caller's identity; it is never trusted",
        }
    ]
    created = api.post("/v1/load-tests", json=body(), headers=ALICE).json()
    assert created["createdBy"] == "alice@example.com"


# -- errors -------------------------------------------------------------------------


def test_errors_are_problem_documents(api: httpx.Client) -> None:
    bad = api.post(
        "/v1/load-tests", json=body(defaultUsers=-5, targetUrl="ftp://x", colour=1), headers=ALICE
    )
    assert bad.status_code == 422
    problem = bad.json()
    assert {e["path"] for e in problem["errors"]} == {"defaultUsers", "targetUrl", "colour"}
    assert set(problem) >= {"type", "title", "status", "detail"}
    as_json = {**ALICE, "Content-Type": "application/json"}
    assert api.post("/v1/load-tests", content=b"{not json", headers=as_json).status_code == 422
    assert api.post("/v1/load-tests", content=b"{not json", headers=ALICE).status_code == 415
    assert api.get("/v1/nowhere", headers=ALICE).status_code == 404
    wrong_method = api.patch("/v1/load-tests", headers=ALICE)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, POST"
    huge = api.post("/v1/load-tests", content=b" " * (1024 * 1024 + 1), headers=ALICE)
    assert huge.status_code == 413
    for response in (bad, huge, wrong_method):
        assert "Traceback" not in response.text


def test_locust_unreachable_is_502_and_the_run_is_recorded_failed(api: httpx.Client) -> None:
    test = api.post("/v1/load-tests", json=body(), headers=ALICE).json()
    response = api.post(f"/v1/load-tests/{test['id']}/runs", json={"targetUsers": 2}, headers=ALICE)
    assert response.status_code == 502
    run = api.get(f"/v1/runs/{response.json()['runId']}", headers=ALICE).json()
    assert run["status"] == "failed"


def test_etags_and_if_match(api: httpx.Client) -> None:
    created = api.post("/v1/load-tests", json=body(), headers=ALICE)
    test_id, etag = created.json()["id"], created.headers["etag"]
    assert etag == '"v1"'
    assert api.get(f"/v1/load-tests/{test_id}", headers=ALICE).headers["etag"] == etag
    updated = api.put(
        f"/v1/load-tests/{test_id}", json={"name": "v2"}, headers={**ALICE, "If-Match": etag}
    )
    assert (updated.status_code, updated.headers["etag"]) == (200, '"v2"')
    stale = api.put(
        f"/v1/load-tests/{test_id}", json={"name": "v3"}, headers={**ALICE, "If-Match": etag}
    )
    assert stale.status_code == 412
    assert (
        api.delete(f"/v1/load-tests/{test_id}", headers={**ALICE, "If-Match": etag}).status_code
        == 412
    )
    assert (
        api.delete(f"/v1/load-tests/{test_id}", headers={**ALICE, "If-Match": '"v2"'}).status_code
        == 204
    )
    assert api.get(f"/v1/load-tests/{test_id}", headers=ALICE).status_code == 404


def test_lists_page_with_a_cursor(api: httpx.Client) -> None:
    ids = [
        api.post("/v1/load-tests", json=body(name=f"t{n}"), headers=ALICE).json()["id"]
        for n in range(5)
    ]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/load-tests", params=params, headers=ALICE).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ids
    assert api.get("/v1/load-tests", params={"cursor": "!!"}, headers=ALICE).status_code == 422


# -- tenants ------------------------------------------------------------------------


ROUTES = [
    ("GET", "/v1/load-tests/{test}"),
    ("PUT", "/v1/load-tests/{test}"),
    ("DELETE", "/v1/load-tests/{test}"),
    ("POST", "/v1/load-tests/{test}/runs"),
    ("GET", "/v1/load-tests/{test}/runs"),
    ("GET", "/v1/load-tests/{test}/trend"),
    ("GET", "/v1/runs/{run}"),
    ("POST", "/v1/runs/{run}/stop"),
    ("GET", "/v1/runs/{run}/metrics"),
    ("GET", "/v1/runs/{run}/metrics/endpoints"),
    ("GET", "/v1/runs/{run}/metrics/summary"),
    ("GET", "/v1/runs/{run}/metrics/comparison?baseline={run}"),
]


@pytest.fixture
def two_tenants(memory_orch: lm.Orchestrator) -> dict[str, tuple[str, str]]:
    objects = {}
    for tenant in ("tenant-1", "tenant-2", "tenant-3"):
        test = memory_orch.storage.load_tests.add(make_load_test(tenant_id=tenant))
        run = memory_orch.storage.runs.add(
            make_run(test, status=RunStatus.FINISHED, summary=make_summary())
        )
        objects[tenant] = (test.id, run.id)
    return objects


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    token=st.sampled_from(["alice-token", "bob-token"]),
    owner=st.sampled_from(["tenant-1", "tenant-2", "tenant-3", None]),
    route=st.sampled_from(ROUTES),
)
def test_no_response_reveals_another_tenants_objects(
    api: httpx.Client,
    memory_orch: lm.Orchestrator,
    two_tenants: dict[str, tuple[str, str]],
    token: str,
    owner: str | None,
    route: tuple[str, str],
) -> None:
    principal = TOKENS[token]
    method, template = route
    test_id, run_id = two_tenants[owner] if owner else ("missing-test", "missing-run")
    path = template.format(test=test_id, run=run_id)
    response = api.request(
        method,
        path,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        content=json.dumps({"name": "renamed"}) if method in ("PUT", "POST") else None,
    )
    mine = owner is not None and principal.tenants is not None and owner in principal.tenants
    if not mine:
        # Exactly what a missing object answers: same status, same title, no data.
        assert response.status_code == 404, (path, response.text)
        document = response.json()
        assert document["title"] == "Not found"
        for other in ("tenant-1", "tenant-2", "tenant-3"):
            assert other not in response.text
    else:
        # Examples share the fixture's data; an earlier DELETE may have removed it.
        still_there = bool(memory_orch.list_load_tests(tenant_id=owner))
        assert response.status_code != 404 or not still_there, (path, response.text)
    listing = api.get("/v1/runs", headers={"Authorization": f"Bearer {token}"}).json()
    assert {r["tenantId"] for r in listing["items"]} <= set(principal.tenants or ())
    tests = api.get(
        "/v1/load-tests",
        params={"tenantId": owner or "x"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert {t["tenantId"] for t in tests["items"]} <= set(principal.tenants or ())


def test_a_body_naming_a_foreign_tenant_is_403(api: httpx.Client) -> None:
    response = api.post("/v1/load-tests", json=body(tenantId="tenant-2"), headers=ALICE)
    assert response.status_code == 403


# -- every route, every backend, a real cluster -------------------------------------------


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer(slow_ms=20, fail_ratio=0.1) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(target: TargetServer) -> Iterator[lm.LocalCluster]:
    with lm.LocalCluster(LOCUSTFILE, workers=1, host=target.url) as running:
        yield running


@pytest.fixture(params=["memory", "sqlite", "mongodb"])
def real_api(
    request: pytest.FixtureRequest, tmp_path: Path, cluster: lm.LocalCluster
) -> Iterator[tuple[httpx.Client, lm.Orchestrator]]:
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'lm.db'}"}.get(request.param)
    if url is None:
        url = request.getfixturevalue("mongo_url")
    with (
        lm.connect(url) as storage,
        lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"cluster-1": cluster.url}),
            poll_interval=1.0,
        ) as orch,
        client_for(orch) as client,
    ):
        yield client, orch


@pytest.mark.slow
def test_every_route_end_to_end(
    real_api: tuple[httpx.Client, lm.Orchestrator], target: TargetServer
) -> None:
    api, orch = real_api
    h = ALICE
    test = api.post("/v1/load-tests", json=body(target.url, defaultRunTime="2s"), headers=h).json()
    tid = test["id"]
    assert (
        api.get(
            "/v1/load-tests", params={"tags": ["api", "prod"], "envId": "prod"}, headers=h
        ).json()["items"][0]["id"]
        == tid
    )
    assert api.get("/v1/load-tests", params={"tags": ["nope"]}, headers=h).json()["items"] == []
    first = api.post(
        f"/v1/load-tests/{tid}/runs", json={"targetUsers": 3, "spawnRate": 3}, headers=h
    )
    assert first.status_code == 201
    busy = api.post(f"/v1/load-tests/{tid}/runs", headers=h)
    assert busy.status_code == 409
    assert busy.json()["activeRunId"] == first.json()["id"]
    done = orch.wait(first.json()["id"], timeout=60)
    assert done.status is lm.RunStatus.FINISHED
    second = api.post(f"/v1/load-tests/{tid}/runs", json={"runTime": "30s"}, headers=h).json()
    import time

    time.sleep(2)
    stopping = api.post(f"/v1/runs/{second['id']}/stop", headers=h)
    assert stopping.json()["status"] == "stopping"
    orch.wait(second["id"], timeout=60)
    runs = api.get(f"/v1/load-tests/{tid}/runs", headers=h).json()["items"]
    assert [r["status"] for r in runs] == ["finished", "stopped"]
    assert (
        api.get("/v1/runs", params={"status": "stopped"}, headers=h).json()["items"][0]["id"]
        == second["id"]
    )
    run_id = done.id
    assert api.get(f"/v1/runs/{run_id}", headers=h).json()["status"] == "finished"
    series = api.get(f"/v1/runs/{run_id}/metrics", params={"buckets": 5}, headers=h).json()
    assert series["loadTestRunId"] == run_id
    assert series["buckets"]
    endpoints = api.get(f"/v1/runs/{run_id}/metrics/endpoints", headers=h).json()["endpoints"]
    assert endpoints[-1]["name"] == "Aggregated"
    summary = api.get(f"/v1/runs/{run_id}/metrics/summary", headers=h).json()
    assert summary["summary"]["aggregated"]["numRequests"] > 0
    comparison = api.get(
        f"/v1/runs/{second['id']}/metrics/comparison", params={"baseline": run_id}, headers=h
    )
    assert comparison.status_code == 200
    assert comparison.json()["baselineRunId"] == run_id
    trend = api.get(f"/v1/load-tests/{tid}/trend", headers=h).json()["items"]
    assert [p["runId"] for p in trend] == [run_id, second["id"]]
    assert api.delete(f"/v1/load-tests/{tid}", headers=h).status_code == 204
    assert api.get(f"/v1/runs/{run_id}", headers=h).status_code == 404


# -- stored locustfiles (off unless the host enables them) --------------------------------


def test_locustfile_routes_are_off_by_default(memory_orch: lm.Orchestrator) -> None:
    with client_for(memory_orch) as http:
        response = http.put(
            "/v1/locustfiles/shop.py?tenantId=tenant-1", json={"content": "X = 1\n"}, headers=ALICE
        )
    assert response.status_code == 404
    assert memory_orch.list_locustfiles(tenant_id="tenant-1") == []


def test_locustfile_routes_store_version_scope_and_delete(memory_orch: lm.Orchestrator) -> None:
    app = create_app(memory_orch, authenticate=bearer_tokens(TOKENS), locustfile_routes=True)
    bob = {"Authorization": "Bearer bob-token"}
    with httpx.Client(transport=_SyncASGI(app), base_url="http://testserver") as http:
        url = "/v1/locustfiles/web/shop.py?tenantId=tenant-1"
        first = http.put(url, json={"content": "X = 1\n"}, headers=ALICE)
        second = http.put(url, json={"content": "X = 2\n"}, headers=ALICE)
        assert (first.status_code, second.status_code) == (201, 201)
        assert second.json()["version"] == 2
        assert "content" not in second.json()
        assert http.get(url, headers=ALICE).json()["content"] == "X = 2\n"
        assert http.get(url + "&version=1", headers=ALICE).json()["content"] == "X = 1\n"
        listed = http.get("/v1/locustfiles?tenantId=tenant-1", headers=ALICE).json()["items"]
        assert [(f["name"], f["version"]) for f in listed] == [("web/shop.py", 2)]
        assert http.get(url, headers=bob).status_code == 404  # another tenant's: not found
        assert http.put(url, json={"content": "X = 3\n"}, headers=bob).status_code == 403
        assert http.put(url, content="X = 3\n", headers=ALICE).status_code == 415
        assert http.put(url, json={"content": "X", "extra": 1}, headers=ALICE).status_code == 422
        # Content that is not text is a 422 too; schemathesis once made it a 500.
        for content in ({"x": 1}, ["X"], 7, None):
            assert http.put(url, json={"content": content}, headers=ALICE).status_code == 422
        assert http.get("/v1/locustfiles", headers=ALICE).status_code == 422  # no tenantId
        assert http.delete(url, headers=ALICE).status_code == 204
        assert http.get(url, headers=ALICE).status_code == 404


def test_the_openapi_document_lists_locustfile_routes_only_when_served(
    memory_orch: lm.Orchestrator,
) -> None:
    on = create_app(memory_orch, authenticate=bearer_tokens(TOKENS), locustfile_routes=True)
    with client_for(memory_orch) as off_http, httpx.Client(
        transport=_SyncASGI(on), base_url="http://testserver"
    ) as on_http:  # fmt: skip
        off = off_http.get("/openapi.json").json()["paths"]
        served = on_http.get("/openapi.json").json()["paths"]
    assert "/v1/locustfiles/{name}" not in off
    assert set(served["/v1/locustfiles/{name}"]) == {"parameters", "put", "get", "delete"}
