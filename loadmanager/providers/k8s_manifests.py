"""The Kubernetes objects of one run's cluster, from one pure function.

:func:`manifests` turns a :class:`~loadmanager.provisioning.ProvisionRequest` and
:class:`KubernetesSettings` into plain dicts, in the order they are created: the
tenant's Namespace (when one namespace per tenant is configured), a ConfigMap
with the locustfile content, the master Pod and its Service, and a Deployment of
workers. Nothing here talks to a cluster, so the output can be reviewed, kept
as golden files, and validated offline against Kubernetes' own schemas
(``kubernetes-validate``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import attrs

from ..locust.local import PLUGIN
from ..provisioning import ProvisionRequest

__all__ = [
    "LOCUST_VERSION",
    "LABEL_PREFIX",
    "KubernetesSettings",
    "dns_name",
    "label_value",
    "manifests",
    "master_service",
    "namespace_for",
    "run_selector",
]

LOCUST_VERSION = "2.47.0"
"""The Locust release the library is tested with; the image tag is pinned to it."""

LABEL_PREFIX = "loadmanager.io"
WEB_PORT = 8089
MASTER_PORT = 5557
_MOUNT = "/mnt/locust"


def dns_name(value: str, *, limit: int = 63) -> str:
    """``value`` as a DNS-1123 label: lowercase alphanumerics and ``-``, at most ``limit``.

    A value that had to change (case, characters, length) gets a short hash of
    the original, so two different ids never map to one name.
    """
    name = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    if name == value and len(name) <= limit:
        return name
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].strip('-')}-{digest}".strip("-")


def label_value(value: str) -> str:
    """``value`` as a label value (63 characters, alphanumeric at both ends)."""
    if re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]", value):
        return value
    return dns_name(value)


@attrs.frozen
class KubernetesSettings:
    """How a run's cluster is laid out on Kubernetes.

    Attributes:
        namespace: Where clusters go when there is no namespace per tenant.
        namespace_per_tenant: Put each tenant's clusters in a namespace of its
            own, named ``namespace_prefix`` + the tenant id (created if absent,
            never deleted).
        namespace_prefix: The prefix of per-tenant namespaces.
        image: The Locust image; pinned to the tested Locust release.
        master_resources: ``requests`` and ``limits`` of the master container.
        worker_resources: ``requests`` and ``limits`` of each worker container.
        service_account: The pods' service account (``None``: the namespace's default).
        extra_labels: Labels added to every object.
    """

    namespace: str = "loadmanager"
    namespace_per_tenant: bool = False
    namespace_prefix: str = "lm-"
    image: str = f"locustio/locust:{LOCUST_VERSION}"
    master_resources: dict[str, dict[str, str]] = attrs.field(
        factory=lambda: {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        }
    )
    worker_resources: dict[str, dict[str, str]] = attrs.field(
        factory=lambda: {
            "requests": {"cpu": "500m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        }
    )
    service_account: str | None = None
    extra_labels: dict[str, str] = attrs.field(factory=dict)


def namespace_for(tenant_id: str, settings: KubernetesSettings) -> str:
    """The namespace a tenant's clusters go to."""
    if not settings.namespace_per_tenant:
        return settings.namespace
    return dns_name(settings.namespace_prefix + tenant_id)


def run_selector(run_id: str) -> str:
    """The label selector of every object made for a run."""
    return f"{LABEL_PREFIX}/run-id={label_value(run_id)}"


def master_service(run_id: str) -> str:
    """The name of the run's master Service (and of the master Pod)."""
    return dns_name(f"lm-{run_id}-master", limit=63)


def _labels(
    request: ProvisionRequest, settings: KubernetesSettings, component: str
) -> dict[str, str]:
    return {
        **settings.extra_labels,
        "app.kubernetes.io/name": "locust",
        "app.kubernetes.io/managed-by": "loadmanager",
        "app.kubernetes.io/component": component,
        f"{LABEL_PREFIX}/run-id": label_value(request.run_id),
        f"{LABEL_PREFIX}/load-test-id": label_value(request.load_test_id),
        f"{LABEL_PREFIX}/tenant-id": label_value(request.tenant_id),
    }


def _container(
    name: str, image: str, args: list[str], resources: dict[str, dict[str, str]], ports: list[int]
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "args": args,
        "ports": [{"containerPort": p} for p in ports],
        "resources": resources,
        "volumeMounts": [{"name": "locustfile", "mountPath": _MOUNT, "readOnly": True}],
        # The image's user is named (``USER locust``, uid 1000); runAsNonRoot
        # alone cannot verify a named user, so the uid is given.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 1000,
        },
    }


def _pod_spec(
    settings: KubernetesSettings, configmap: str, container: dict[str, Any], restart: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": restart,
        "containers": [container],
        "volumes": [{"name": "locustfile", "configMap": {"name": configmap}}],
    }
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    return spec


def manifests(request: ProvisionRequest, settings: KubernetesSettings) -> list[dict[str, Any]]:
    """Every object of the run's cluster, in creation order. Pure: no I/O.

    The locustfile goes in a ConfigMap as ``locustfile.py`` (the content that
    resolved at the start), with loadmanager's Locust plugin beside it; its
    SHA-256 is an annotation on every object.
    """
    ns = namespace_for(request.tenant_id, settings)
    base = dns_name(f"lm-{request.run_id}", limit=50)
    configmap, service, workers = (
        f"{base}-locustfile",
        master_service(request.run_id),
        f"{base}-worker",
    )
    annotations = {  # the exact ids: a label value may have been shortened
        f"{LABEL_PREFIX}/run-id": request.run_id,
        f"{LABEL_PREFIX}/locustfile-sha256": request.locustfile.sha256,
    }
    # loadmanager's plugin rides along, so the master serves exact histograms.
    locustfile = f"{_MOUNT}/locustfile.py,{_MOUNT}/{PLUGIN.name}"

    def meta(name: str, component: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": ns,
            "labels": _labels(request, settings, component),
            "annotations": dict(annotations),
        }

    master_labels = _labels(request, settings, "master")
    worker_labels = _labels(request, settings, "worker")
    master_args = [
        "-f", locustfile, "--master", "--class-picker",
        "--web-port", str(WEB_PORT), "--master-bind-port", str(MASTER_PORT),
        "--host", request.target_url,
    ]  # fmt: skip
    worker_args = [
        "-f", locustfile, "--worker",
        "--master-host", service, "--master-port", str(MASTER_PORT),
    ]  # fmt: skip
    objects: list[dict[str, Any]] = []
    if settings.namespace_per_tenant:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "labels": {
                        "app.kubernetes.io/managed-by": "loadmanager",
                        f"{LABEL_PREFIX}/tenant-id": label_value(request.tenant_id),
                    },
                },
            }
        )
    objects += [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(configmap, "locustfile"),
            "data": {
                "locustfile.py": request.locustfile.content,
                PLUGIN.name: PLUGIN.read_text(encoding="utf-8"),
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta(service, "master"),
            "spec": _pod_spec(
                settings,
                configmap,
                _container(
                    "master",
                    settings.image,
                    master_args,
                    settings.master_resources,
                    [WEB_PORT, MASTER_PORT],
                ),
                "Never",
            ),
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(service, "master"),
            "spec": {
                "selector": master_labels,
                "ports": [
                    {"name": "web", "port": WEB_PORT, "targetPort": WEB_PORT},
                    {"name": "master", "port": MASTER_PORT, "targetPort": MASTER_PORT},
                ],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(workers, "worker"),
            "spec": {
                "replicas": request.workers,
                "selector": {"matchLabels": worker_labels},
                "template": {
                    "metadata": {"labels": worker_labels, "annotations": dict(annotations)},
                    "spec": _pod_spec(
                        settings,
                        configmap,
                        _container(
                            "worker", settings.image, worker_args, settings.worker_resources, []
                        ),
                        "Always",
                    ),
                },
            },
        },
    ]
    return objects
