"""The Kubernetes manifests of a run's cluster, checked without a cluster.

The manifests come from one pure function. They are validated offline against
Kubernetes' own OpenAPI schemas (``kubernetes-validate``, strict: unknown fields
are errors) for three Kubernetes releases, compared with a golden file for a
typical run, and checked for the labels that release and the orphan sweep rely
on. The live test creates a real cluster's objects only when ``KUBECONFIG`` is
set; no Kubernetes cluster exists on CI (docs/clusters.md says what that leaves
unexercised).
"""

from __future__ import annotations

import copy
import importlib.metadata
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.locust.local import PLUGIN
from loadmanager.providers.k8s_manifests import (
    LABEL_PREFIX,
    LOCUST_VERSION,
    KubernetesSettings,
    dns_name,
    label_value,
    manifests,
    master_service,
)

K8S_VERSIONS = ("1.35.0", "1.36.0", "1.37.0")
GOLDEN = Path(__file__).parent / "golden" / "k8s-typical-run.yaml"
CODE = (
    "from locust import HttpUser, task\n\n\nclass Shop(HttpUser):\n"
    "    @task\n    def home(self):\n        self.client.get('/')\n"
)
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def request(**changes: Any) -> lm.ProvisionRequest:
    fields: dict[str, Any] = {
        "run_id": "3f2a9c1d7e5b4a60b8c2d4e6f8a0b1c2",
        "load_test_id": "9d8c7b6a5f4e3d2c1b0a998877665544",
        "tenant_id": "tenant-a",
        "locustfile": lm.ResolvedLocustfile("shop.py", CODE, 3, "stored"),
        "workers": 4,
        "target_url": "http://shop.staging.svc:8080",
        **changes,
    }
    return lm.ProvisionRequest(**fields)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("per_tenant", [False, True], ids=["one-namespace", "per-tenant"])
def test_every_object_validates_against_kubernetes_schemas(version: str, per_tenant: bool) -> None:
    objects = manifests(request(), KubernetesSettings(namespace_per_tenant=per_tenant))
    assert [o["kind"] for o in objects] == (["Namespace"] if per_tenant else []) + [
        "ConfigMap", "Pod", "Service", "Deployment",
    ]  # fmt: skip
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    # The check above can fail: a wrong type and an unknown field are refused.
    deployment = copy.deepcopy(manifests(request(), KubernetesSettings())[-1])
    deployment["spec"]["replicas"] = "four"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    pod = copy.deepcopy(manifests(request(), KubernetesSettings())[1])
    pod["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSIONS[-1], strict=True)


def test_a_typical_run_matches_the_golden_file() -> None:
    objects = manifests(request(), KubernetesSettings(namespace_per_tenant=True))
    # The plugin's own code is checked against its file below; here it is a
    # placeholder, so that editing the plugin does not rewrite the golden file.
    data = objects[1]["data"]
    assert data[PLUGIN.name] == PLUGIN.read_text()
    data[PLUGIN.name] = f"<the content of {PLUGIN.name}>"
    rendered = yaml.safe_dump_all(objects, sort_keys=True)
    if os.environ.get("LM_UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered)
    assert rendered == GOLDEN.read_text(), "rerun with LM_UPDATE_GOLDEN=1 after a reviewed change"


def test_labels_tie_every_object_to_its_run_test_and_tenant() -> None:
    req = request()
    objects = manifests(req, KubernetesSettings(extra_labels={"team": "web"}))
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels[f"{LABEL_PREFIX}/run-id"] == req.run_id
        assert labels[f"{LABEL_PREFIX}/load-test-id"] == req.load_test_id
        assert labels[f"{LABEL_PREFIX}/tenant-id"] == req.tenant_id
        assert labels["app.kubernetes.io/managed-by"] == "loadmanager"
        assert labels["team"] == "web"
        assert obj["metadata"]["annotations"][f"{LABEL_PREFIX}/run-id"] == req.run_id
        assert (
            obj["metadata"]["annotations"][f"{LABEL_PREFIX}/locustfile-sha256"]
            == req.locustfile.sha256
        )
        assert obj["metadata"]["namespace"] == "loadmanager"
    configmap, pod, service, deployment = objects
    assert configmap["data"]["locustfile.py"] == CODE
    assert configmap["data"]["loadmanager_plugin.py"] == PLUGIN.read_text()
    assert pod["spec"]["containers"][0]["args"][1].endswith("/loadmanager_plugin.py")
    assert pod["metadata"]["name"] == service["metadata"]["name"] == master_service(req.run_id)
    assert set(service["spec"]["selector"].items()) <= set(pod["metadata"]["labels"].items())
    assert deployment["spec"]["replicas"] == 4
    template = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"] == template["metadata"]["labels"]
    (worker,) = template["spec"]["containers"]
    assert worker["args"][worker["args"].index("--master-host") + 1] == service["metadata"]["name"]
    assert pod["spec"]["containers"][0]["image"] == f"locustio/locust:{LOCUST_VERSION}"
    assert worker["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}


def test_the_image_is_the_locust_release_tested_here() -> None:
    assert importlib.metadata.version("locust") == LOCUST_VERSION


def test_each_tenant_gets_a_namespace_of_its_own_when_asked() -> None:
    settings = KubernetesSettings(namespace_per_tenant=True)
    a = manifests(request(tenant_id="team.A_1"), settings)
    b = manifests(request(tenant_id="team-b"), settings)
    assert a[0]["metadata"]["name"] != b[0]["metadata"]["name"]
    assert DNS_LABEL.fullmatch(a[0]["metadata"]["name"])
    assert {o["metadata"].get("namespace") for o in a[1:]} == {a[0]["metadata"]["name"]}


@given(st.text(alphabet="aAzZ09-_.", min_size=1, max_size=80))
def test_names_and_label_values_are_always_valid_and_never_collide(value: str) -> None:
    name = dns_name(value)
    assert DNS_LABEL.fullmatch(name), name
    assert len(name) <= 63
    label = label_value(value)
    assert re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]", label), label
    if name == value:
        assert DNS_LABEL.fullmatch(value)
    other = value + "x" if not value.endswith("x") else value[:-1]
    if other:
        assert dns_name(other) != name or other.lower() == value.lower()


@pytest.mark.skipif(
    not os.environ.get("KUBECONFIG"),
    reason="needs a Kubernetes cluster: set KUBECONFIG (see docs/clusters.md, kind or minikube)",
)
def test_live_a_run_on_kubernetes_is_made_runs_and_leaves_no_object() -> None:
    from kubernetes import client, config

    proxy = os.environ.get("LM_K8S_PROXY", "http://127.0.0.1:8001")  # `kubectl proxy`
    target = os.environ.get("LM_K8S_TARGET", "http://lm-target.default.svc")
    provider = lm.KubernetesProvider(
        KubernetesSettings(namespace=os.environ.get("LM_K8S_NAMESPACE", "default")),
        master_url=lambda ns, svc: f"{proxy}/api/v1/namespaces/{ns}/services/{svc}:web/proxy",
        startup_timeout=600,
    )
    with lm.connect("memory://") as storage, lm.Orchestrator(
        storage, lm.ClusterRegistry({"k8s": provider}), poll_interval=2.0
    ) as orch:  # fmt: skip
        orch.put_locustfile("shop.py", CODE, tenant_id="tenant-1", actor="ci")
        test = orch.create_load_test(
            {"name": "live", "tenantId": "tenant-1", "envId": "dev", "locustClusterId": "k8s",
             "targetUrl": target, "locustfile": "shop.py", "defaultUsers": 2,
             "defaultSpawnRate": 2, "defaultRunTime": "20s"},
            actor="ci",
        )  # fmt: skip
        run = orch.start_run(test.id, {"workers": 1}, actor="ci")
        ended = orch.wait(run.id, timeout=600)
    assert ended.status is lm.RunStatus.FINISHED, ended.failure_reason
    config.load_kube_config()
    selector = f"{LABEL_PREFIX}/run-id={run.id}"
    pods = client.CoreV1Api().list_pod_for_all_namespaces(label_selector=selector).items
    assert all(p.metadata.deletion_timestamp for p in pods)  # none, or all going
    assert provider.held() == []
