"""Which Locust master serves each ``locustClusterId``, and how to reach it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from ._constraints import checked_tenants
from .errors import PermissionDeniedError, ValidationError
from .lifecycle import LocustMaster
from .locust.client import LocustClient, default_retrying

__all__ = [
    "ClientFactory",
    "ClientPool",
    "ClusterConfig",
    "ClusterRegistry",
    "default_client_factory",
]


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
    """

    url: str
    auth: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    verify: Any = True
    timeout: float = 10.0
    tenants: frozenset[str] | None = attrs.field(default=None, converter=checked_tenants)


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
        clusters: Initial entries; a plain URL string stands for ``ClusterConfig(url)``.
    """

    def __init__(self, clusters: Mapping[str, ClusterConfig | str] | None = None) -> None:
        self._lock = threading.Lock()
        self._clusters: dict[str, ClusterConfig] = {}
        for cluster_id, config in (clusters or {}).items():
            self.register(cluster_id, config)

    def register(self, cluster_id: str, config: ClusterConfig | str) -> None:
        """Add or replace a cluster."""
        if isinstance(config, str):
            config = ClusterConfig(config)
        with self._lock:
            self._clusters[cluster_id] = config

    def remove(self, cluster_id: str) -> None:
        """Forget a cluster: this replica stops monitoring its runs.

        The runs stay as they are, for a replica that knows the cluster (see
        ``Orchestrator.unmonitored_runs``); they are not failed.
        """
        with self._lock:
            self._clusters.pop(cluster_id, None)

    def get(self, cluster_id: str) -> ClusterConfig:
        """The cluster's settings.

        Raises:
            ValidationError: at ``locustClusterId`` when no such cluster is configured.
        """
        with self._lock:
            config = self._clusters.get(cluster_id)
        if config is None:
            raise ValidationError.single(
                "locustClusterId", f"{cluster_id!r} is not a configured Locust cluster"
            )
        return config

    def check_tenant(self, cluster_id: str, tenant_id: str) -> ClusterConfig:
        """The cluster's settings, if ``tenant_id``'s load tests may use it.

        Raises:
            ValidationError: no such cluster.
            PermissionDeniedError: the cluster is reserved for other tenants.
        """
        config = self.get(cluster_id)
        if config.tenants is not None and tenant_id not in config.tenants:
            raise PermissionDeniedError(
                tenant_id, f"tenant {tenant_id!r} may not use cluster {cluster_id!r}"
            )
        return config

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
    """One master client per known cluster, built on first use and closed together.

    It is the :class:`~loadmanager.lifecycle.Masters` the run lifecycle talks to;
    a cluster the registry does not know is not among them.
    """

    def __init__(self, clusters: ClusterRegistry, factory: ClientFactory) -> None:
        self._clusters = clusters
        self._factory = factory
        self._clients: dict[str, tuple[ClusterConfig, LocustMaster]] = {}
        self._lock = threading.Lock()

    def master(self, cluster_id: str) -> LocustMaster:
        """The client of a configured cluster (ValidationError if unknown)."""
        config = self._clusters.get(cluster_id)
        with self._lock:
            cached = self._clients.get(cluster_id)
            if cached is not None and cached[0] is config:
                return cached[1]
            if cached is not None:  # the registry entry changed: rebuild
                _close(cached[1])
            client = self._factory(config)
            self._clients[cluster_id] = (config, client)
            return client

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
