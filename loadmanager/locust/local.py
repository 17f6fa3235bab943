"""LocalCluster: a real Locust master and workers on 127.0.0.1, as subprocesses.

For quick starts, notebooks and tests. Locust runs in its own processes because
importing it monkey-patches the importing process with gevent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import LoadManagerError
from .ready import wait_for_workers

__all__ = ["PLUGIN", "LocalCluster", "LocalClusterError"]

PLUGIN = Path(__file__).with_name("loadmanager_plugin.py")
"""loadmanager's Locust plugin: one standalone file, loaded with Locust's ``-f a.py,plugin.py``."""


class LocalClusterError(LoadManagerError):
    """A local master or worker did not start, or exited unexpectedly.

    Attributes:
        reason: What went wrong, without the log.
        log_tail: The last lines the failing process wrote (the master's when
            no single process failed), to show why.
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        super().__init__(f"{message}\n--- log (tail) ---\n{log_tail}" if log_tail else message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _locust_command() -> list[str]:
    # The locust of this interpreter's environment, run as a module so a venv
    # without its bin/ on PATH still works.
    return [sys.executable, "-m", "locust"]


class LocalCluster:
    """A Locust master with ``workers`` workers for ``locustfile``, on this machine.

    Args:
        locustfile: Path to the locustfile.
        workers: How many worker processes to start (at least 1).
        host: The default target base URL (``--host``).
        startup_timeout: Seconds to wait for every worker to connect.
        grace: Seconds between SIGTERM and SIGKILL when stopping.
        extra_args: More command-line arguments for master and workers.
        command: How to start locust; ``python -m locust`` of this interpreter
            by default.
        env: Extra environment variables for the processes.
        plugin: Load loadmanager's Locust plugin next to the locustfile, so the
            master serves exact histograms (see docs/metrics.md).
        log_dir: Where the processes' output goes (``master.log``,
            ``worker-N.log``); a fresh temporary folder, removed by
            :meth:`cleanup`, by default.

    Use as a context manager; on exit every process it started is stopped, even
    when the body raised::

        with LocalCluster("locustfile.py", workers=2) as cluster:
            client = LocustClient(cluster.url)
    """

    def __init__(
        self,
        locustfile: str | os.PathLike[str],
        workers: int = 2,
        host: str | None = None,
        *,
        startup_timeout: float = 60.0,
        grace: float = 5.0,
        extra_args: Sequence[str] = (),
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        plugin: bool = True,
    ) -> None:
        if workers < 1:
            raise ValueError("a LocalCluster needs at least one worker")
        self.locustfile = Path(locustfile).resolve()
        if not self.locustfile.is_file():
            raise FileNotFoundError(f"locustfile not found: {self.locustfile}")
        self.workers = workers
        self.host = host
        self.startup_timeout = startup_timeout
        self.grace = grace
        self.extra_args = tuple(extra_args)
        self.command = list(command) if command else _locust_command()
        self.env = dict(env or {})
        self.web_port = 0
        self.master_port = 0
        self.master: subprocess.Popen[bytes] | None = None
        self.worker_processes: list[subprocess.Popen[bytes]] = []
        self.plugin = plugin
        self._given_log_dir = None if log_dir is None else str(log_dir)
        self._logdir: str | None = None
        self._logs: list[IO[bytes]] = []
        self._log_of: dict[int, Path] = {}  # pid -> the file its output goes to

    @property
    def url(self) -> str:
        """The master's web API address."""
        if not self.web_port:
            raise RuntimeError("the LocalCluster is not started")
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def master_log(self) -> Path:
        """The file the master writes its output to."""
        if self._logdir is None:
            raise RuntimeError("the LocalCluster is not started")
        return Path(self._logdir) / "master.log"

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the master's output."""
        try:
            return _tail(self.master_log, lines)
        except RuntimeError:
            return ""

    def _files(self) -> str:
        return f"{self.locustfile},{PLUGIN}" if self.plugin else str(self.locustfile)

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        assert self._logdir is not None
        path = Path(self._logdir) / log_name
        log = open(path, "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(  # noqa: S603 - our own argv, no shell
            [*self.command, "-f", self._files(), *args, *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(self.locustfile.parent),
            env=env,
            start_new_session=True,  # so a Ctrl-C in the host does not hit them first
        )
        self._log_of[proc.pid] = path
        return proc

    def start(self) -> LocalCluster:
        """Start the master and workers and wait until every worker is connected."""
        if self.master is not None:
            raise RuntimeError("the LocalCluster is already started")
        self._logdir = self._given_log_dir or tempfile.mkdtemp(prefix="loadmanager-locust-")
        self.web_port, self.master_port = _free_port(), _free_port()
        try:
            master_args = [
                "--master",
                "--class-picker",  # lets /swarm choose user classes per run
                "--web-host",
                "127.0.0.1",
                "--web-port",
                str(self.web_port),
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(self.master_port),
            ]
            if self.host:
                master_args += ["--host", self.host]
            self.master = self._spawn(master_args, "master.log")
            for n in range(self.workers):
                worker_args = [
                    "--worker",
                    "--master-host",
                    "127.0.0.1",
                    "--master-port",
                    str(self.master_port),
                ]
                self.worker_processes.append(self._spawn(worker_args, f"worker-{n}.log"))
            self._wait_for_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_workers(self) -> None:
        def alive() -> None:
            for proc in [self.master, *self.worker_processes]:
                if proc is not None and proc.poll() is not None:
                    # The log of the process that died says why; a worker
                    # often dies before the master has written a line.
                    role = "master" if proc is self.master else "worker"
                    raise LocalClusterError(
                        f"a locust {role} exited with code {proc.returncode} during start-up",
                        _tail(self._log_of[proc.pid]) or self.log_tail(),
                    )

        last = wait_for_workers(self.url, self.workers, self.startup_timeout, alive=alive)
        if last is not None:
            raise LocalClusterError(
                f"Locust did not get ready within {self.startup_timeout:g} s ({last})",
                self.log_tail(),
            )

    @property
    def pids(self) -> list[int]:
        """The process ids of the master and the workers, master first."""
        return [p.pid for p in [self.master, *self.worker_processes] if p is not None]

    def kill_master(self) -> None:
        """SIGKILL the master, as a crash would (for failure tests)."""
        if self.master is not None and self.master.poll() is None:
            self.master.kill()
            self.master.wait()

    def stop(self) -> None:
        """Stop every process this cluster started: SIGTERM, then SIGKILL after ``grace``."""
        procs = [p for p in [*self.worker_processes, self.master] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()
        self._logs.clear()
        self._log_of.clear()
        self.worker_processes.clear()
        self.master = None

    def cleanup(self) -> None:
        """Stop everything and delete the log folder."""
        self.stop()
        if self._logdir is not None and self._given_log_dir is None:
            shutil.rmtree(self._logdir, ignore_errors=True)
        self._logdir = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = self.url if self.master is not None else "stopped"
        return f"LocalCluster({str(self.locustfile)!r}, workers={self.workers}, {state})"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
