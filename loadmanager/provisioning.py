"""The ClusterProvider port: make a Locust cluster for one run, and take it away.

A registry entry is either a static master (:class:`~loadmanager.ClusterConfig`,
started elsewhere) or a provider that makes a master and workers per run from
the run's locustfile content: :class:`~loadmanager.LocalProvider` (processes on
this host) or :class:`~loadmanager.KubernetesProvider`. The run lifecycle asks
the provider for a cluster before it asks Locust to swarm, records the handle on
the run, and releases the cluster when the run ends; ``reconcile()`` releases
clusters whose run has ended or is unknown (a host that died mid-way).
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import attrs

from .errors import ProvisioningError
from .locustfiles import ResolvedLocustfile
from .models import ClusterHandle

__all__ = [
    "ClusterProvider",
    "HeldCluster",
    "ProvisionRequest",
    "ProvisioningError",
    "workers_for",
]


@attrs.frozen
class ProvisionRequest:
    """What a provider needs to make one run's cluster.

    Attributes:
        run_id: The run; every process or object made carries it.
        load_test_id: Its load test (a label, for people).
        tenant_id: Its tenant (a label, and the namespace where configured).
        locustfile: The content to run, as it resolved at the start.
        workers: How many workers to start.
        target_url: The default ``--host``.
    """

    run_id: str
    load_test_id: str
    tenant_id: str
    locustfile: ResolvedLocustfile
    workers: int
    target_url: str


@attrs.frozen
class HeldCluster:
    """A cluster a provider holds, and the run it was made for."""

    run_id: str
    handle: ClusterHandle


def workers_for(users: int, requested: int | None, *, users_per_worker: int, most: int) -> int:
    """A run's worker count: the override, else one worker per ``users_per_worker`` users.

    Never fewer than 1 nor more than ``most``.
    """
    wanted = requested if requested is not None else math.ceil(users / users_per_worker)
    return max(1, min(most, wanted))


@runtime_checkable
class ClusterProvider(Protocol):
    """Makes and releases per-run Locust clusters (local processes, Kubernetes)."""

    @property
    def tenants(self) -> frozenset[str] | None:
        """The tenants whose tests may use this provider; ``None`` means all."""
        ...

    def workers_for(self, users: int, requested: int | None) -> int:
        """How many workers a run of ``users`` users gets (``requested`` overrides)."""
        ...

    def provision(self, request: ProvisionRequest) -> ClusterHandle:
        """Make the cluster and return once every worker is connected.

        Raises:
            ProvisioningError: it could not be made; nothing of it is left.
        """
        ...

    def release(self, handle: ClusterHandle) -> None:
        """Take the cluster away; releasing one already gone does nothing."""
        ...

    def held(self) -> list[HeldCluster]:
        """Every cluster this provider holds now, with its run (to find orphans)."""
        ...

    def log_tail(self, handle: ClusterHandle) -> str:
        """The last lines the cluster's master wrote, for a failed run's reason."""
        ...
