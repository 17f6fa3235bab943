"""A small HTTP target on 127.0.0.1 to point load tests at (standard library only).

Endpoints:
    ``GET /items``   fast, always 200.
    ``GET /slow``    200 after ``slow_ms`` milliseconds.
    ``GET /flaky``   500 for a share ``fail_ratio`` of requests, exactly
                     (deterministic: every n-th request fails), else 200.
    ``POST /orders`` 201.
    anything else    404.

``fail_all = True`` makes every endpoint answer 500, to simulate an outage
mid-run; ``extra_delay_ms`` slows every endpoint down, to simulate a regression.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["TargetServer"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _answer(self, status: int, body: bytes = b"{}") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        target = self.server.target
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        with target.lock:
            target.hits[path] = target.hits.get(path, 0) + 1
            hit = target.hits[path]
        if target.extra_delay_ms:
            time.sleep(target.extra_delay_ms / 1000)
        if target.fail_all:
            self._answer(500, b'{"error": "outage"}')
        elif self.command == "GET" and path == "/items":
            self._answer(200, b'{"items": [1, 2, 3]}')
        elif self.command == "GET" and path == "/slow":
            time.sleep(target.slow_ms / 1000)
            self._answer(200, b'{"slow": true}')
        elif self.command == "GET" and path == "/flaky":
            every = round(1 / target.fail_ratio) if target.fail_ratio > 0 else 0
            failing = every and hit % every == 0
            self._answer(500 if failing else 200)
        elif self.command == "POST" and path == "/orders":
            self._answer(201, b'{"id": 1}')
        else:
            self._answer(404, b'{"error": "not found"}')

    do_GET = _serve  # noqa: N815 - the stdlib dispatches on these names
    do_POST = _serve  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    target: TargetServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Load generators hang up mid-answer when a run stops; that is not news."""


class TargetServer:
    """Serve the endpoints above on a free 127.0.0.1 port, in a background thread.

    Args:
        slow_ms: Delay of ``/slow``.
        fail_ratio: Share of ``/flaky`` requests that fail (0 to 1).
    """

    def __init__(self, *, slow_ms: int = 50, fail_ratio: float = 0.25) -> None:
        self.slow_ms = slow_ms
        self.fail_ratio = fail_ratio
        self.fail_all = False
        self.extra_delay_ms = 0
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, such as ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("the TargetServer is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> TargetServer:
        """Start serving."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.target = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TargetServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
