"""The write side of load test definitions: create, update, delete, baseline.

:class:`~loadmanager.Orchestrator` builds on it. Every write checks the
caller's tenants, the cluster's tenants and the locustfile before storage is
touched, and is compare-and-set on the test's version.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from . import _constraints as c
from ._serialization import from_dict, to_dict
from .catalog import Tenants
from .clock import IdFactory
from .errors import StaleVersionError, ValidationError
from .locustfile_catalog import LocustfileCatalog
from .models import LoadTest, LoadTestSpec

__all__ = ["Definitions"]

log = logging.getLogger("loadmanager")


def _check_version(kind: str, current: LoadTest, expected: int | None) -> None:
    if expected is not None and expected != current.version:
        raise StaleVersionError(kind, current.id, expected, current.version)


class Definitions(LocustfileCatalog):
    """Create, update and delete load tests, and choose their baseline run."""

    _new_id: IdFactory

    def create_load_test(
        self, payload: Mapping[str, Any] | LoadTestSpec, *, actor: str, tenants: Tenants = None
    ) -> LoadTest:
        """Create a load test from the seed's camelCase body (or a spec).

        Raises:
            ValidationError: a bad body, an unknown cluster, or a ``createdBy``
                that differs from ``actor``.
            PermissionDeniedError: the body's tenant is not among ``tenants``.
        """
        self._check_open()
        actor = c.checked_actor(actor)
        spec = payload if isinstance(payload, LoadTestSpec) else from_dict(LoadTestSpec, payload)
        c.check_claimed_creator(spec.created_by, actor)
        self._check_writable(spec.tenant_id, tenants)
        self.clusters.check_tenant(spec.locust_cluster_id, spec.tenant_id)
        self._checked_locustfile(spec.locust_cluster_id, spec.locustfile, spec.tenant_id)
        test = LoadTest.from_spec(spec, id=self._new_id(), at=self.clock.now(), actor=actor)
        return self.storage.load_tests.add(test)

    def update_load_test(
        self,
        load_test_id: str,
        changes: Mapping[str, Any],
        *,
        actor: str,
        expected_version: int | None = None,
        tenants: Tenants = None,
    ) -> LoadTest:
        """Apply camelCase ``changes`` (any subset of the create body).

        Runs already started keep the criteria they started with.

        Args:
            expected_version: The version the caller read; StaleVersionError if
                the test changed since. Without it the update still never
                overwrites a concurrent one: it is compare-and-set either way.
        """
        actor = c.checked_actor(actor)
        current = self.get_load_test(load_test_id, tenants=tenants)
        _check_version("LoadTest", current, expected_version)
        if not isinstance(changes, Mapping):
            raise ValidationError.single("", "must be an object")
        base = {k: v for k, v in to_dict(current.spec()).items() if k != "createdBy"}
        spec = from_dict(LoadTestSpec, {**base, **changes})
        c.check_claimed_creator(spec.created_by, actor)
        self._check_writable(spec.tenant_id, tenants)
        where = (spec.locust_cluster_id, spec.tenant_id, spec.locustfile)
        if where != (current.locust_cluster_id, current.tenant_id, current.locustfile):
            self.clusters.check_tenant(spec.locust_cluster_id, spec.tenant_id)
            self._checked_locustfile(*where)
        revised = current.revised(spec, at=self.clock.now(), actor=actor)
        return self.storage.load_tests.update(revised)

    def delete_load_test(
        self,
        load_test_id: str,
        *,
        actor: str,
        expected_version: int | None = None,
        tenants: Tenants = None,
    ) -> None:
        """Delete a load test with its runs and their metrics.

        Raises:
            ActiveRunError: one of its runs is still active.
        """
        c.checked_actor(actor)
        current = self.get_load_test(load_test_id, tenants=tenants)
        _check_version("LoadTest", current, expected_version)
        log.info("load test %s deleted by %s", load_test_id, actor)
        self.storage.load_tests.delete(load_test_id)

    def set_baseline(
        self, load_test_id: str, run_id: str | None, *, actor: str, tenants: Tenants = None
    ) -> LoadTest:
        """Make ``run_id`` the run this test's relative criteria compare with.

        ``None`` returns to the default: the most recent finished run of the test
        whose verdict passed. Runs already started keep the baseline they had.

        Raises:
            ValidationError: the run is not an ended run of this test with a summary.
        """
        actor = c.checked_actor(actor)
        test = self.get_load_test(load_test_id, tenants=tenants)
        if run_id is not None:
            run = self.get_run(run_id, tenants=tenants)
            if run.load_test_id != test.id:
                raise ValidationError.single("runId", "must be a run of this load test")
            if run.summary is None:
                raise ValidationError.single("runId", "must be a run that ended with a summary")
        return self.storage.load_tests.update(
            test.with_baseline(run_id, at=self.clock.now(), actor=actor)
        )
