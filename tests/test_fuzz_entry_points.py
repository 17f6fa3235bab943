"""Every public entry point under hostile input: only LoadManagerError escapes,
and a refused call writes nothing.

The same calls run on the memory and SQLite backends (the MongoDB backend
shares the repository argument checks, and its own suite runs the contract
tests that cover them). CI runs the ``ci`` hypothesis profile; ``nox -s fuzz``
runs 10,000 examples per test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.grammar import parse
from loadmanager.http import Api, ApiRequest, Principal, bearer_tokens
from loadmanager.testing import FakeLocustMaster, ManualClock
from loadmanager.testing import strategies as lms
from loadmanager.testing.seed import seed_load_test_body

ACTOR = "user@example.com"  # the seed body's createdBy
FIXTURES_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


class World:
    """An Orchestrator with one test and one running run, on a fake master."""

    def __init__(self, url: str) -> None:
        self.storage = lm.connect(url)
        self.master = FakeLocustMaster()
        self.orch = lm.Orchestrator(
            storage=self.storage,
            clusters=lm.ClusterRegistry({"cluster-1": "http://m1", "cluster-2": "http://m2"}),
            client_factory=lambda config: self.master,
            clock=ManualClock(),
            monitor=False,
        )
        self.test = self.orch.create_load_test(seed_load_test_body(), actor=ACTOR)
        self.run = self.orch.start_run(self.test.id, actor=ACTOR)

    def state(self) -> str:
        tests = self.storage.load_tests.find(lm.LoadTestFilter(limit=10_000))
        runs = self.storage.runs.find(lm.RunFilter(limit=10_000))
        counts = [self.storage.metrics.count(r.id) for r in runs]
        return json.dumps([lm.to_dict(tests), lm.to_dict(runs), counts], sort_keys=True)

    def close(self) -> None:
        self.orch.close()
        self.storage.close()


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    url = "memory://" if request.param == "memory" else (
        f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    )  # fmt: skip
    w = World(url)
    yield w
    w.close()


def ids(world: World) -> st.SearchStrategy[Any]:
    return st.sampled_from([world.test.id, world.run.id]) | lms.attacks()


def calls(world: World) -> st.SearchStrategy[tuple[str, Callable[[], Any]]]:
    """One public Orchestrator call with hostile arguments."""
    o, anything = world.orch, lms.attacks()
    actor = st.just(ACTOR) | anything
    tenants = st.none() | st.just({"tenant-1"}) | anything
    body = lms.json_values() | lms.near_documents(seed_load_test_body()) | anything

    def call(name: str, fn: Callable[..., Any], **kw: st.SearchStrategy[Any]) -> Any:
        return st.fixed_dictionaries(kw).map(lambda k: (name, lambda: fn(**k)))

    return st.one_of(
        call("create", o.create_load_test, payload=body, actor=actor, tenants=tenants),
        call("get", o.get_load_test, load_test_id=ids(world), tenants=tenants),
        call("list", o.list_load_tests, tenant_id=anything, env_id=anything, tags=anything,
             name_contains=anything, created_by=anything, limit=anything, tenants=tenants),
        call("update", o.update_load_test, load_test_id=ids(world), changes=body, actor=actor,
             expected_version=anything, tenants=tenants),
        call("delete", o.delete_load_test, load_test_id=ids(world), actor=actor,
             expected_version=anything, tenants=tenants),
        call("start", o.start_run, load_test_id=ids(world), overrides=body, actor=actor,
             tenants=tenants),
        call("stop", o.stop_run, run_id=ids(world), actor=actor, tenants=tenants),
        call("get_run", o.get_run, run_id=ids(world), tenants=tenants),
        call("list_runs", o.list_runs, load_test_id=anything, statuses=anything,
             started_after=anything, started_before=anything, limit=anything, tenants=tenants),
        call("snapshots", o.snapshots, run_id=ids(world), start=anything, end=anything,
             limit=anything, tenants=tenants),
        call("series", o.series, run_id=ids(world), buckets=anything, endpoint=anything,
             start=anything, end=anything, tenants=tenants),
        call("baseline", o.set_baseline, load_test_id=ids(world), run_id=ids(world),
             actor=actor, tenants=tenants),
        call("trend", o.trend, load_test_id=ids(world), statuses=anything, limit=anything,
             tenants=tenants),
        call("compare", o.compare, run_id=ids(world), baseline_run_id=ids(world),
             tenants=tenants),
        call("unmonitored", o.unmonitored_runs, tenants=tenants),
    )  # fmt: skip


@FIXTURES_OK
@given(data=st.data())
def test_orchestrator_calls_raise_only_loadmanager_errors_and_refusals_write_nothing(
    world: World, data: st.DataObject
) -> None:
    name, call = data.draw(calls(world))
    before = world.state()
    try:
        call()
    except lm.LoadManagerError:
        assert world.state() == before, f"{name} was refused but wrote"


@FIXTURES_OK
@given(text=lms.attack_texts() | st.text())
def test_the_criteria_grammar_parses_or_says_where(text: str) -> None:
    try:
        parsed: object = parse(text)
    except lm.ValidationError as exc:
        parsed = exc.errors
    assert isinstance(parsed, lm.Threshold) or parsed  # a criterion, or what is wrong


@FIXTURES_OK
@given(url=lms.attacks() | st.sampled_from(["memory://", "sqlite://", "sqlite:/x", "mongodb://"])
       | st.text(max_size=40).map(lambda t: "sqlite:///nowhere/" + t)
       | st.text(max_size=40).map(lambda t: "mongodb://" + t))  # fmt: skip
def test_connect_opens_or_refuses_with_a_loadmanager_error(
    url: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative SQLite path lands here, never in the checkout
    options = {"migrate_on_open": False} if str(url).startswith("mongodb") else {}
    try:
        storage = lm.connect(url, **options)
    except lm.LoadManagerError:
        return
    storage.close()


ALICE = Principal("alice@example.com", {"tenant-1"})


@FIXTURES_OK
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(
        ["/v1/load-tests", "/v1/load-tests/{test}", "/v1/load-tests/{test}/runs",
         "/v1/runs", "/v1/runs/{run}", "/v1/runs/{run}/stop", "/v1/runs/{run}/metrics",
         "/v1/load-tests/{test}/trend", "/v1/runs/{run}/metrics/comparison"]
    ),
    query=st.dictionaries(st.text(max_size=10), st.lists(lms.attack_texts(), max_size=2),
                          max_size=3),
    content_type=st.sampled_from(
        [None, "application/json", "text/plain", "application/x-www-form-urlencoded",
         "multipart/form-data; boundary=x", "application/merge-patch+json"]
    ),
    body=lms.attacks() | lms.json_values() | st.binary(max_size=64),
)  # fmt: skip
def test_http_routes_answer_below_500_and_refusals_write_nothing(
    world: World,
    method: str,
    path: str,
    query: dict[str, list[str]],
    content_type: str | None,
    body: Any,
) -> None:
    api = Api(world.orch, bearer_tokens({"t": ALICE}))
    if isinstance(body, bytes):
        raw = body
    else:
        try:
            raw = json.dumps(body).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError, RecursionError):
            raw = repr(body).encode("utf-8", "surrogatepass")
    headers = {"authorization": "Bearer t"}
    if content_type is not None:
        headers["content-type"] = content_type
    request = ApiRequest(
        method,
        path.format(test=world.test.id, run=world.run.id),
        query=query,
        headers=headers,
        body=raw,
    )
    before = world.state()
    response = api.handle(request)
    assert response.status < 500, response.body
    if response.status >= 400:
        assert world.state() == before
    response.encode()  # always serialisable


# the command line: test files are untrusted input ---------------------------------


@FIXTURES_OK
@given(
    document=st.one_of(
        lms.json_values(),
        st.fixed_dictionaries({}, optional={k: lms.json_values() for k in seed_load_test_body()}),
    ),
    suffix=st.sampled_from([".json", ".yaml"]),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
)
def test_any_test_file_is_a_one_line_exit_4_and_nothing_stored(
    tmp_path: Path, document: Any, suffix: str, raw: bytes | None
) -> None:
    import contextlib
    import io

    from loadmanager.cli import main

    spec = tmp_path / f"test{suffix}"
    if raw is not None:
        spec.write_bytes(raw)
    else:
        spec.write_text(json.dumps(document), encoding="utf-8")  # JSON is YAML too
    database = tmp_path / "fuzz.db"
    database.unlink(missing_ok=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as done:
        main(["--storage", f"sqlite:///{database}", "run", str(spec)])
    # No cluster is configured, so nothing can run: every file is refused as input.
    assert done.value.code == 4, err.getvalue()
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("loadmanager: error: ")
    with lm.connect(f"sqlite:///{database}") as storage:
        assert storage.load_tests.find(lm.LoadTestFilter()) == []
