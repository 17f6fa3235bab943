"""Polls sent on one thread (the Monitor's loop) against real sockets that misbehave.

``LocustClient.send_poll`` writes a poll's request on a kept-alive connection
and returns; ``PollLoop`` waits on many such sockets at once. Only a whole,
parsed 2xx answer makes a poll: anything else ends as ``None``, and the
Monitor then polls the usual way (``LocustClient.poll``, with its retries and
errors). The happy path against a real Locust master, with and without the
plugin, is in test_orchestrator_real.py and test_provisioning_local.py, which
check that their polls went this way.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import tenacity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager._poll_loop import PollLoop
from loadmanager.locust import LocustClient
from loadmanager.testing.fake_master import DATA

pytest.importorskip("httptools", reason="polls go one thread only with the fast extra")

STATS = (DATA / "stats_requests.json").read_text()
PLUGIN = json.loads((DATA / "plugin_figures.json").read_text())
WITH_STATS = json.dumps({**PLUGIN, "stats": json.loads(STATS)})

Answer = Callable[[BaseHTTPRequestHandler], None]


class _Master(ThreadingHTTPServer):
    """A master whose answers to each route are scripted, then the default."""

    daemon_threads = True

    def __init__(self, plugin: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.plugin = plugin  # the plugin route's body; 404 when None
        self.script: list[Answer] = []
        self.peers: list[tuple[str, int]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Master

    def do_GET(self) -> None:
        self.server.peers.append(self.client_address)
        if self.server.script:
            self.server.script.pop(0)(self)
        elif self.path == "/loadmanager/v1/figures":
            if self.server.plugin is None:
                body(404, "not found")(self)
            else:
                body(200, self.server.plugin)(self)
        else:
            body(200, STATS)(self)

    def log_message(self, *args: object) -> None:
        pass


def body(code: int, text: str, *, length: int | None = None) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        data = text.encode()
        handler.send_response(code)
        handler.send_header("Content-Length", str(len(data) if length is None else length))
        handler.end_headers()
        handler.wfile.write(data)
        if length is not None:  # promised more than it sends: the connection ends
            handler.close_connection = True

    return answer


def silent(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(4)  # answers nothing within the client's timeout, nor the test's
    handler.close_connection = True


def serve(server: socketserver.BaseServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def master() -> Iterator[_Master]:
    server = _Master()
    yield from (server for _ in serve(server))


def client_of(url: str, *, timeout: float = 5) -> LocustClient:
    def retrying() -> tenacity.Retrying:
        return tenacity.Retrying(stop=tenacity.stop_after_attempt(1), reraise=True)

    return LocustClient(url, timeout=timeout, retrying=retrying)


def one_poll(client: LocustClient) -> lm.MasterPoll | None:
    """Send a poll through a PollLoop and wait (at most 5 s) for how it ended."""
    sent = client.send_poll()
    assert sent is not None
    loop: PollLoop[str] = PollLoop()
    try:
        loop.add(sent, "item")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ended = loop.wait(0.1)
            if ended:
                [(item, polled)] = ended
                assert item == "item"
                return polled
        raise AssertionError("the poll never ended")
    finally:
        loop.close()


def test_a_poll_goes_the_usual_way_until_the_connection_and_the_plugin_are_known(
    master: _Master,
) -> None:
    with client_of(master.url) as client:
        assert client.send_poll() is None  # no connection yet, and the plugin not asked
        usual = client.poll()
        polls = [one_poll(client) for _ in range(3)]
    assert all(p == usual for p in polls)
    assert usual.figures is None
    assert len(set(master.peers)) == 1  # one kept-alive connection for all


def test_a_plugin_poll_carries_the_figures_and_the_statistics(master: _Master) -> None:
    master.plugin = WITH_STATS
    with client_of(master.url) as client:
        usual = client.poll()
        polled = one_poll(client)
    assert polled is not None
    assert polled == usual
    assert polled.figures is not None
    assert polled.figures.endpoints


@pytest.mark.parametrize(
    ("answer", "plugin", "reused"),
    [
        (body(500, "boom"), False, True),
        (body(200, "not json"), False, True),
        (body(200, json.dumps(PLUGIN)), True, True),  # the plugin's, without the statistics
        (body(200, STATS, length=len(STATS) + 100), False, False),  # cut short
        (silent, False, False),
    ],
    ids=["status", "not-json", "plugin-without-stats", "cut-short", "no-answer"],
)
def test_anything_but_a_whole_parsed_answer_is_none_and_the_usual_poll_follows(
    master: _Master, answer: Answer, plugin: bool, reused: bool
) -> None:
    master.plugin = WITH_STATS if plugin else None
    with client_of(master.url, timeout=0.5) as client:
        client.poll()
        master.script = [answer]
        started = time.monotonic()
        assert one_poll(client) is None
        assert time.monotonic() - started < 3
        after = client.poll()  # the usual poll, on the same connection or a new one
        assert after.stats.aggregated is not None
    assert (len(set(master.peers)) == 1) is reused


class _Replay(socketserver.ThreadingTCPServer):
    """Has no plugin, answers the first poll with the statistics, the second with ``reply``."""

    daemon_threads = True
    allow_reuse_address = True
    reply = b""


class _ReplayHandler(socketserver.BaseRequestHandler):
    server: _Replay

    def handle(self) -> None:
        stats = STATS.encode()
        answers = [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(stats) + stats]
        answers.append(self.server.reply)
        while answers:
            request = self.request.recv(65536)
            if b"/loadmanager/" in request:
                self.request.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            elif request:
                self.request.sendall(answers.pop(0))
            else:
                return
        self.request.shutdown(socket.SHUT_WR)


@pytest.fixture(scope="module")
def replay() -> Iterator[_Replay]:
    server = _Replay(("127.0.0.1", 0), _ReplayHandler)
    yield from (server for _ in serve(server))


_HEADS = st.sampled_from(
    [b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"]
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(head=_HEADS, tail=st.binary(max_size=300) | st.just(STATS.encode()))
def test_whatever_comes_back_ends_the_poll_with_figures_or_none(
    replay: _Replay, head: bytes, tail: bytes
) -> None:
    """An answer is untrusted input: the loop never raises on it, and never waits forever."""
    replay.reply = head + tail
    with client_of(f"http://127.0.0.1:{replay.server_address[1]}") as client:
        client.poll()
        polled = one_poll(client)
    assert polled is None or isinstance(polled, lm.MasterPoll)


def test_a_wake_ends_a_wait_at_once_and_close_gives_back_what_was_in_flight(
    master: _Master,
) -> None:
    loop: PollLoop[str] = PollLoop()
    with client_of(master.url, timeout=30) as client:
        client.poll()
        master.script = [silent]
        sent = client.send_poll()
        assert sent is not None
        loop.add(sent, "in flight")
        assert len(loop) == 1
        threading.Timer(0.2, loop.wake).start()
        started = time.monotonic()
        assert loop.wait(10) == []
        assert time.monotonic() - started < 5
        assert loop.close() == ["in flight"]
        loop.wake()  # after close: does nothing, raises nothing
        assert sent.sock.fileno() == -1  # its connection closed


class _Swarmable(_Master):
    """Answers the start's POSTs as Locust does, and every second poll with a 500."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0


class _SwarmableHandler(_Handler):
    server: _Swarmable

    def do_GET(self) -> None:
        self.server.gets += self.path == "/stats/requests"
        if self.path == "/stats/requests" and self.server.gets % 2 == 0:
            self.server.script = [body(500, "the loop's request fails")]
        super().do_GET()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body(200, json.dumps({"success": True, "message": "Swarming started"}))(self)


def test_a_monitor_whose_loop_answers_fail_polls_the_usual_way_and_loses_no_slot() -> None:
    from loadmanager.testing.seed import seed_load_test_body

    server = _Swarmable()
    server.RequestHandlerClass = _SwarmableHandler
    for _ in serve(server):
        with lm.connect("memory://") as storage, lm.Orchestrator(
            storage,
            lm.ClusterRegistry({"c": server.url}),
            poll_interval=0.5,
            client_factory=lambda config: client_of(config.url, timeout=2),
        ) as orch:  # fmt: skip
            spec = {**seed_load_test_body(), "locustClusterId": "c"}
            test = orch.create_load_test(spec, actor=spec["createdBy"])
            run = orch.start_run(test.id, actor=spec["createdBy"])
            deadline = time.monotonic() + 20
            while orch.monitor.polls_looped < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            snapshots = orch.snapshots(run.id)
            now = orch.get_run(run.id)
            assert now.status is lm.RunStatus.RUNNING, now.failure_reason
            looped, pooled = orch.monitor.polls_looped, orch.monitor.polls_pooled
    assert looped >= 4
    assert pooled >= looped  # each failed answer asked again in the pool, plus the first poll
    slots = [s.slot for s in snapshots]
    assert len(slots) >= 4
    assert slots == list(range(slots[0], slots[0] + len(slots)))  # none lost, none twice


def test_only_the_pools_polls_count_against_the_backlog() -> None:
    """30 runs at 0.5 s with room for one poll in the pool: the loop polls every slot.

    Counting the loop's polls against the backlog too would leave room for
    one poll a tick (ten an interval), and each run would miss two slots of
    three.
    """
    from loadmanager.monitor import Monitor
    from loadmanager.testing.seed import seed_load_test_body

    server = _Swarmable()
    server.RequestHandlerClass = _PlainHandler
    clusters = {f"c{i}": server.url for i in range(30)}
    for _ in serve(server):
        with lm.connect("memory://") as storage, lm.Orchestrator(
            storage,
            lm.ClusterRegistry(clusters),
            poll_interval=0.5,
            monitor=False,
            client_factory=lambda config: client_of(config.url, timeout=2),
        ) as orch:  # fmt: skip
            body = seed_load_test_body()
            runs = [
                orch.start_run(
                    orch.create_load_test(
                        {**body, "locustClusterId": c}, actor=body["createdBy"]
                    ).id,
                    actor=body["createdBy"],
                )
                for c in clusters
            ]
            monitor = Monitor(
                storage, orch._lifecycle, clock=orch.clock, owner=orch.owner,
                knows=orch.clusters.__contains__, interval=0.5, max_backlog=1,
            )  # fmt: skip
            monitor.start()
            try:
                time.sleep(6)
            finally:
                monitor.stop()
            slots = [[s.slot for s in orch.snapshots(r.id)] for r in runs]
    assert monitor.polls_looped >= 30 * 4
    for kept in slots:
        assert len(kept) >= 4
        assert kept == list(range(kept[0], kept[0] + len(kept)))  # none missed since the first


class _PlainHandler(_SwarmableHandler):
    def do_GET(self) -> None:
        _Handler.do_GET(self)


class _Buggy:
    """A sent poll whose answer is readable but whose reading raises: a bug, injected."""

    timeout = 5.0

    def __init__(self) -> None:
        self.sock, self.peer = socket.socketpair()
        self.peer.send(b"x")
        self.cancelled = False

    def receive(self) -> bool:
        return True

    def result(self) -> lm.MasterPoll | None:
        raise RuntimeError("a bug in reading an answer")

    def cancel(self) -> None:
        self.cancelled = True
        self.sock.close()


def test_a_bug_reading_an_answer_ends_that_poll_as_none_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buggy = _Buggy()
    loop: PollLoop[str] = PollLoop()
    try:
        loop.add(buggy, "buggy")
        assert loop.wait(2) == [("buggy", None)]
        assert buggy.cancelled
        assert len(loop) == 0
        assert "reading a poll's answer failed" in caplog.text
    finally:
        loop.close()
        buggy.peer.close()


def test_a_socket_the_selector_refuses_is_an_error_and_nothing_is_added() -> None:
    closed = _Buggy()
    closed.sock.close()
    loop: PollLoop[str] = PollLoop()
    try:
        with pytest.raises(ValueError, match="Invalid file descriptor"):
            loop.add(closed, "closed")
        assert len(loop) == 0
        assert loop.wait(0) == []
    finally:
        loop.close()
        closed.peer.close()
