"""LocustClient's kept-alive GETs against real sockets that misbehave.

The GETs of a plain-HTTP master go over kept-alive connections
(loadmanager/locust/_keepalive.py), framed by httptools when the ``fast``
extra is installed and by ``http.client`` otherwise. Every test here runs on
both, and checks that they keep the client's contract: the same errors, the
same retries, auth and headers, and a connection the master dropped is
replaced without a retry's wait. The happy path against a real master is in
test_locust_real.py.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import pytest
import tenacity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.locust import LocustClient, _keepalive

OPENERS = {"httptools": _keepalive.LlhttpConnection, "http.client": _keepalive.StdlibConnection}
try:
    import httptools  # noqa: F401 - whether the fast extra is installed
except ImportError:  # pragma: no cover - .ci/run installs it
    FAST = False
else:
    FAST = True


@pytest.fixture(
    params=[
        pytest.param(
            "httptools", marks=pytest.mark.skipif(not FAST, reason="needs the fast extra")
        ),
        "http.client",
    ],
    autouse=True,
)
def opener(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both ways of framing an answer."""
    monkeypatch.setattr(_keepalive, "default_opener", lambda: OPENERS[request.param])
    return str(request.param)


Answer = Callable[[BaseHTTPRequestHandler], None]


class _Master(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answers: list[Answer]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.seen: list[tuple[str, dict[str, str], tuple[str, int]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Locust's gevent server does
    server: _Master

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers), self.client_address))
        answer = self.server.answers.pop(0) if self.server.answers else ok({"worker_count": 1})
        answer(self)

    def log_message(self, *args: object) -> None:
        pass


def ok(body: object, *, close: bool = False) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        if close:  # drop the connection without saying so, as an idle timeout does
            handler.close_connection = True

    return answer


def status(code: int, text: str) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        data = text.encode()
        handler.send_response(code)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def cut_short(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b'{"worker_count"')
    handler.close_connection = True


S = TypeVar("S", bound=socketserver.BaseServer)


def serving(server: S) -> Iterator[S]:
    """Serve in a thread for the fixture's life (polled often, so it stops at once)."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def master() -> Iterator[_Master]:
    yield from serving(_Master([]))


def client_of(url: str, sleeps: list[float], **kwargs: object) -> LocustClient:
    def retrying() -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_fixed(0.01),
            sleep=sleeps.append,
            reraise=True,
        )

    return LocustClient(url, retrying=retrying, **kwargs)  # type: ignore[arg-type]


def test_reads_share_one_kept_alive_connection(master: _Master) -> None:
    sleeps: list[float] = []
    with client_of(master.url + "/base/", sleeps) as client:
        counts = [client.worker_count() for _ in range(5)]
    assert counts == [1] * 5
    assert [path for path, _, _ in master.seen] == ["/base/worker-count"] * 5
    assert len({peer for _, _, peer in master.seen}) == 1  # one connection for all five
    assert sleeps == []


def test_a_connection_the_master_dropped_is_replaced_without_a_retry(master: _Master) -> None:
    master.answers = [ok({"worker_count": 2}, close=True), ok({"worker_count": 3})]
    sleeps: list[float] = []
    with client_of(master.url, sleeps) as client:
        assert (client.worker_count(), client.worker_count()) == (2, 3)
    assert len({peer for _, _, peer in master.seen}) == 2
    assert sleeps == []  # not a failure: nothing had reached the master


def test_5xx_is_retried_and_4xx_is_not(master: _Master) -> None:
    master.answers = [status(503, "busy"), status(502, "gateway"), ok({"worker_count": 4})]
    sleeps: list[float] = []
    with client_of(master.url, sleeps) as client:
        assert client.worker_count() == 4
        assert len(sleeps) == 2
        master.answers = [status(404, "no such route")]
        with pytest.raises(lm.LocustHTTPError) as info:
            client.worker_count()
    assert (info.value.status_code, info.value.body) == (404, "no such route")
    assert info.value.url == f"{master.url}/worker-count"
    assert len(sleeps) == 2


def test_an_answer_cut_short_is_a_connection_error_after_the_budget(master: _Master) -> None:
    master.answers = [cut_short, cut_short, cut_short]
    sleeps: list[float] = []
    with client_of(master.url, sleeps) as client, pytest.raises(lm.LocustConnectionError):
        client.worker_count()
    assert len(sleeps) == 2


def test_auth_and_headers_reach_the_master(master: _Master) -> None:
    with client_of(master.url, [], auth=("u", "p"), headers={"X-Team": "perf"}) as client:
        client.worker_count()
    [(_, headers, _)] = master.seen
    assert headers["Authorization"] == "Basic dTpw"  # base64 of "u:p"
    assert headers["X-Team"] == "perf"


def test_a_proxy_from_the_environment_is_honoured(
    master: _Master, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", master.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    # Nothing listens at 192.0.2.1 (TEST-NET-1): only the proxy can answer.
    with client_of("http://192.0.2.1:8089", [], timeout=5) as client:
        assert client.worker_count() == 1
    [(path, _, _)] = master.seen
    assert path == "http://192.0.2.1:8089/worker-count"  # a proxy's absolute form


def raw(*chunks: bytes) -> Answer:
    """Answer with bytes as they are, then close: framing the handler would not write."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        for chunk in chunks:
            handler.wfile.write(chunk)
            handler.wfile.flush()
        handler.close_connection = True

    return answer


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize(
    "answer",
    [
        # No length: the body ends with the connection (HTTP/1.0 style).
        raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", b'{"worker_count": 7}'),
        raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b'6\r\n{"work\r\n',
            b'd\r\ner_count": 7}\r\n0\r\n\r\n',
        ),
        raw(CONTINUE + b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n", b'{"worker_count": 7}'),
        # The header, then the body, each in pieces a read may return.
        raw(b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 19\r\n\r", b'\n{"worker_', b'count": 7}'),
    ],
    ids=["until-close", "chunked", "continue", "in-pieces"],
)
def test_answers_framed_every_way_http_allows_are_read_whole(
    master: _Master, answer: Answer
) -> None:
    master.answers = [answer, ok({"worker_count": 8})]
    with client_of(master.url, []) as client:
        assert (client.worker_count(), client.worker_count()) == (7, 8)


def test_the_charset_the_master_names_decodes_the_body(master: _Master) -> None:
    text = json.dumps({"message": "caf\u00e9", "success": False}, ensure_ascii=False)
    body = text.encode("latin-1")
    head = (
        "HTTP/1.1 400 Bad\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    master.answers = [raw(head.encode(), body)]
    with client_of(master.url, []) as client, pytest.raises(lm.LocustHTTPError) as info:
        client.worker_count()
    assert info.value.body == text


@pytest.mark.parametrize("scheme", ["http", "https"])  # kept-alive reads, and httpx alone
def test_a_header_that_would_split_the_request_is_refused_up_front(scheme: str) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        LocustClient(f"{scheme}://127.0.0.1:9", headers={"X-Team": "perf\r\nX-Injected: 1"})


class _Replay(socketserver.ThreadingTCPServer):
    """Answers any request with the same bytes, then closes."""

    daemon_threads = True
    allow_reuse_address = True
    reply = b""


class _ReplayHandler(socketserver.BaseRequestHandler):
    server: _Replay

    def handle(self) -> None:
        self.request.recv(65536)
        self.request.sendall(self.server.reply)
        self.request.shutdown(socket.SHUT_WR)


@pytest.fixture(scope="module")
def replay() -> Iterator[_Replay]:
    yield from serving(_Replay(("127.0.0.1", 0), _ReplayHandler))


_HEADS = st.sampled_from(
    [b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"]
)


# The opener fixture only picks a class: the same for every example.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=_HEADS, tail=st.binary(max_size=300))
def test_whatever_comes_back_is_a_body_or_a_locust_error(
    replay: _Replay, opener: str, head: bytes, tail: bytes
) -> None:
    """An answer is untrusted input: any bytes give text or one of the client's errors."""
    replay.reply = head + tail
    gets = _keepalive.KeptAliveGets(
        "127.0.0.1", replay.server_address[1], "", headers={}, auth=None, timeout=2,
        opener=OPENERS[opener],
    )  # fmt: skip
    try:
        assert isinstance(gets.get("stats/requests", "http://x/stats/requests"), str)
    except lm.LocustError:
        pass  # refused as it should be: anything else fails the test
    finally:
        gets.close()
