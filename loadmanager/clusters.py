"""Which Locust master serves each ``locustClusterId``, and how to reach it.

An entry is a static master (:class:`ClusterConfig`, started elsewhere) or a
:class:`~loadmanager.provisioning.ClusterProvider` that makes a cluster per run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._constraints import checked_tenants
from ._suggest import did_you_mean
from .errors import PermissionDeniedError, ValidationError
from .lifecycle import LocustMaster
from .locust.client import LocustClient, default_retrying
from .locustfiles import ResolvedLocustfile
from .models import ClusterHandle, LoadTestRun
from .provisioning import ClusterProvider, ProvisionRequest

log = logging.getLogger("loadmanager")

__all__ = [
    "ClientFactory",
    "ClientPool",
    "ClusterConfig",
    "ClusterRegistry",
    "default_client_factory",
]


def _master_url(_instance: object, _attribute: object, url: Any) -> None:
    """Refuse a master address httpx could not reach, when it is registered."""
    if not isinstance(url, str):
        raise ValidationError.single("url", f"must be a string, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unbalanced IPv6 bracket, for one
        raise ValidationError.single("url", f"is not a URL: {exc} (got {url!r})") from None
    if parts.scheme in ("http", "https") and parts.hostname:
        return
    hint = ""
    if "://" not in url and url.strip():
        hint = f"; did you mean 'http://{url.strip()}'?"
    raise ValidationError.single(
        "url", f"a Locust master URL is http://host:port or https://... (got {url!r}){hint}"
    )


def _names(value: object) -> frozenset[str] | None:
    try:
        return checked_tenants(value)
    except ValidationError:
        raise ValidationError.single(
            "locustfiles", "must be a collection of locustfile names, not one string"
        ) from None


@attrs.frozen
class ClusterConfig:
    """How to reach one Locust master.

    Attributes:
        url: The master's web UI address, with an optional base path.
        auth: Any httpx auth, such as ``("user", "password")``.
        headers: Extra headers on every request (``{"Authorization": "Bearer …"}``).
        verify: TLS verification as httpx takes it (bool, CA bundle path, SSLContext).
        timeout: Seconds for each request.
        tenants: The tenants whose load tests may use this cluster; ``None``
            (the default) means every tenant. A collection of ids, never one
            bare string.
        locustfiles: The locustfile names the master was started with; a test
            naming another is refused at create and at start, before anything
            is sent to Locust. ``None`` (the default) declares nothing and
            checks nothing: say it, so that what runs is what the test names.
    """

    url: str = attrs.field(validator=_master_url)
    auth: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    verify: Any = True
    timeout: float = 10.0
    tenants: frozenset[str] | None = attrs.field(default=None, converter=checked_tenants)
    locustfiles: frozenset[str] | None = attrs.field(default=None, converter=_names)

    def check_locustfile(self, cluster_id: str, name: str) -> None:
        """Refuse a locustfile this master does not serve (when it declares them).

        Raises:
            ValidationError: at ``locustfile``, naming the ones it serves.
        """
        if self.locustfiles is not None and name not in self.locustfiles:
            served = ", ".join(sorted(self.locustfiles)) or "none"
            raise ValidationError.single(
                "locustfile",
                f"the master of cluster {cluster_id!r} serves {served}, not {name!r}",
            )


Entry = ClusterConfig | ClusterProvider
"""A registry entry: a static master, or a provider of per-run clusters."""

ClientFactory = Callable[[ClusterConfig], LocustMaster]
"""Builds the client of a cluster's master (a LocustClient by default); inject
one to add retries or tracing, or a fake master to inject faults in tests."""


def default_client_factory(config: ClusterConfig) -> LocustClient:
    """A LocustClient with the cluster's settings and the default retry policy."""
    return LocustClient(
        config.url,
        auth=config.auth,
        headers=config.headers,
        verify=config.verify,
        timeout=config.timeout,
        retrying=default_retrying,
    )


class ClusterRegistry:
    """Maps ``locustClusterId`` to a :class:`ClusterConfig`; safe to change while running.

    Args:
        clusters: Initial entries; a plain URL string stands for
            ``ClusterConfig(url)``, and a provider (``LocalProvider()``, a
            ``KubernetesProvider``) makes a cluster per run.
    """

    def __init__(self, clusters: Mapping[str, Entry | str] | None = None) -> None:
        self._lock = threading.Lock()
        self._clusters: dict[str, Entry] = {}
        for cluster_id, config in (clusters or {}).items():
            self.register(cluster_id, config)

    def register(self, cluster_id: str, config: Entry | str) -> None:
        """Add or replace a cluster (a URL, a ClusterConfig, or a provider)."""
        if isinstance(config, str):
            config = ClusterConfig(config)
        if not isinstance(config, (ClusterConfig, ClusterProvider)):
            raise TypeError(f"not a ClusterConfig, URL or ClusterProvider: {config!r}")
        with self._lock:
            self._clusters[cluster_id] = config

    def remove(self, cluster_id: str) -> None:
        """Forget a cluster: this replica stops monitoring its runs.

        The runs stay as they are, for a replica that knows the cluster (see
        ``Orchestrator.unmonitored_runs``); they are not failed.
        """
        with self._lock:
            self._clusters.pop(cluster_id, None)

    def get(self, cluster_id: str, *, tenant_id: str | None = None) -> Entry:
        """The cluster's settings, or its provider.

        Raises:
            ValidationError: at ``locustClusterId`` when no such cluster is
                configured. It suggests a close id only among clusters open to
                ``tenant_id`` (to every tenant when it is ``None``), so the
                message names no cluster reserved for someone else.
        """
        with self._lock:
            config = self._clusters.get(cluster_id)
            # Only a miss needs the names (every poll of every run gets here).
            open_to = [
                name
                for name, entry in (() if config is not None else self._clusters.items())
                if entry.tenants is None or (tenant_id is not None and tenant_id in entry.tenants)
            ]
        if config is None:
            raise ValidationError.single(
                "locustClusterId",
                f"{cluster_id!r} is not a configured Locust cluster"
                + did_you_mean(str(cluster_id), open_to),
            )
        return config

    def provider(self, cluster_id: str) -> ClusterProvider | None:
        """The cluster's provider; ``None`` for a static master (ValidationError if unknown)."""
        entry = self.get(cluster_id)
        return None if isinstance(entry, ClusterConfig) else entry

    def check_tenant(self, cluster_id: str, tenant_id: str) -> Entry:
        """The cluster's settings, if ``tenant_id``'s load tests may use it.

        Raises:
            ValidationError: no such cluster.
            PermissionDeniedError: the cluster is reserved for other tenants.
        """
        config = self.get(cluster_id, tenant_id=tenant_id)
        if config.tenants is not None and tenant_id not in config.tenants:
            raise PermissionDeniedError(
                tenant_id, f"tenant {tenant_id!r} may not use cluster {cluster_id!r}"
            )
        return config

    def release_orphans(self, active: set[str]) -> list[str]:
        """Release every provider's cluster whose run is not in ``active``; their run ids."""
        released = []
        for cluster_id in self:
            provider = self.provider(cluster_id)
            if provider is None:
                continue
            for held in provider.held():
                if held.run_id not in active:
                    log.warning("releasing the cluster of run %s: it is not active", held.run_id)
                    provider.release(held.handle)
                    released.append(held.run_id)
        return released

    def __contains__(self, cluster_id: object) -> bool:
        with self._lock:
            return cluster_id in self._clusters

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(sorted(self._clusters))

    def __len__(self) -> int:
        with self._lock:
            return len(self._clusters)

    def __repr__(self) -> str:
        return f"ClusterRegistry({sorted(self)!r})"


class ClientPool:
    """The masters of the runs on this replica's clusters, and their provisioning.

    It is the :class:`~loadmanager.lifecycle.Masters` the run lifecycle talks to:
    one client per static cluster, one per provisioned run (built from the
    address recorded on the run), built on first use and closed together.
    """

    def __init__(self, clusters: ClusterRegistry, factory: ClientFactory) -> None:
        self._clusters = clusters
        self._factory = factory
        self._clients: dict[str, tuple[ClusterConfig, LocustMaster]] = {}
        self._lock = threading.Lock()

    def master(self, run: LoadTestRun) -> LocustMaster:
        """The client of the run's master (ValidationError if its cluster is unknown).

        Raises:
            ValidationError: the cluster is unknown here, or the run's cluster
                has not been made (yet).
        """
        entry = self._clusters.get(run.locust_cluster_id)
        if isinstance(entry, ClusterConfig):
            return self._client(run.locust_cluster_id, entry)
        if run.cluster is None:
            raise ValidationError.single("cluster", f"run {run.id} has no cluster made for it")
        return self._client(f"run:{run.id}", ClusterConfig(run.cluster.master_url))

    def _client(self, key: str, config: ClusterConfig) -> LocustMaster:
        with self._lock:
            cached = self._clients.get(key)
            if cached is not None and cached[0] == config:
                return cached[1]
            if cached is not None:  # the registry entry changed: rebuild
                _close(cached[1])
            client = self._factory(config)
            self._clients[key] = (config, client)
            return client

    def provision(
        self, run: LoadTestRun, locustfile: ResolvedLocustfile | None
    ) -> ClusterHandle | None:
        """Make the run's cluster, if its entry is a provider; ``None`` for a static master."""
        provider = self._clusters.provider(run.locust_cluster_id)
        if provider is None:
            return None
        if locustfile is None or run.parameters.workers is None:
            raise ValidationError.single("locustfile", "a provisioned cluster needs its content")
        request = ProvisionRequest(
            run_id=run.id,
            load_test_id=run.load_test_id,
            tenant_id=run.tenant_id,
            locustfile=locustfile,
            workers=run.parameters.workers,
            target_url=run.parameters.target_url,
        )
        return provider.provision(request)

    def release(self, run: LoadTestRun) -> None:
        """Take the run's provisioned cluster away (best effort: reconcile finds what is left)."""
        with self._lock:
            cached = self._clients.pop(f"run:{run.id}", None)
        if cached is not None:
            _close(cached[1])
        if run.cluster is None or run.locust_cluster_id not in self._clusters:
            return
        provider = self._clusters.provider(run.locust_cluster_id)
        if provider is None:
            return
        try:
            provider.release(run.cluster)
        except Exception:
            log.exception("run %s: could not release its cluster", run.id)

    def log_tail(self, run: LoadTestRun) -> str:
        """The last lines of the run's provisioned master, if any."""
        if run.cluster is None or run.locust_cluster_id not in self._clusters:
            return ""
        provider = self._clusters.provider(run.locust_cluster_id)
        return "" if provider is None else provider.log_tail(run.cluster)

    def __contains__(self, cluster_id: object) -> bool:
        return cluster_id in self._clusters

    def close(self) -> None:
        """Close every client."""
        with self._lock:
            for _, client in self._clients.values():
                _close(client)
            self._clients.clear()


def _close(client: object) -> None:
    close = getattr(client, "close", None)  # a fake master may have nothing to close
    if callable(close):
        close()
