"""Locustfile sources, stored versions, and what a run records of what it ran.

The masters are fakes built from a real run's answers; the provider here is a
fault-injecting stand-in for the port (it fails, or records what it was asked).
The real LocalProvider runs in test_provisioning_local.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.testing import FakeLocustMaster, ManualClock
from loadmanager.testing.seed import seed_load_test_body
from loadmanager.testing.strategies import attack_texts

ACTOR = "user@example.com"
CODE = (
    "from locust import HttpUser, task\n\nclass Shop(HttpUser):\n"
    "    @task\n    def home(self):\n        self.client.get('/')\n"
)


class RecordingProvider:
    """A ClusterProvider that makes nothing: it hands out fake masters' addresses."""

    tenants = None

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.made: dict[str, lm.ClusterHandle] = {}
        self.released: list[str] = []
        self.requests: list[lm.ProvisionRequest] = []

    def workers_for(self, users: int, requested: int | None) -> int:
        return requested or max(1, users // 10)

    def provision(self, request: lm.ProvisionRequest) -> lm.ClusterHandle:
        self.requests.append(request)
        if self.fail:
            raise lm.ProvisioningError("no room (injected)", "worker-0: out of memory")
        handle = lm.ClusterHandle(
            f"http://made-{request.run_id}", request.workers, {"run": request.run_id}
        )
        self.made[request.run_id] = handle
        return handle

    def release(self, handle: lm.ClusterHandle) -> None:
        self.released.append(handle.ref["run"])
        self.made.pop(handle.ref["run"], None)

    def held(self) -> list[lm.HeldCluster]:
        return [lm.HeldCluster(run_id, h) for run_id, h in self.made.items()]

    def log_tail(self, handle: lm.ClusterHandle) -> str:
        return "master: boom"


@pytest.fixture
def provider() -> RecordingProvider:
    return RecordingProvider()


@pytest.fixture
def masters() -> dict[str, FakeLocustMaster]:
    return {}


@pytest.fixture
def orch(
    provider: RecordingProvider, masters: dict[str, FakeLocustMaster], tmp_path: Path
) -> Iterator[lm.Orchestrator]:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "dir.py").write_text(CODE)
    with lm.connect("memory://") as storage, lm.Orchestrator(
        storage,
        lm.ClusterRegistry({
            "cluster-1": lm.ClusterConfig("http://static", locustfiles={"loadtest.py"}),
            "made": provider,
        }),
        clock=ManualClock(),
        client_factory=lambda config: masters.setdefault(config.url, FakeLocustMaster()),
        monitor=False,
        locustfiles=[lm.LocustfileDirectory(tmp_path / "files")],
    ) as o:  # fmt: skip
        yield o


def body(**changes: Any) -> dict[str, Any]:
    return {**seed_load_test_body(), "locustClusterId": "made", "locustfile": "dir.py", **changes}


# -- sources ---------------------------------------------------------------------------


def test_a_directory_resolves_files_inside_it_only(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.py").write_text(CODE)
    (tmp_path / "secret.py").write_text("TOKEN = 1\n")
    os.symlink(tmp_path / "secret.py", tmp_path / "in" / "link.py")
    source = lm.LocustfileDirectory(tmp_path / "in")
    found = source.resolve("a.py", "t1")
    assert found is not None
    assert found.sha256 == lm.ResolvedLocustfile("a.py", CODE, None, "").sha256
    assert found.version is None
    for name in ("../secret.py", "link.py", "/etc/passwd", "missing.py", "", "in/../../secret.py"):
        assert source.resolve(name, "t1") is None, name


def test_a_directory_file_that_is_not_text_is_a_validation_error(tmp_path: Path) -> None:
    (tmp_path / "bin.py").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(lm.ValidationError) as info:
        lm.LocustfileDirectory(tmp_path).resolve("bin.py", "t1")
    assert info.value.paths == ("locustfile",)


def test_a_name_that_resolves_nowhere_is_refused_at_create(orch: lm.Orchestrator) -> None:
    with pytest.raises(lm.ValidationError) as info:
        orch.create_load_test(body(locustfile="nope.py"), actor=ACTOR)
    assert info.value.paths == ("locustfile",)
    assert "nope.py" in str(info.value)
    assert orch.list_load_tests() == []


def test_a_static_master_refuses_a_locustfile_it_does_not_serve(orch: lm.Orchestrator) -> None:
    with pytest.raises(lm.ValidationError) as info:
        orch.create_load_test(body(locustClusterId="cluster-1", locustfile="dir.py"), actor=ACTOR)
    assert "serves loadtest.py, not 'dir.py'" in str(info.value)


def test_a_start_with_an_unserved_locustfile_sends_nothing_to_locust(
    orch: lm.Orchestrator, masters: dict[str, FakeLocustMaster]
) -> None:
    test = orch.create_load_test(
        body(locustClusterId="cluster-1", locustfile="loadtest.py"), actor=ACTOR
    )
    # The master is restarted with another file; the registry says so.
    orch.clusters.register("cluster-1", lm.ClusterConfig("http://static", locustfiles={"v2.py"}))
    with pytest.raises(lm.ValidationError, match=r"serves v2\.py"):
        orch.start_run(test.id, actor=ACTOR)
    assert orch.list_runs() == []
    assert all(m.calls == [] for m in masters.values())


# -- stored locustfiles -----------------------------------------------------------------


def test_runs_record_the_hash_and_version_they_ran(
    orch: lm.Orchestrator, provider: RecordingProvider
) -> None:
    v1 = orch.put_locustfile("shop.py", CODE, tenant_id="tenant-1", actor=ACTOR)
    test = orch.create_load_test(body(locustfile="shop.py", tenantId="tenant-1"), actor=ACTOR)
    first = orch.start_run(test.id, actor=ACTOR)
    assert (first.parameters.locustfile_sha256, first.parameters.locustfile_version) == (
        v1.sha256,
        1,
    )
    assert provider.requests[-1].locustfile.content == CODE
    orch.stop_run(first.id, actor=ACTOR)
    v2 = orch.put_locustfile("shop.py", CODE + "# v2\n", tenant_id="tenant-1", actor=ACTOR)
    second = orch.start_run(test.id, actor=ACTOR)  # a cluster of its own: no lease
    assert (second.parameters.locustfile_sha256, second.parameters.locustfile_version) == (
        v2.sha256,
        2,
    )
    assert orch.get_run(first.id).parameters.locustfile_version == 1
    assert orch.get_locustfile("shop.py", tenant_id="tenant-1", version=1).content == CODE
    assert orch.locustfile_versions("shop.py", tenant_id="tenant-1") == [1, 2]


def test_stored_content_wins_over_a_directory_file(orch: lm.Orchestrator) -> None:
    orch.put_locustfile("dir.py", "# stored\n" + CODE, tenant_id="tenant-1", actor=ACTOR)
    assert orch.resolve_locustfile("dir.py", "tenant-1").origin == "stored"  # type: ignore[union-attr]
    assert orch.resolve_locustfile("dir.py", "tenant-2").version is None  # type: ignore[union-attr]


def test_stored_locustfiles_are_tenant_scoped(orch: lm.Orchestrator) -> None:
    orch.put_locustfile("a.py", CODE, tenant_id="t1", actor=ACTOR)
    with pytest.raises(lm.PermissionDeniedError):
        orch.put_locustfile("a.py", CODE, tenant_id="t1", actor=ACTOR, tenants={"t2"})
    with pytest.raises(lm.NotFoundError):
        orch.get_locustfile("a.py", tenant_id="t1", tenants={"t2"})
    with pytest.raises(lm.NotFoundError):
        orch.delete_locustfile("a.py", tenant_id="t1", actor=ACTOR, tenants={"t2"})
    assert orch.list_locustfiles(tenant_id="t1", tenants={"t2"}) == []
    assert [f.name for f in orch.list_locustfiles(tenant_id="t1", tenants={"t1"})] == ["a.py"]
    assert orch.delete_locustfile("a.py", tenant_id="t1", actor=ACTOR) == 1


@settings(max_examples=60, deadline=None)
@given(
    name=st.one_of(attack_texts(), st.text(max_size=80)),
    content=st.one_of(attack_texts(), st.text()),
)
def test_any_put_is_stored_whole_or_refused_with_a_validation_error(
    name: str, content: str
) -> None:
    with lm.connect("memory://") as storage, lm.Orchestrator(
        storage, lm.ClusterRegistry({}), monitor=False
    ) as orch:  # fmt: skip
        try:
            stored = orch.put_locustfile(name, content, tenant_id="t1", actor=ACTOR)
        except lm.ValidationError as exc:
            refused: lm.ValidationError | None = exc
        else:
            refused = None
        if refused is not None:
            assert refused.errors
            assert storage.locustfiles.find("t1") == []
            return
        assert orch.get_locustfile(name, tenant_id="t1").content == content
        assert stored.sha256 == lm.ResolvedLocustfile(name, content, 1, "").sha256


# -- provisioning through the port ----------------------------------------------------


def test_a_made_cluster_is_recorded_used_and_released_when_the_run_ends(
    orch: lm.Orchestrator, provider: RecordingProvider, masters: dict[str, FakeLocustMaster]
) -> None:
    test = orch.create_load_test(body(defaultUsers=30), actor=ACTOR)
    run = orch.start_run(test.id, {"workers": 2}, actor=ACTOR)
    assert run.cluster is not None
    assert run.cluster.master_url == f"http://made-{run.id}"
    assert run.parameters.workers == 2
    assert not run.exclusive
    assert masters[run.cluster.master_url].calls == ["reset_stats", "swarm"]
    other = orch.start_run(test.id, actor=ACTOR)  # at once: each run has its own cluster
    assert other.parameters.workers == 3  # the provider's users-per-worker rule
    orch.stop_run(run.id, actor=ACTOR)
    masters[run.cluster.master_url].state = "stopped"
    orch.clock.advance(3.0)  # type: ignore[attr-defined]
    assert orch.refresh(run.id).status is lm.RunStatus.STOPPED
    assert provider.released == [run.id]


def test_a_provider_that_fails_fails_the_run_with_its_log(orch: lm.Orchestrator) -> None:
    orch.clusters.register("made", RecordingProvider(fail=True))
    test = orch.create_load_test(body(), actor=ACTOR)
    with pytest.raises(lm.ProvisioningError) as info:
        orch.start_run(test.id, actor=ACTOR)
    run = orch.get_run(info.value.run_id or "")
    assert run.status is lm.RunStatus.FAILED
    assert "no room (injected)" in (run.failure_reason or "")
    assert "out of memory" in (run.failure_reason or "")


def test_a_master_lost_mid_run_fails_with_its_log_tail(
    orch: lm.Orchestrator, masters: dict[str, FakeLocustMaster], provider: RecordingProvider
) -> None:
    run = orch.start_run(orch.create_load_test(body(), actor=ACTOR).id, actor=ACTOR)
    assert run.cluster is not None
    masters[run.cluster.master_url].state = "missing"
    orch.clock.advance(3.0)  # type: ignore[attr-defined]
    failed = orch.refresh(run.id)
    assert failed.status is lm.RunStatus.FAILED
    assert "master: boom" in (failed.failure_reason or "")
    assert provider.released == [run.id]


def test_reconcile_releases_clusters_whose_run_is_not_active(
    orch: lm.Orchestrator, provider: RecordingProvider
) -> None:
    run = orch.start_run(orch.create_load_test(body(), actor=ACTOR).id, actor=ACTOR)
    provider.made["gone-run"] = lm.ClusterHandle("http://x", 1, {"run": "gone-run"})
    orch.reconcile()
    assert provider.released == ["gone-run"]
    assert set(provider.made) == {run.id}


def test_a_start_interrupted_before_its_cluster_was_recorded_fails_and_is_swept(
    orch: lm.Orchestrator, provider: RecordingProvider
) -> None:
    test = orch.create_load_test(body(), actor=ACTOR)

    def crash(step: str) -> None:
        if step == "cluster-made":
            raise SystemExit("host died")

    orch._lifecycle._checkpoint = crash
    with pytest.raises(SystemExit):
        orch.start_run(test.id, actor=ACTOR)
    # The crashed start made the cluster; the `except BaseException` path failed
    # the run and released it, as a host that survives the error would.
    (run,) = orch.list_runs()
    assert run.status is lm.RunStatus.FAILED
    assert provider.released == [run.id]
