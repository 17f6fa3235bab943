"""Plain-HTTP GETs on kept-alive connections: the Monitor's hot path.

A Monitor polls every master every two seconds, so the cost of one GET decides
how many runs one process can follow. Measured on the fan-out bench's masters
(bench/bench_monitor_fanout.py, docs/performance.md), CPU per GET of Locust's
``/stats/requests``: ``httpx.Client`` 600 to 800 µs, ``httpx.AsyncClient`` about
1,100 µs, ``http.client`` on a kept-alive connection 100 to 140 µs, and a socket
whose answers httptools frames about 20 µs (``http.client`` parses headers with
the ``email`` package). So the reads a poll makes go over kept-alive sockets,
framed by httptools when the ``fast`` extra is installed and by ``http.client``
otherwise; everything else (the POSTs, TLS, custom ``httpx.Auth`` flows,
proxies, an injected client) stays on httpx, which does those well.
:class:`~loadmanager.locust.LocustClient` decides which applies
(:func:`plain_http_target`); callers never see the difference: every path
raises the same errors and is retried alike.
"""

from __future__ import annotations

import base64
import functools
import http.client
import queue
import socket
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ..errors import LocustConnectionError, LocustHTTPError, LocustTimeoutError

__all__ = [
    "Connection",
    "KeptAliveGets",
    "LlhttpConnection",
    "NotConnectedError",
    "SentGet",
    "StdlibConnection",
    "default_opener",
    "plain_http_target",
]


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


class Connection(Protocol):
    """One kept-alive connection to a master, connected when made."""

    def exchange(self, target: str, headers: Sequence[tuple[str, str]]) -> tuple[int, str, bool]:
        """``GET target``: ``(status, body, whether the connection may be reused)``.

        Raises:
            _StaleConnectionError: closed by the master before any answer.
            TimeoutError: no answer within the timeout.
            OSError, _BrokenAnswerError: the connection broke, or the answer
                is not HTTP.
        """
        ...  # a Protocol method: the two classes below implement it

    def close(self) -> None:
        """Close the socket."""
        ...  # a Protocol method


Opener = Callable[[str, int, float], Connection]
"""Connects to ``(host, port)`` with a timeout; raises OSError when it cannot."""


class KeptAliveGets:
    """GETs over a small pool of kept-alive connections to one master.

    Thread-safe: each request takes an idle connection (or opens one) and gives
    it back after a whole answer was read; a connection that failed is closed.
    A reused connection the master had already closed is retried once on a new
    one at once, since nothing reached the master.

    Args:
        host, port, prefix: From :func:`plain_http_target`.
        headers: Sent with every request.
        auth: ``(user, password)`` for HTTP Basic auth, or ``None``.
        timeout: Seconds for the connect and for each read.
        opener: How a connection is made; :func:`default_opener` by default
            (httptools when installed, ``http.client`` otherwise).
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
        opener: Opener | None = None,
    ) -> None:
        self._host, self._port, self._prefix = host, port, prefix
        self._timeout = timeout
        self._open = opener or default_opener()
        merged = {"Accept": "application/json, text/*", **headers}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            merged["Authorization"] = f"Basic {token}"
        self._headers = tuple(merged.items())
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()

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

    def send(self, path: str) -> SentGet | None:
        """Send ``GET <prefix>/<path>`` on an idle connection and return at once.

        For one thread that waits on many masters (the Monitor's loop): it
        watches :attr:`SentGet.sock` and calls :meth:`SentGet.receive` when
        the socket is readable. ``None`` when no idle connection can carry the
        request (none yet, one of ``http.client``'s, which cannot be read a
        piece at a time, or one the master closed): then :meth:`get` does,
        with its retries and its errors.
        """
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            return None
        if not isinstance(conn, LlhttpConnection):
            self._idle.put(conn)
            return None
        try:
            answer = conn.send(f"{self._prefix}/{path}", self._headers)
        except (_StaleConnectionError, _BrokenAnswerError, OSError):
            conn.close()
            return None
        return SentGet(self._idle, conn, answer, self._timeout)

    def _connect(self, url: str) -> Connection:
        try:
            return self._open(self._host, self._port, self._timeout)
        except TimeoutError as exc:
            why = f"cannot connect to Locust at {url}: timed out"
            raise NotConnectedError(why, url=url) from exc
        except OSError as exc:
            raise NotConnectedError(f"cannot connect to Locust at {url}: {exc}", url=url) from exc

    def _exchange(self, conn: Connection, target: str, url: str) -> tuple[int, str]:
        try:
            status, body, reusable = conn.exchange(target, self._headers)
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
        except (OSError, _BrokenAnswerError) as exc:
            conn.close()
            raise LocustConnectionError(
                f"connection to Locust at {url} failed: {exc!r}", url=url
            ) from exc
        if reusable:
            self._idle.put(conn)
        else:
            conn.close()
        return status, body

    def close(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class SentGet:
    """A GET :meth:`KeptAliveGets.send` wrote, its answer read as it arrives.

    The connection is the request's alone until the answer is whole, then it
    goes back to its pool (or is closed, when the master said so or anything
    failed). Nothing here raises: a failure is an :attr:`answer` of ``None``.

    Attributes:
        timeout: Seconds the request may wait for its answer (the client's).
        answer: ``(status, body)`` once :meth:`receive` returned ``True``;
            ``None`` before, and after a failure.
    """

    __slots__ = ("_answer", "_conn", "_idle", "answer", "timeout")

    def __init__(
        self,
        idle: queue.SimpleQueue[Connection],
        conn: LlhttpConnection,
        answer: _Answer,
        timeout: float,
    ) -> None:
        self._idle, self._conn, self._answer = idle, conn, answer
        self.timeout = timeout
        self.answer: tuple[int, str] | None = None

    @property
    def sock(self) -> socket.socket:
        """The socket to wait on."""
        return self._conn.sock

    def receive(self) -> bool:
        """Read what arrived (the socket is readable); whether the exchange is over."""
        try:
            if not self._conn.receive(self._answer):
                return False
        except (_StaleConnectionError, _BrokenAnswerError, OSError):
            self._conn.close()
            return True
        status, body, reusable = self._conn.outcome(self._answer)
        if reusable:
            self._idle.put(self._conn)
        else:
            self._conn.close()
        self.answer = (status, body)
        return True

    def cancel(self) -> None:
        """Give up on the answer (its time ran out): the connection is closed."""
        self._conn.close()


@functools.cache
def default_opener() -> Opener:
    """httptools' connections when the ``fast`` extra is installed, ``http.client``'s otherwise."""
    try:
        import httptools  # noqa: F401 - only whether it imports
    except ImportError:
        return StdlibConnection
    return LlhttpConnection


class StdlibConnection:
    """A kept-alive ``http.client`` connection: the path without extras."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            self._conn.connect()
        except BaseException:
            self._conn.close()
            raise
        if self._conn.sock is not None:
            self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(self, target: str, headers: Sequence[tuple[str, str]]) -> tuple[int, str, bool]:
        try:
            try:
                self._conn.request("GET", target, headers=dict(headers))
                response = self._conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                raise _StaleConnectionError from exc
            data = response.read()
        except http.client.HTTPException as exc:
            raise _BrokenAnswerError(repr(exc)) from exc
        charset = response.headers.get_content_charset()
        return response.status, _decoded(data, charset), not response.will_close

    def close(self) -> None:
        self._conn.close()


class LlhttpConnection:
    """A kept-alive socket whose answers httptools frames (llhttp, Node.js's parser).

    The request is written as ``http.client`` writes it (``Host``, then
    ``Accept-Encoding: identity``, then the caller's headers); a header that
    would split the request (CR or LF) is refused, as ``http.client`` refuses it.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        import httptools  # the fast extra; default_opener() checked it imports

        self._parser_of: Callable[[_Answer], Any] = httptools.HttpResponseParser
        self._parse_error: type[Exception] = httptools.HttpParserError
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._host = host if port == 80 else f"{host}:{port}"
        if ":" in host:  # an IPv6 literal goes in brackets, as in a URL
            self._host = f"[{host}]" if port == 80 else f"[{host}]:{port}"
        self._requests: dict[str, bytes] = {}

    def _request(self, target: str, headers: Sequence[tuple[str, str]]) -> bytes:
        request = self._requests.get(target)
        if request is None:
            lines = [f"GET {target} HTTP/1.1"]
            if not any(name.lower() == "host" for name, _ in headers):
                lines.append(f"Host: {self._host}")
            lines.append("Accept-Encoding: identity")
            lines += [f"{name}: {value}" for name, value in headers]
            # http.client's own refusals: a control character or space in the
            # path, CR or LF in a header (either would split the request).
            bad_path = any(ord(c) <= 32 or c == "\x7f" for c in target)
            if bad_path or any(c in line for line in lines for c in "\r\n"):
                raise _BrokenAnswerError(f"refused to send a header or path in {lines!r}")
            text = "\r\n".join(lines)
            request = self._requests[target] = (text + "\r\n\r\n").encode("latin-1")
        return request

    @property
    def sock(self) -> socket.socket:
        """The socket, for a caller that waits on many at once (``selectors``)."""
        return self._sock

    def send(self, target: str, headers: Sequence[tuple[str, str]]) -> _Answer:
        """Write ``GET target``; the answer is then read by :meth:`receive`.

        Raises:
            _StaleConnectionError: closed by the master before the request went.
            _BrokenAnswerError: the request cannot be written (a bad header).
        """
        try:
            request = self._request(target, headers)
        except UnicodeEncodeError as exc:
            raise _BrokenAnswerError(f"a header is not Latin-1: {exc}") from exc
        try:
            self._sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _StaleConnectionError from exc
        answer = _Answer()
        answer.parser = self._parser_of(answer)
        return answer

    def receive(self, answer: _Answer) -> bool:
        """Read once (blocking up to the timeout) and frame it; whether the answer is whole.

        Raises:
            _StaleConnectionError: closed by the master before any answer.
            TimeoutError, OSError, _BrokenAnswerError: as :meth:`exchange`.
        """
        try:
            data = self._sock.recv(65536)
        except ConnectionResetError as exc:
            if answer.received:
                raise
            raise _StaleConnectionError from exc
        if not data:
            if not answer.received:
                raise _StaleConnectionError
            if answer.until_close:  # a body with no length ends with the connection
                answer.complete, answer.keep_alive = True, False
                return True
            raise _BrokenAnswerError("the master closed the connection mid-answer")
        answer.received = True
        try:
            answer.parser.feed_data(data)
        except self._parse_error as exc:
            raise _BrokenAnswerError(f"not an HTTP answer: {exc}") from exc
        return answer.complete

    @staticmethod
    def outcome(answer: _Answer) -> tuple[int, str, bool]:
        """``(status, body, reusable)`` of a whole answer, as :meth:`exchange` returns."""
        parser, answer.parser = answer.parser, None  # no cycle left for the collector
        reusable = answer.complete and answer.keep_alive
        return parser.get_status_code(), _decoded(b"".join(answer.body), answer.charset), reusable

    def exchange(self, target: str, headers: Sequence[tuple[str, str]]) -> tuple[int, str, bool]:
        answer = self.send(target, headers)
        while not self.receive(answer):
            pass
        return self.outcome(answer)

    def close(self) -> None:
        self._sock.close()


class _Answer:
    """httptools' callbacks for one answer."""

    __slots__ = (
        "body",
        "charset",
        "complete",
        "keep_alive",
        "parser",
        "received",
        "sized",
        "until_close",
    )

    def __init__(self) -> None:
        self.parser: Any = None
        self.body: list[bytes] = []
        self.charset: str | None = None
        self.sized = self.complete = self.until_close = self.keep_alive = False
        self.received = False

    def on_message_begin(self) -> None:
        self.body.clear()
        self.charset, self.sized = None, False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key == b"content-type":
            self.charset = _charset(value.decode("latin-1"))
        elif key in (b"content-length", b"transfer-encoding"):
            self.sized = True

    def on_headers_complete(self) -> None:
        self.until_close = not self.sized
        # llhttp forgets it once the message is complete.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        # An interim answer (100 Continue) is followed by the real one.
        self.complete = self.parser.get_status_code() >= 200

    def finished(self) -> bool:
        return self.complete


def _charset(content_type: str) -> str | None:
    """The ``charset`` parameter of a Content-Type value."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _decoded(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know: read it as UTF-8
        return data.decode("utf-8", errors="replace")


class _StaleConnectionError(Exception):
    """The master closed the connection before answering: the request never ran."""


class _BrokenAnswerError(Exception):
    """What came back is not an HTTP answer (or the request could not be written)."""
