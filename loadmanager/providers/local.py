"""LocalProvider: a Locust master and workers per run, as processes on this host.

Each run gets a folder under ``state_dir`` holding its locustfile (the content
that resolved at the start, never the file as it is later), the processes' logs
and ``cluster.json`` (the pids, the master's address). The processes run in
sessions of their own, so they outlive a host that dies: an heir on the same
host, with the same ``state_dir``, adopts the run through the address recorded
on it, and releases the cluster through the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._constraints import checked_tenants
from ..errors import ProvisioningError
from ..locust.local import LocalCluster, LocalClusterError
from ..models import ClusterHandle
from ..provisioning import HeldCluster, ProvisionRequest, workers_for

__all__ = ["LocalProvider", "process_running"]

_STATE = "cluster.json"


def _default_state_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"loadmanager-local-{os.getuid()}"


class LocalProvider:
    """Provisions a cluster per run on 127.0.0.1, on free ports.

    Args:
        state_dir: Where each run's folder goes; an heir must use the same one
            to release what a dead host left. A per-user temporary folder by
            default.
        users_per_worker: Users per worker when a run does not say ``workers``.
        max_workers: The most workers one run gets (the host's cores by default).
        max_clusters: The most clusters held at once; a start past it fails.
        startup_timeout: Seconds for the master and every worker to be ready.
        grace: Seconds between SIGTERM and SIGKILL at release.
        tenants: The tenants whose tests may use it; ``None`` means all.
        command: How to start locust (``python -m locust`` of this interpreter).
        env: Extra environment variables for the processes.
        keep_logs: Keep a run's folder (its logs) after release.
    """

    def __init__(
        self,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        users_per_worker: int = 50,
        max_workers: int | None = None,
        max_clusters: int = 4,
        startup_timeout: float = 60.0,
        grace: float = 5.0,
        tenants: frozenset[str] | None = None,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        keep_logs: bool = False,
    ) -> None:
        if users_per_worker < 1 or max_clusters < 1:
            raise ValueError("users_per_worker and max_clusters must be at least 1")
        self.state_dir = Path(state_dir) if state_dir is not None else _default_state_dir()
        self.users_per_worker = users_per_worker
        self.max_workers = max_workers or os.cpu_count() or 1
        self.max_clusters = max_clusters
        self.startup_timeout = startup_timeout
        self.grace = grace
        self.tenants = checked_tenants(tenants)
        self.command = command
        self.env = dict(env or {})
        self.keep_logs = keep_logs
        self._lock = threading.Lock()
        self._live: dict[str, LocalCluster] = {}  # the clusters this process started

    def workers_for(self, users: int, requested: int | None) -> int:
        """The override, else one worker per ``users_per_worker`` users, up to ``max_workers``."""
        return workers_for(
            users, requested, users_per_worker=self.users_per_worker, most=self.max_workers
        )

    def provision(self, request: ProvisionRequest) -> ClusterHandle:
        """Start a master and workers running the request's locustfile content."""
        folder = self.state_dir / request.run_id
        with self._lock:
            if len(self.held()) >= self.max_clusters:
                raise ProvisioningError(
                    f"the local provider holds {self.max_clusters} clusters already (max_clusters)"
                )
            folder.mkdir(parents=True, exist_ok=False)
            # The folder exists from here on, so held() counts it and an heir finds it.
            (folder / _STATE).write_text(json.dumps({"runId": request.run_id, "pids": []}))
        name = Path(request.locustfile.name).name
        locustfile = folder / (name if name.endswith(".py") else f"{name}.py")
        locustfile.write_text(request.locustfile.content, encoding="utf-8")
        cluster = LocalCluster(
            locustfile,
            workers=request.workers,
            host=request.target_url,
            startup_timeout=self.startup_timeout,
            grace=self.grace,
            command=self.command,
            env=self.env,
            log_dir=folder,
        )
        try:
            cluster.start()
        except LocalClusterError as exc:
            tail = exc.log_tail
            self._remove(folder)
            raise ProvisioningError(
                f"the local cluster did not start: {exc.args[0]}", tail
            ) from None
        with self._lock:
            self._live[request.run_id] = cluster
        handle = ClusterHandle(
            master_url=cluster.url,
            workers=request.workers,
            ref={"folder": str(folder), "pids": ",".join(map(str, cluster.pids))},
        )
        state = {"runId": request.run_id, "pids": cluster.pids, "masterUrl": cluster.url,
                 "workers": request.workers}  # fmt: skip
        (folder / _STATE).write_text(json.dumps(state))
        return handle

    def release(self, handle: ClusterHandle) -> None:
        """Stop the cluster's processes (SIGTERM, then SIGKILL) and remove its folder."""
        folder = Path(handle.ref.get("folder", ""))
        run_id = folder.name
        with self._lock:
            cluster = self._live.pop(run_id, None)
        if cluster is not None:
            cluster.stop()  # our own children: stopped and reaped
        else:
            pids = [int(p) for p in handle.ref.get("pids", "").split(",") if p]
            _terminate([p for p in pids if _runs_from(p, folder)], self.grace)
        if not self.keep_logs:
            self._remove(folder)

    def held(self) -> list[HeldCluster]:
        """The clusters whose folders are in ``state_dir``: this process's, and a dead host's."""
        found = []
        for state in sorted(self.state_dir.glob(f"*/{_STATE}")):
            try:
                data = json.loads(state.read_text())
            except (OSError, ValueError):
                continue  # half-written by a host that died: released below by its folder
            pids = ",".join(str(p) for p in data.get("pids", []))
            handle = ClusterHandle(
                master_url=data.get("masterUrl", "http://127.0.0.1:1"),
                workers=max(1, int(data.get("workers", 1))),
                ref={"folder": str(state.parent), "pids": pids},
            )
            found.append(HeldCluster(str(data.get("runId", state.parent.name)), handle))
        return found

    def log_tail(self, handle: ClusterHandle, lines: int = 40) -> str:
        """The last lines of the master's log, while the run's folder is kept."""
        try:
            text = (Path(handle.ref.get("folder", "")) / "master.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _remove(self, folder: Path) -> None:
        if folder.is_relative_to(self.state_dir) and folder != self.state_dir:
            shutil.rmtree(folder, ignore_errors=True)

    def __repr__(self) -> str:
        return f"LocalProvider(state_dir={str(self.state_dir)!r})"


def _runs_from(pid: int, folder: Path) -> bool:
    """Whether ``pid`` is still a locust process of ``folder`` (pids get reused)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    where = (str(folder), str(folder.resolve()))
    return any(arg.decode(errors="replace").startswith(where) for arg in argv)


def _terminate(pids: list[int], grace: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(process_running(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if process_running(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def process_running(pid: int) -> bool:
    """Whether the process runs (a zombie waiting to be reaped does not). Linux only."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
