"""Plain-HTTP GETs on kept-alive stdlib connections: the Monitor's hot path.

A Monitor polls every master every two seconds, so the cost of one GET decides
how many runs one process can follow. Measured on the fan-out bench's masters
(bench/bench_monitor_fanout.py, docs/performance.md): a GET through
``httpx.Client`` costs 600 to 800 µs of CPU, through ``httpx.AsyncClient`` about
1,100 µs, through ``http.client`` on a kept-alive connection 100 to 140 µs. So the
reads a poll makes go through ``http.client``, and everything else (the POSTs,
TLS, custom ``httpx.Auth`` flows, proxies, an injected client) stays on httpx,
which does those well. :class:`~loadmanager.locust.LocustClient` decides which
applies (:func:`plain_http_target`); callers never see the difference: both
paths raise the same errors and are retried alike.
"""

from __future__ import annotations

import base64
import http.client
import queue
import socket
import urllib.parse
import urllib.request
from collections.abc import Mapping

from ..errors import LocustConnectionError, LocustHTTPError, LocustTimeoutError

__all__ = ["KeptAliveGets", "NotConnectedError", "plain_http_target"]


class NotConnectedError(LocustConnectionError):
    """The request never reached the master, so any request may be retried."""


def plain_http_target(base_url: str) -> tuple[str, int, str] | None:
    """``(host, port, path prefix)`` when ``base_url`` is plain HTTP reached directly.

    ``None`` for HTTPS (TLS stays with httpx) and when the environment names a
    proxy for the host, which httpx honours and ``http.client`` would not.
    """
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.query:
        return None
    proxies = urllib.request.getproxies()
    if proxies.get("http") and not urllib.request.proxy_bypass(parts.hostname):
        return None
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


class KeptAliveGets:
    """GETs over a small pool of kept-alive ``http.client`` connections to one master.

    Thread-safe: each request takes an idle connection (or opens one) and gives
    it back after a whole answer was read; a connection that failed is closed.
    A reused connection the master had already closed is retried once on a new
    one at once, since nothing reached the master.

    Args:
        host, port, prefix: From :func:`plain_http_target`.
        headers: Sent with every request.
        auth: ``(user, password)`` for HTTP Basic auth, or ``None``.
        timeout: Seconds for the connect and for each read.
    """

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        *,
        headers: Mapping[str, str],
        auth: tuple[str, str] | None,
        timeout: float,
    ) -> None:
        self._host, self._port, self._prefix = host, port, prefix
        self._timeout = timeout
        self._headers = {"Accept": "application/json, text/*", **headers}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._idle: queue.SimpleQueue[http.client.HTTPConnection] = queue.SimpleQueue()

    def get(self, path: str, url: str) -> str:
        """The body of ``GET <prefix>/<path>``; ``url`` names it in errors.

        Raises:
            NotConnectedError: the master could not be reached.
            LocustTimeoutError: no answer within the timeout.
            LocustConnectionError: the connection broke mid-answer.
            LocustHTTPError: a status of 300 or more.
        """
        target = f"{self._prefix}/{path}"
        try:
            conn, reused = self._idle.get_nowait(), True
        except queue.Empty:
            conn, reused = self._connect(url), False
        while True:
            try:
                status, body = self._exchange(conn, target, url)
                break
            except _StaleConnectionError as exc:
                conn.close()
                if not reused:
                    raise LocustConnectionError(
                        f"Locust at {url} closed the connection without answering", url=url
                    ) from exc
                conn, reused = self._connect(url), False
        if status >= 300:
            raise LocustHTTPError(status, body[:2000], url=url)
        return body

    def _connect(self, url: str) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            why = f"cannot connect to Locust at {url}: timed out"
            raise NotConnectedError(why, url=url) from exc
        except OSError as exc:
            conn.close()
            raise NotConnectedError(f"cannot connect to Locust at {url}: {exc}", url=url) from exc
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _exchange(self, conn: http.client.HTTPConnection, target: str, url: str) -> tuple[int, str]:
        try:
            try:
                conn.request("GET", target, headers=self._headers)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                raise _StaleConnectionError from exc
            data = response.read()
        except _StaleConnectionError:
            raise
        except TimeoutError as exc:
            conn.close()
            raise LocustTimeoutError(
                f"Locust at {url} did not answer within the request timeout "
                f"({self._timeout:g} s, ClusterConfig(timeout=...) or LocustClient(timeout=...)); "
                "raise it for a busy master",
                url=url,
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise LocustConnectionError(
                f"connection to Locust at {url} failed: {exc!r}", url=url
            ) from exc
        if response.will_close:
            conn.close()
        else:
            self._idle.put(conn)
        charset = response.headers.get_content_charset() or "utf-8"
        return response.status, data.decode(charset, errors="replace")

    def close(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class _StaleConnectionError(Exception):
    """The master closed the connection before answering: the request never ran."""
