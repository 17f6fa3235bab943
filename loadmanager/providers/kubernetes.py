"""KubernetesProvider: a Locust master Pod, Service and worker Deployment per run.

The objects come from :func:`~loadmanager.providers.k8s_manifests.manifests`
and are created with the official Kubernetes Python client (the ``kubernetes``
extra): it is maintained by the Kubernetes project, takes the manifests as plain
dicts, and reads kubeconfig or the in-cluster service account the way kubectl
does. Every object carries the run's labels, so release and the orphan sweep
are label-selector deletes and lists; the master is reached through its Service
(in-cluster DNS by default, or ``master_url`` for a host outside the cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._constraints import checked_tenants
from ..errors import ProvisioningError
from ..locust.ready import wait_for_workers
from ..models import ClusterHandle
from ..provisioning import HeldCluster, ProvisionRequest, workers_for
from .k8s_manifests import (
    LABEL_PREFIX,
    WEB_PORT,
    KubernetesSettings,
    manifests,
    master_service,
    namespace_for,
    run_selector,
)

__all__ = ["KubernetesProvider"]

_MANAGED = "app.kubernetes.io/managed-by=loadmanager"


def _in_cluster_url(namespace: str, service: str) -> str:
    return f"http://{service}.{namespace}.svc:{WEB_PORT}"


class KubernetesProvider:
    """Provisions a cluster per run on Kubernetes.

    Args:
        settings: Namespaces, image, resources and labels.
        api_client: A ``kubernetes.client.ApiClient``; by default one from
            ``KUBECONFIG`` (or ``~/.kube/config``), else the in-cluster config.
        users_per_worker: Users per worker when a run does not say ``workers``.
        max_workers: The most workers one run gets.
        startup_timeout: Seconds for the master to answer with every worker connected.
        master_url: Builds the master's address from (namespace, service);
            in-cluster DNS by default.
        tenants: The tenants whose tests may use it; ``None`` means all.
    """

    def __init__(
        self,
        settings: KubernetesSettings | None = None,
        *,
        api_client: Any = None,
        users_per_worker: int = 50,
        max_workers: int = 50,
        startup_timeout: float = 300.0,
        master_url: Callable[[str, str], str] = _in_cluster_url,
        tenants: frozenset[str] | None = None,
    ) -> None:
        self.settings = settings or KubernetesSettings()
        self.users_per_worker = users_per_worker
        self.max_workers = max_workers
        self.startup_timeout = startup_timeout
        self.master_url = master_url
        self.tenants = checked_tenants(tenants)
        self._api_client = api_client

    def _api(self) -> Any:
        if self._api_client is None:
            from kubernetes import client, config  # the `kubernetes` extra

            try:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            self._api_client = client.ApiClient()
        return self._api_client

    def workers_for(self, users: int, requested: int | None) -> int:
        """The override, else one worker per ``users_per_worker`` users, up to ``max_workers``."""
        return workers_for(
            users, requested, users_per_worker=self.users_per_worker, most=self.max_workers
        )

    def provision(self, request: ProvisionRequest) -> ClusterHandle:
        """Create the run's objects, then wait until the master has every worker."""
        from kubernetes import utils
        from kubernetes.client.exceptions import ApiException

        api = self._api()
        namespace = namespace_for(request.tenant_id, self.settings)
        handle = ClusterHandle(
            master_url=self.master_url(namespace, master_service(request.run_id)),
            workers=request.workers,
            ref={"namespace": namespace, "run": request.run_id},
        )
        try:
            for obj in manifests(request, self.settings):
                try:
                    utils.create_from_dict(api, obj, namespace=namespace)  # type: ignore[no-untyped-call]
                except utils.FailToCreateError as exc:
                    if obj["kind"] == "Namespace" and all(
                        getattr(e, "status", None) == 409 for e in exc.api_exceptions
                    ):
                        continue  # the tenant's namespace exists already
                    raise
            self._wait_ready(handle)
        except (ApiException, utils.FailToCreateError, ProvisioningError) as exc:
            tail = self.log_tail(handle)
            self.release(handle)
            if isinstance(exc, ProvisioningError):
                raise
            raise ProvisioningError(f"Kubernetes refused the run's cluster: {exc}", tail) from None
        return handle

    def _wait_ready(self, handle: ClusterHandle) -> None:
        last = wait_for_workers(
            handle.master_url, handle.workers, self.startup_timeout, interval=2.0
        )
        if last is not None:
            raise ProvisioningError(
                f"the Kubernetes cluster was not ready within {self.startup_timeout:g} s ({last})",
                self.log_tail(handle),
            )

    def release(self, handle: ClusterHandle) -> None:
        """Delete every object labelled with the run (the tenant's namespace stays)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = self._api()
        namespace = handle.ref["namespace"]
        selector = run_selector(handle.ref["run"])
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        for delete in (
            apps.delete_collection_namespaced_deployment,
            core.delete_collection_namespaced_pod,
            core.delete_collection_namespaced_config_map,
        ):
            try:
                delete(namespace, label_selector=selector)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        # Services have no delete-collection call.
        for service in core.list_namespaced_service(namespace, label_selector=selector).items:
            if service.metadata is None or not service.metadata.name:
                continue
            try:
                core.delete_namespaced_service(service.metadata.name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def held(self) -> list[HeldCluster]:
        """Every run's cluster this provider made, found by its labels in every namespace."""
        from kubernetes import client

        core = client.CoreV1Api(self._api())
        found: dict[str, HeldCluster] = {}
        for cm in core.list_config_map_for_all_namespaces(label_selector=_MANAGED).items:
            meta = cm.metadata
            if meta is None or not meta.namespace:
                continue
            run_id = (meta.annotations or {}).get(f"{LABEL_PREFIX}/run-id")
            if run_id is None or run_id in found:
                continue
            namespace = str(meta.namespace)
            handle = ClusterHandle(
                master_url=self.master_url(namespace, master_service(run_id)),
                workers=1,
                ref={"namespace": namespace, "run": run_id},
            )
            found[run_id] = HeldCluster(run_id, handle)
        return list(found.values())

    def log_tail(self, handle: ClusterHandle, lines: int = 40) -> str:
        """The last lines of the master Pod's log, if it can be read."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            text = client.CoreV1Api(self._api()).read_namespaced_pod_log(
                master_service(handle.ref["run"]), handle.ref["namespace"], tail_lines=lines
            )
        except (ApiException, KeyError, OSError):
            return ""
        return str(text)

    def __repr__(self) -> str:
        return f"KubernetesProvider(namespace={self.settings.namespace!r})"
