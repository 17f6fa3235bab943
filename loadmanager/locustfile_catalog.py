"""Stored locustfiles, and what a load test's ``locustfile`` name resolves to.

:class:`~loadmanager.Orchestrator` builds on it. A locustfile is code that runs
on the load generators, so storing one is a write for its tenant like any other,
and reading another tenant's answers NotFoundError.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from . import _constraints as c
from .catalog import Catalog, Tenants
from .clusters import ClusterConfig, ClusterRegistry
from .errors import NotFoundError, StaleVersionError, ValidationError
from .locustfiles import Locustfile, LocustfileSource, ResolvedLocustfile

__all__ = ["LocustfileCatalog"]


class LocustfileCatalog(Catalog):
    """Stored locustfiles (versioned, per tenant) and name resolution."""

    clusters: ClusterRegistry
    locustfile_sources: Sequence[LocustfileSource] = ()

    def put_locustfile(
        self, name: str, content: str, *, tenant_id: str, actor: str, tenants: Tenants = None
    ) -> Locustfile:
        """Store ``content`` as the next version of ``name`` for ``tenant_id``.

        Runs started later run it; runs started before keep the version they
        recorded.

        Raises:
            ValidationError: a bad name, tenant or content.
            PermissionDeniedError: ``tenant_id`` is not among ``tenants``.
        """
        self._check_open()
        actor = c.checked_actor(actor)
        self._check_writable(tenant_id, tenants)
        draft = Locustfile(name, tenant_id, content, created_at=self.clock.now(), created_by=actor)
        while True:  # compare-and-set on the version: a concurrent put makes the next one
            versions = self.storage.locustfiles.versions(tenant_id, name)
            try:
                return self.storage.locustfiles.add(
                    attrs.evolve(draft, version=(versions[-1] if versions else 0) + 1)
                )
            except StaleVersionError:
                continue

    def get_locustfile(
        self, name: str, *, tenant_id: str, version: int | None = None, tenants: Tenants = None
    ) -> Locustfile:
        """A stored version of ``name`` (the latest by default), or NotFoundError."""
        self._check_open()
        if not self._visible(tenant_id, tenants):
            raise NotFoundError("Locustfile", name)
        return self.storage.locustfiles.get(tenant_id, name, version)

    def list_locustfiles(self, *, tenant_id: str, tenants: Tenants = None) -> list[Locustfile]:
        """The latest version of each of the tenant's stored locustfiles, by name."""
        self._check_open()
        if not self._visible(tenant_id, tenants):
            return []
        return self.storage.locustfiles.find(tenant_id)

    def locustfile_versions(
        self, name: str, *, tenant_id: str, tenants: Tenants = None
    ) -> list[int]:
        """The stored versions of ``name``, oldest first."""
        self._check_open()
        if not self._visible(tenant_id, tenants):
            return []
        return self.storage.locustfiles.versions(tenant_id, name)

    def delete_locustfile(
        self, name: str, *, tenant_id: str, actor: str, tenants: Tenants = None
    ) -> int:
        """Delete every version of ``name``; how many there were.

        Runs keep the hash and version they recorded. A load test naming it no
        longer resolves unless a directory has the file.
        """
        self._check_open()
        c.checked_actor(actor)
        if not self._visible(tenant_id, tenants):
            raise NotFoundError("Locustfile", name)
        return self.storage.locustfiles.delete(tenant_id, name)

    def resolve_locustfile(self, name: str, tenant_id: str) -> ResolvedLocustfile | None:
        """What ``name`` runs for ``tenant_id``'s tests: stored content, else a directory's file."""
        try:
            return ResolvedLocustfile.stored(self.storage.locustfiles.get(tenant_id, name))
        except NotFoundError:
            pass
        for source in self.locustfile_sources:
            found = source.resolve(name, tenant_id)
            if found is not None:
                return found
        return None

    def _checked_locustfile(
        self, cluster_id: str, name: str, tenant_id: str
    ) -> ResolvedLocustfile | None:
        """Resolve a test's locustfile as its cluster requires.

        A provisioned cluster runs the content, so the name must resolve; a
        static master must serve the name, when it says which it serves.

        Raises:
            ValidationError: at ``locustfile``, saying why.
        """
        entry = self.clusters.get(cluster_id)
        resolved = self.resolve_locustfile(name, tenant_id)
        if isinstance(entry, ClusterConfig):
            entry.check_locustfile(cluster_id, name)
            return resolved
        if resolved is None:
            where = "stored for the tenant" + (
                " or in " + ", ".join(repr(s) for s in self.locustfile_sources)
                if self.locustfile_sources
                else ""
            )
            raise ValidationError.single(
                "locustfile", f"{name!r} resolves to no content ({where} has none)"
            )
        return resolved
