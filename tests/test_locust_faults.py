"""LocustClient against masters that misbehave: fakes for fault injection only.

The happy path is tested against a real master in test_locust_real.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import tenacity
from hypothesis import assume, given
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.locust import LocustClient, _wire
from loadmanager.testing import fake_master

STATS_BODY = {
    "stats": [
        {"method": "GET", "name": "/items", "num_requests": 10, "num_failures": 1,
         "min_response_time": 1, "max_response_time": 9, "current_rps": 2.5,
         "current_fail_per_sec": 0.1, "avg_response_time": 3.2, "median_response_time": 3,
         "total_rps": 2.0, "total_fail_per_sec": 0.2, "response_time_percentile_0.95": 8,
         "response_time_percentile_0.99": 9, "avg_content_length": 20, "brand_new_field": 1},
        {"method": None, "name": "Aggregated", "num_requests": 10, "num_failures": 1,
         "min_response_time": 1, "max_response_time": 9, "current_rps": 2.5,
         "current_fail_per_sec": 0.1, "avg_response_time": 3.2, "median_response_time": 3,
         "total_rps": 2.0, "total_fail_per_sec": 0.2, "response_time_percentile_0.95": 8,
         "response_time_percentile_0.99": 9, "avg_content_length": 20},
    ],
    "errors": [{"method": "GET", "name": "/items", "error": "500", "occurrences": 1}],
    "total_rps": 2.0, "total_fail_per_sec": 0.2, "fail_ratio": 0.1,
    "current_rps": 2.5, "current_fail_per_sec": 0.1,
    "current_response_time_percentiles": {
        "response_time_percentile_0.5": 3, "response_time_percentile_0.95": 8},
    "workers": [{"id": "w1", "state": "running", "user_count": 5, "cpu_usage": 3.0,
                 "memory_usage": 1000}],
    "worker_count": 1, "state": "running", "user_count": 5, "added_in_locust_9": {"x": 1},
}  # fmt: skip


def recording_retrying(sleeps: list[float], attempts: int = 4) -> Callable[[], tenacity.Retrying]:
    def make() -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(multiplier=0.1),
            sleep=sleeps.append,
            reraise=True,
        )

    return make


def fake(
    handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float], attempts: int = 4
) -> LocustClient:
    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://master/base/")
    return LocustClient(
        "http://master/base", client=http, retrying=recording_retrying(sleeps, attempts)
    )


def test_stats_parse_into_typed_models_ignoring_unknown_fields() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=STATS_BODY)

    stats = fake(handler, []).stats()
    assert seen == ["http://master/base/stats/requests"]
    assert (stats.state, stats.user_count, stats.worker_count) == ("running", 5, 1)
    assert stats.workers[0].id == "w1"
    assert (stats.current_p50, stats.current_p95) == (3, 8)
    [row] = stats.endpoints
    assert (row.key, row.num_requests, row.p95_response_time) == ("GET /items", 10, 8)
    assert stats.aggregated is not None
    assert stats.aggregated.name == "Aggregated"
    assert stats.errors[0].occurrences == 1
    snap = stats.to_snapshot("run1", lm.utc_now())
    assert (snap.total_requests, snap.total_failures, snap.current_p95) == (10, 1, 8)


def test_503_twice_then_success_is_retried_with_recorded_sleeps() -> None:
    answers = iter([503, 503, 200])
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        return httpx.Response(status, json=STATS_BODY if status == 200 else {"e": 1})

    assert fake(handler, sleeps).stats().state == "running"
    assert sleeps == [0.1, 0.2]


def test_4xx_is_not_retried_and_carries_status_and_body() -> None:
    sleeps: list[float] = []
    client = fake(lambda r: httpx.Response(401, text="who are you"), sleeps)
    with pytest.raises(lm.LocustHTTPError) as info:
        client.stats()
    assert (info.value.status_code, info.value.body) == (401, "who are you")
    assert sleeps == []


def test_persistent_5xx_gives_up_after_the_budget() -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(502, text="bad gateway")

    with pytest.raises(lm.LocustHTTPError) as info:
        fake(handler, sleeps, attempts=3).stats()
    assert info.value.status_code == 502
    assert len(calls) == 3
    assert len(sleeps) == 2


def test_swarm_is_not_retried_after_the_master_received_it() -> None:
    sleeps: list[float] = []
    calls: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.content)
        return httpx.Response(503)

    with pytest.raises(lm.LocustHTTPError):
        fake(handler, sleeps).swarm(10, 2)
    assert len(calls) == 1
    assert sleeps == []


def test_swarm_is_retried_when_the_connection_was_never_made() -> None:
    sleeps: list[float] = []
    outcomes = iter(["refuse", "ok"])

    def handler(request: httpx.Request) -> httpx.Response:
        if next(outcomes) == "refuse":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(
            200, json={"success": True, "message": "Swarming started", "host": "h"}
        )

    result = fake(handler, sleeps).swarm(10, 2)
    assert result.message == "Swarming started"
    assert sleeps == [0.1]


def test_swarm_sends_the_form_locust_reads() -> None:
    bodies: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content.decode())
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        return httpx.Response(200, json={"success": True, "message": "ok", "run_time": 30})

    result = fake(handler, []).swarm(
        10, 2.5, host="http://t", run_time="30s", user_classes=["A", "B"], tags=["x"], custom=True
    )
    assert result.run_time_seconds == 30
    form = httpx.QueryParams(bodies[0])
    assert form["user_count"] == "10"
    assert form["spawn_rate"] == "2.5"
    assert form["host"] == "http://t"
    assert form["run_time"] == "30s"
    assert form.get_list("user_classes") == ["A", "B"]
    assert form.get_list("tags") == ["x"]
    assert form["custom"] == "true"


def test_success_false_becomes_a_rejection_with_locusts_message() -> None:
    body = {"success": False, "message": "Invalid user_count value", "host": None}
    client = fake(lambda r: httpx.Response(200, json=body), [])
    with pytest.raises(lm.LocustRejectedError) as info:
        client.swarm(1, 1)
    assert info.value.message == "Invalid user_count value"


@pytest.mark.parametrize(
    "body",
    ["<html>oops</html>", "[1, 2]", json.dumps({"stats": "no"}), json.dumps({"stats": []})],
)
def test_a_body_locust_would_not_send_is_a_response_error_with_the_body(body: str) -> None:
    client = fake(lambda r: httpx.Response(200, text=body), [])
    with pytest.raises(lm.LocustResponseError) as info:
        client.stats()
    assert info.value.body == body


_JSON_VALUES = st.recursive(
    # orjson reads an integer past 64 bits as a float (no Locust figure comes near).
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(value=_JSON_VALUES)
def test_answers_read_as_pythons_json_parser_reads_them(value: object) -> None:
    """With the fast extra orjson parses answers; what it refuses and Python's
    parser takes (NaN and Infinity, which Flask writes; lone surrogates) must
    still read the same."""
    text = json.dumps(value)
    assert repr(_wire.parse_json(text, "http://m/x")) == repr(json.loads(text))


@given(text=st.text(max_size=40) | st.sampled_from(["NaN", "[1e999]", '{"a": 1,}', '"\\ud800"']))
def test_text_is_json_or_a_response_error_as_pythons_parser_decides(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(lm.LocustResponseError):
            _wire.parse_json(text, "http://m/x")
    else:
        assume(not _past_64_bits(expected))  # the one documented difference (_wire._json_loads)
        assert repr(_wire.parse_json(text, "http://m/x")) == repr(expected)


def _past_64_bits(value: object) -> bool:
    if isinstance(value, dict):
        return any(_past_64_bits(v) for v in value.values())
    if isinstance(value, list):
        return any(_past_64_bits(v) for v in value)
    return type(value) is int and not -(2**63) <= value < 2**64


def test_malformed_csv_is_a_response_error() -> None:
    client = fake(lambda r: httpx.Response(200, text="Type,Name\nGET,/x\n"), [])
    with pytest.raises(lm.LocustResponseError):
        client.stats_csv()


def test_connection_refused_is_a_connection_error_after_the_budget() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    client = LocustClient(f"http://127.0.0.1:{port}", retrying=recording_retrying(sleeps, 3))
    with client, pytest.raises(lm.LocustConnectionError) as info:
        client.stats()
    assert len(sleeps) == 2
    assert info.value.url == f"http://127.0.0.1:{port}/stats/requests"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers: a hung master."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_hung_master_times_out_in_bounded_time(silent_server: int) -> None:
    sleeps: list[float] = []
    client = LocustClient(
        f"http://127.0.0.1:{silent_server}", timeout=0.3, retrying=recording_retrying(sleeps, 2)
    )
    started = time.monotonic()
    with client, pytest.raises(lm.LocustTimeoutError):
        client.stats()
    assert time.monotonic() - started < 3
    assert len(sleeps) == 1


def test_a_closed_client_is_a_runtime_error() -> None:
    client = fake(lambda r: httpx.Response(200, json=STATS_BODY), [])
    client.close()
    with pytest.raises(RuntimeError):
        client.stats()


def test_auth_and_headers_reach_the_master() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"worker_count": 3})

    transport = httpx.MockTransport(handler)
    with LocustClient(
        "https://lb.example.com/locust/", auth=("u", "p"), headers={"X-Team": "perf"}
    ) as client:
        client._http._transport = transport  # route the real client's requests to the fake
        assert client.worker_count() == 3
    assert seen[0].url == "https://lb.example.com/locust/worker-count"
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert seen[0].headers["x-team"] == "perf"


# -- one poll: loadmanager's plugin carrying the statistics, or not ----------------

PLUGIN_BODY = json.loads((fake_master.DATA / "plugin_figures.json").read_text())


def plugin_master(plugin: Callable[[], httpx.Response]) -> tuple[LocustClient, list[str]]:
    """A master answering STATS_BODY, and the plugin route with ``plugin()``."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/base")
        sent.append(path)
        return (
            plugin() if path == "/loadmanager/v1/figures" else httpx.Response(200, json=STATS_BODY)
        )

    return fake(handler, [], attempts=2), sent


def test_a_plugin_carrying_the_statistics_makes_a_poll_one_request() -> None:
    client, sent = plugin_master(
        lambda: httpx.Response(200, json={**PLUGIN_BODY, "stats": STATS_BODY})
    )
    polled = client.poll()
    assert sent == ["/loadmanager/v1/figures"]
    assert polled.stats == client.stats()
    assert polled.figures == client.figures()
    assert polled.figures is not None
    assert polled.figures_error is None


def test_a_plugin_from_before_the_statistics_costs_a_second_request() -> None:
    client, sent = plugin_master(lambda: httpx.Response(200, json=PLUGIN_BODY))
    polled = client.poll()
    assert sent == ["/loadmanager/v1/figures", "/stats/requests"]
    assert polled.stats == client.stats()
    assert polled.figures is not None


def test_a_master_without_the_plugin_is_asked_for_it_once() -> None:
    client, sent = plugin_master(lambda: httpx.Response(404, text="Not Found"))
    first, second = client.poll(), client.poll()
    assert sent == ["/loadmanager/v1/figures", "/stats/requests", "/stats/requests"]
    assert first.figures is second.figures is None
    assert first.figures_error is second.figures_error is None


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(500, text="boom"), lm.LocustHTTPError),
        (httpx.Response(200, text="[1, 2]"), lm.LocustResponseError),
        (
            httpx.Response(200, json={**PLUGIN_BODY, "stats": {"stats": "no"}}),
            lm.LocustResponseError,
        ),
    ],
)
def test_a_failing_plugin_leaves_the_statistics_and_says_why(
    answer: httpx.Response, error: type[lm.LocustError]
) -> None:
    client, sent = plugin_master(lambda: answer)
    polled = client.poll()
    assert polled.stats == client.stats()
    assert polled.figures is None
    assert isinstance(polled.figures_error, error)
    assert sent[-2:] == ["/stats/requests", "/stats/requests"]  # fell back, then the check


@given(
    field=st.sampled_from([*PLUGIN_BODY, "stats"]),
    value=_JSON_VALUES,
)
def test_any_plugin_answer_gives_the_statistics_or_a_locust_error(
    field: str, value: object
) -> None:
    """Each field of a real plugin answer (and the statistics it carries) set
    to anything: a poll has the statistics and the figures, or the statistics
    and a typed reason, never another exception."""
    body = json.dumps({**PLUGIN_BODY, "stats": STATS_BODY, field: value})
    client, _ = plugin_master(lambda: httpx.Response(200, text=body))
    polled = client.poll()
    assert polled.stats == _wire.parse_stats(json.dumps(STATS_BODY), "http://m/x") or (
        field == "stats" and polled.figures is not None
    )
    assert (polled.figures is None) == isinstance(polled.figures_error, lm.LocustResponseError)
