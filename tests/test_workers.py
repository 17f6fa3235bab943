"""The Monitor's worker threads (loadmanager/_workers.py), on real threads."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from loadmanager._workers import Workers


def _named(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def test_no_more_calls_run_at_once_than_there_are_workers() -> None:
    workers = Workers(2, "wk-limit")
    gate, running, most = threading.Event(), [0], [0]
    lock = threading.Lock()

    def call() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        gate.wait(10)
        with lock:
            running[0] -= 1

    for _ in range(5):
        workers.submit(call)
    deadline = time.monotonic() + 10
    while running[0] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # a third call, were it free to, would have started by now
    assert running[0] == 2
    gate.set()
    workers.shutdown()
    assert (most[0], running[0]) == (2, 0)


def test_threads_start_with_the_first_call_and_end_with_shutdown() -> None:
    workers = Workers(3, "wk-life")
    assert _named("wk-life") == []
    workers.submit(lambda: None)
    assert len(_named("wk-life")) == 3
    workers.shutdown()
    assert _named("wk-life") == []


def test_shutdown_runs_what_is_queued_then_refuses_more() -> None:
    workers = Workers(1, "wk-drain")
    done: list[int] = []
    gate = threading.Event()
    workers.submit(gate.wait, 10)
    for i in range(20):
        workers.submit(done.append, i)
    gate.set()
    assert not workers.closed
    workers.shutdown()
    assert workers.closed
    assert done == list(range(20))  # all of them, in the order they came
    with pytest.raises(RuntimeError, match="shut down"):
        workers.submit(done.append, 99)


def test_a_call_that_raises_is_logged_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    workers = Workers(1, "wk-fail")
    done: list[str] = []

    def fail() -> None:
        raise ZeroDivisionError("boom")

    with caplog.at_level(logging.ERROR, logger="loadmanager"):
        workers.submit(fail)
        workers.submit(done.append, "after")
        workers.shutdown()
    assert done == ["after"]
    assert "ZeroDivisionError: boom" in caplog.text


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Workers(0, "wk-none")
