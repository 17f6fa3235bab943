"""A MongoDB server for the tests: MONGODB_URI when set, else the nx-27017 stand-in.

nx-27017 (PyPI) speaks MongoDB's wire protocol over SQLite. It is started on a free
127.0.0.1 port with isolated in-memory databases, and stopped when the session ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    import pymongo

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nx-27017 exited early:\n{log.read_text()[-2000:]}")
        try:
            client = pymongo.MongoClient(
                f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=300
            )
            try:
                client.admin.command("ping")
                return
            finally:
                client.close()
        except Exception:  # not up yet; try again until the deadline
            time.sleep(0.1)
    raise RuntimeError(f"nx-27017 did not answer within 30 s:\n{log.read_text()[-2000:]}")


@contextmanager
def standin_server(workdir: Path) -> Iterator[str]:
    """Start nx-27017 and yield its base URI."""
    exe = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
    port = free_port()
    log = workdir / "nx-27017.log"
    proc = subprocess.Popen(
        [
            exe,
            "--data-dir",
            "memory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-file",
            str(log),
            "--pid-file",
            str(workdir / "nx-27017.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_serving(port, proc, log)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)  # it shuts down on Ctrl-C, not on SIGTERM
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def mongo_base_uri(workdir: Path) -> Iterator[str]:
    """The server to test against: ``MONGODB_URI``, or a stand-in started here."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        yield uri.rstrip("/")
    else:
        with standin_server(workdir) as started:
            yield started


def fresh_database_name() -> str:
    return f"lmtest_{uuid.uuid4().hex[:12]}"


def database_uri(base: str, name: str) -> str:
    """``base`` with its database path replaced by ``name`` (query string kept)."""
    head, _, query = base.partition("?")
    scheme, _, rest = head.partition("://")
    hosts = rest.split("/", 1)[0]
    return f"{scheme}://{hosts}/{name}" + (f"?{query}" if query else "")
