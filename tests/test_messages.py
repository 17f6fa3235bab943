"""Error messages as a person reads them: the first line of ``str(error)``.

Each case is a mistake a new user made while trying the library; the message
must say what is wrong and, where one is close, what they meant.
"""

from __future__ import annotations

import socket
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import tenacity

import loadmanager as lm
from loadmanager.testing import FakeLocustMaster
from loadmanager.testing.seed import seed_load_test_body

ACTOR = "user@example.com"


@pytest.fixture
def orch() -> Iterator[lm.Orchestrator]:
    masters: dict[str, FakeLocustMaster] = {}
    clusters = lm.ClusterRegistry(
        {
            "cluster-1": "http://cluster-1",
            "reserved-payments": lm.ClusterConfig("http://r", tenants={"tenant-b"}),
        }
    )
    with (
        lm.connect("memory://") as storage,
        lm.Orchestrator(
            storage=storage,
            clusters=clusters,
            client_factory=lambda config: masters.setdefault(config.url, FakeLocustMaster()),
            monitor=False,
        ) as o,
    ):
        yield o


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0]


def body(**changes: Any) -> dict[str, Any]:
    return {**seed_load_test_body(), "locustClusterId": "cluster-1", **changes}


def test_a_typo_in_a_field_suggests_the_field(orch: lm.Orchestrator) -> None:
    spec = body()
    spec["defaultUser"] = spec.pop("defaultUsers")
    with pytest.raises(lm.ValidationError) as info:
        orch.create_load_test(spec, actor=ACTOR)
    assert first_line(info.value) == (
        "invalid LoadTestSpec: defaultUsers: is required; "
        "defaultUser: is not a known field (did you mean 'defaultUsers'?)"
    )


def test_a_validation_error_prints_one_message_not_cattrs_internals(
    orch: lm.Orchestrator,
) -> None:
    with pytest.raises(lm.ValidationError) as info:
        orch.create_load_test(body(colour="red"), actor=ACTOR)
    printed = "".join(traceback.format_exception(info.value))
    assert "site-packages/cattrs" not in printed
    assert "During handling of the above exception" not in printed
    assert "ClassValidationError" not in printed
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert info.value.paths == ("colour",)


def test_an_unknown_metric_suggests_the_closest(orch: lm.Orchestrator) -> None:
    with pytest.raises(lm.ValidationError) as info:
        orch.create_load_test(body(thresholds=["p955 < 300"]), actor=ACTOR)
    assert "(did you mean 'p95'?)" in first_line(info.value)
    assert info.value.paths == ("thresholds[0]",)


def test_a_space_before_the_unit_is_named_as_such(orch: lm.Orchestrator) -> None:
    with pytest.raises(lm.ValidationError) as info:
        orch.create_load_test(body(thresholds=["p95 < 300 ms for 10s"]), actor=ACTOR)
    assert first_line(info.value) == (
        "invalid LoadTestSpec: thresholds[0]: at position 11: "
        "no space between a number and its unit: write '300ms'"
    )


def test_an_unknown_cluster_suggests_only_clusters_the_tenant_may_use(
    orch: lm.Orchestrator,
) -> None:
    with pytest.raises(lm.ValidationError) as info:
        orch.create_load_test(body(locustClusterId="cluster1"), actor=ACTOR)
    assert first_line(info.value) == (
        "invalid input: locustClusterId: 'cluster1' is not a configured Locust cluster "
        "(did you mean 'cluster-1'?)"
    )
    with pytest.raises(lm.ValidationError) as hidden:
        orch.create_load_test(body(locustClusterId="reserved-payment"), actor=ACTOR)
    assert "reserved-payments" not in str(hidden.value)


def test_a_cluster_url_without_scheme_is_refused_when_registered() -> None:
    with pytest.raises(lm.ValidationError) as info:
        lm.ClusterRegistry({"c": "locust-master:8089"})
    assert first_line(info.value) == (
        "invalid input: url: a Locust master URL is http://host:port or https://... "
        "(got 'locust-master:8089'); did you mean 'http://locust-master:8089'?"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:/x.db", "did you mean 'sqlite:///x.db'?"),
        ("sqlit:///x.db", "unknown storage scheme 'sqlit' (did you mean 'sqlite'?)"),
        ("mongo://h/db", "unknown storage scheme 'mongo' (did you mean 'mongodb'?)"),
    ],
)
def test_storage_urls_are_diagnosed_with_the_right_form(url: str, expected: str) -> None:
    with pytest.raises(lm.ValidationError) as info:
        lm.connect(url)
    assert expected in first_line(info.value)


def test_a_whole_number_run_time_means_seconds_as_in_locust(orch: lm.Orchestrator) -> None:
    test = orch.create_load_test(body(defaultRunTime=30), actor=ACTOR)
    assert test.default_run_time == "30s"
    run = orch.start_run(test.id, {"runTime": 90}, actor=ACTOR)
    assert run.parameters.run_time == "90s"
    assert run.parameters.run_time_seconds == 90
    with pytest.raises(lm.ValidationError) as info:
        orch.start_run(test.id, {"runTime": True}, actor=ACTOR)
    assert info.value.paths == ("runTime",)


def test_a_busy_cluster_says_what_to_do(orch: lm.Orchestrator) -> None:
    first = orch.create_load_test(body(), actor=ACTOR)
    second = orch.create_load_test(body(name="other"), actor=ACTOR)
    holder = orch.start_run(first.id, actor=ACTOR)
    with pytest.raises(lm.ClusterBusyError) as info:
        orch.start_run(second.id, actor=ACTOR)
    assert first_line(info.value) == (
        f"cluster 'cluster-1' is busy by run {holder.id!r}; wait for it "
        f"(orch.wait({holder.id!r})), stop it (orch.stop_run({holder.id!r})), "
        "or give the test a cluster of its own (a provider makes one per run)"
    )


def test_a_wait_timeout_names_the_timeout(orch: lm.Orchestrator) -> None:
    test = orch.create_load_test(body(), actor=ACTOR)
    run = orch.start_run(test.id, actor=ACTOR)
    with pytest.raises(lm.WaitTimeoutError) as info:
        orch.wait(run.id, timeout=0.3)
    assert first_line(info.value).startswith(
        f"run {run.id!r} still running after wait(timeout=0.3); the run goes on"
    )


def once() -> tenacity.Retrying:
    return tenacity.Retrying(stop=tenacity.stop_after_attempt(1), reraise=True)


def test_a_master_that_does_not_answer_names_the_request_timeout() -> None:
    # A socket that accepts and never answers: the read timeout is what fires.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        with (
            lm.LocustClient(url, timeout=0.2, retrying=once) as client,
            pytest.raises(lm.LocustTimeoutError) as info,
        ):
            client.stats()
    assert "request timeout (0.2 s, ClusterConfig(timeout=...)" in first_line(info.value)
