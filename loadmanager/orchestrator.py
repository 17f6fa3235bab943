"""The Orchestrator: the public façade over load tests, runs and their monitoring.

It checks input, tenants and identities, then calls in: storage for definitions,
the run lifecycle for every status change, the Monitor for who polls what, when.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from . import _constraints as c
from ._progress import Progress, describe
from ._serialization import from_dict
from .catalog import Tenants
from .clock import Clock, IdFactory, as_clock, new_id
from .clusters import ClientFactory, ClientPool, ClusterRegistry, default_client_factory
from .definitions import Definitions
from .errors import (
    ClusterBusyError,
    WaitTimeoutError,
)
from .filters import MAX_LIMIT, RunFilter
from .lifecycle import RunLifecycle
from .locustfiles import LocustfileSource
from .models import LoadTestRun, RunOverrides
from .monitor import Monitor
from .queries import frozen_baseline
from .repositories import Storage
from .status import ACTIVE_STATUSES

__all__ = ["Orchestrator"]

log = logging.getLogger("loadmanager")


class Orchestrator(Definitions):
    """Load tests, runs and their monitoring, on one storage and a cluster registry.

    Args:
        storage: From :func:`loadmanager.connect`; the caller keeps ownership.
        clusters: Which Locust master serves each ``locustClusterId``: a
            static master, or a provider that makes a cluster per run. This
            replica monitors only runs on these clusters.
        locustfiles: Where load tests' ``locustfile`` names resolve, besides the
            stored ones (``[LocustfileDirectory("loadtests/")]``).
        clock: Time source for records, waits and polls (a
            :class:`~loadmanager.clock.Clock`, or a bare function returning
            the UTC time); the system's by default.
        id_factory: Makes ids for new tests and runs.
        client_factory: Builds the client of a cluster's master.
        poll_interval: Seconds between two polls of a run (Locust caches 2 s);
            frozen onto each run this replica starts.
        monitor: Start the background Monitor thread. Without it, ``wait`` and
            ``refresh`` poll in the caller's thread.
        owner: This replica's name in monitoring claims (unique by default).
        settle: Seconds to wait after a run stops for the workers' last reports.
        system_actor: The identity in audits of changes the library makes itself.
        checkpoint: Called at each step of a run's life (:data:`STEPS`); for
            crash tests.

    Close it with :meth:`close`, or use it as a context manager.
    """

    def __init__(
        self,
        storage: Storage,
        clusters: ClusterRegistry,
        *,
        clock: Clock | Callable[[], datetime] | None = None,
        id_factory: IdFactory = new_id,
        client_factory: ClientFactory = default_client_factory,
        poll_interval: float = 2.0,
        monitor: bool = True,
        owner: str | None = None,
        settle: float = 3.5,
        system_actor: str = "loadmanager",
        checkpoint: Callable[[str], None] | None = None,
        locustfiles: Sequence[LocustfileSource] = (),
    ) -> None:
        self.storage = storage
        self.clusters = clusters
        self.locustfile_sources = tuple(locustfiles)
        self.clock = as_clock(clock)
        self._new_id = id_factory
        self._masters = ClientPool(clusters, client_factory)
        self.poll_interval = poll_interval
        self.owner = owner or f"orchestrator-{uuid.uuid4().hex[:12]}"
        self._lifecycle = RunLifecycle(
            storage,
            self._masters,
            clock=self.clock,
            claim=lambda run_id: self.monitor.claim(run_id),
            actor=system_actor,
            settle=settle,
            checkpoint=checkpoint,
        )
        self.monitor = Monitor(
            storage,
            self._lifecycle,
            clock=self.clock,
            owner=self.owner,
            knows=clusters.__contains__,
            interval=poll_interval,
        )
        self._closed = False
        if monitor:
            self.monitor.start()

    # -- runs ----------------------------------------------------------------------

    def start_run(
        self,
        load_test_id: str,
        overrides: Mapping[str, Any] | RunOverrides | None = None,
        *,
        actor: str,
        tenants: Tenants = None,
    ) -> LoadTestRun:
        """Start a run of a load test with its defaults, or ``overrides``.

        Resolves the test's locustfile and pins its hash (and stored version)
        on the run, freezes the test's criteria and baseline figures into it,
        takes the cluster's lease (a static master) and records the run
        ``pending``, makes its cluster (a provider), asks the master to swarm,
        and records ``running``.

        Raises:
            ValidationError: the locustfile resolves nowhere (or the static
                master does not serve it); nothing was recorded or sent.
            ClusterBusyError: the cluster already runs another test (named).
            ProvisioningError: the provider could not make the cluster; the
                run is recorded ``failed`` with the reason and the log tail.
            LocustError: the master refused or could not be reached; the run is
                recorded ``failed`` with the reason (``exc.run_id``) and the
                cluster is free again.
        """
        actor = c.checked_actor(actor)
        test = self.get_load_test(load_test_id, tenants=tenants)
        if overrides is None:
            overrides = RunOverrides()
        elif not isinstance(overrides, RunOverrides):
            overrides = from_dict(RunOverrides, overrides)
        c.check_claimed_creator(overrides.created_by, actor)
        self.clusters.check_tenant(test.locust_cluster_id, test.tenant_id)
        code = self._checked_locustfile(test.locust_cluster_id, test.locustfile, test.tenant_id)
        provider = self.clusters.provider(test.locust_cluster_id)
        users = overrides.target_users or test.default_users
        params = attrs.evolve(
            overrides.resolve(
                test,
                baseline=frozen_baseline(self.storage.runs, test),
                poll_interval=self.poll_interval,
            ),
            workers=None if provider is None else provider.workers_for(users, overrides.workers),
            locustfile_sha256=None if code is None else code.sha256,
            locustfile_version=None if code is None else code.version,
        )
        try:
            pending = self._lifecycle.begin(
                test, params, run_id=self._new_id(), actor=actor, exclusive=provider is None
            )
        except ClusterBusyError as exc:
            raise self._busy_as_seen_by(exc, tenants) from None
        return self._lifecycle.launch(pending, actor=actor, locustfile=code)

    def stop_run(self, run_id: str, *, actor: str, tenants: Tenants = None) -> LoadTestRun:
        """Ask the master to stop; the run is ``stopping`` until Locust confirms.

        A poll records ``stopped`` with the summary once the master says it
        stopped. Stopping a run that is already stopping returns it unchanged.

        Raises:
            InvalidTransitionError: the run is pending or has already ended.
        """
        actor = c.checked_actor(actor)
        return self._lifecycle.stop(self.get_run(run_id, tenants=tenants), actor=actor)

    def refresh(self, run_id: str, *, tenants: Tenants = None) -> LoadTestRun:
        """Poll the run's master once now, unless another replica monitors it."""
        run = self.get_run(run_id, tenants=tenants)
        if run.is_active and self.monitor.mine(run):
            with self.monitor.alone(run.id) as alone:
                if alone:  # else the Monitor is polling it right now
                    return self._lifecycle.poll(run)
        return run

    def wait(
        self,
        run_id: str,
        timeout: float | None = None,
        *,
        progress: bool = False,
        summary: bool = False,
        tenants: Tenants = None,
    ) -> LoadTestRun:
        """Block until the run ends and return it.

        Args:
            timeout: Seconds to wait at most; WaitTimeoutError after that (the
                run goes on).
            progress: Show elapsed time, users and rps live (terminal or Jupyter).
            summary: Print the end-of-run summary when it ends
                (:func:`~loadmanager.print_summary`: rich in a terminal, plain
                text in a log, HTML in Jupyter).
        """
        clock = self.clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        display = Progress(progress, monotonic=clock.monotonic)
        last_poll = -math.inf
        while True:
            run = self.get_run(run_id, tenants=tenants)
            line = describe(run, self._latest(run), clock.now()) if progress else ""
            if run.status.is_terminal:
                display.close(line)
                if summary:
                    self._print_summary(run, tenants)
                return run
            if not self.monitor.running and clock.monotonic() - last_poll >= self.poll_interval:
                last_poll = clock.monotonic()
                self.refresh(run_id, tenants=tenants)
                continue
            display.show(line)
            if deadline is not None and clock.monotonic() >= deadline:
                display.close(line)
                raise WaitTimeoutError(run_id, run.status.value, timeout or 0.0)
            clock.sleep(0.25)

    def _print_summary(self, run: LoadTestRun, tenants: Tenants) -> None:
        from .summary import print_summary  # rendering loads only when asked for

        print_summary(run, self.load_test_of(run, tenants=tenants))

    def reconcile(self) -> list[LoadTestRun]:
        """Take over the active runs on this replica's clusters, and settle them.

        Call on start-up: every active run that no live replica monitors is
        claimed and polled once now, so a run whose master no longer runs it
        ends at once, a start whose host died is adopted (its load runs) or
        failed (it never began), and the rest are monitored from here on. Runs
        on clusters this replica does not know are left alone and logged.
        Then every provider's clusters whose run has ended, or is unknown, are
        released. Returns the active runs as they stand afterwards.
        """
        self._check_open()
        settled = []
        for run in self.storage.runs.find(RunFilter(statuses=ACTIVE_STATUSES, limit=MAX_LIMIT)):
            if run.locust_cluster_id not in self.clusters:
                log.warning("run %s: cluster %r unknown here", run.id, run.locust_cluster_id)
            elif self.monitor.mine(run):
                with self.monitor.alone(run.id) as alone:
                    run = self._lifecycle.poll(run) if alone else run
            settled.append(run)
        self.clusters.release_orphans({r.id for r in settled if r.is_active})
        return settled

    # -- resources -----------------------------------------------------------------

    def close(self) -> None:
        """Stop the Monitor and close the Locust clients (not the storage)."""
        if self._closed:
            return
        self._closed = True
        self.monitor.stop()
        self._masters.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Orchestrator({self.storage!r}, {self.clusters!r}, owner={self.owner!r})"
