"""LocustClient's kept-alive GETs against real sockets that misbehave.

The GETs of a plain-HTTP master go over ``http.client`` connections kept alive
(loadmanager/locust/_keepalive.py); these tests check that this path keeps the
client's contract: the same errors, the same retries, auth and headers, and a
connection the master dropped is replaced without a retry's wait. The happy
path against a real master is in test_locust_real.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import tenacity

import loadmanager as lm
from loadmanager.locust import LocustClient

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


@pytest.fixture
def master() -> Iterator[_Master]:
    server = _Master([])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


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
