"""Which Locust master serves each ``locustClusterId``, and how to reach it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from .errors import ValidationError
from .locust.client import LocustClient, default_retrying

__all__ = ["ClientFactory", "ClusterConfig", "ClusterRegistry", "default_client_factory"]


@attrs.frozen
class ClusterConfig:
    """How to reach one Locust master.

    Attributes:
        url: The master's web UI address, with an optional base path.
        auth: Any httpx auth, such as ``("user", "password")``.
        headers: Extra headers on every request (``{"Authorization": "Bearer …"}``).
        verify: TLS verification as httpx takes it (bool, CA bundle path, SSLContext).
        timeout: Seconds for each request.
    """

    url: str
    auth: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    verify: Any = True
    timeout: float = 10.0


ClientFactory = Callable[[ClusterConfig], LocustClient]
"""Builds the LocustClient for a cluster; inject one to add retries, tracing..."""


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
        """Forget a cluster (its runs fail at their next poll)."""
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
