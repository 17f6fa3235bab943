"""What a poll costs when one thread polls every master: a floor for the Monitor.

One thread, one ``selectors`` loop, a kept-alive socket to each simulated
master (bench/_fake_masters.py), each polled once an interval, its answer
framed by httptools, parsed into ``LocustStats`` and made a snapshot as the
Monitor does, and the snapshots stored a batch every 50 ms: the floor under
the Monitor, which has polled this way since issue 18's twelfth round and
adds the claims, the lifecycle's checks of each answer and the runs' listing
(compare with ``bench_monitor_fanout.py``). Written before the Monitor's loop
to measure the direction first. Prints CPU per poll; asserts nothing (it is
not a test) and needs the ``fast`` extra (httptools, orjson).

    python bench/bench_one_loop_poll.py --counts 2000 --storage sqlite
"""

from __future__ import annotations

import argparse
import platform
import selectors
import socket
import sys
import tempfile
import time
from pathlib import Path

import httptools
from _fake_masters import launch

import loadmanager as lm
from loadmanager.locust import _wire
from loadmanager.testing import make_load_test, make_run

_REQUEST = b"GET /stats/requests HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class _Master:
    """One master's kept-alive socket and the answer being framed on it."""

    def __init__(self, port: int, run_id: str, selector: selectors.BaseSelector) -> None:
        self.url = f"http://127.0.0.1:{port}/stats/requests"
        self.run_id = run_id
        self.slot = 0
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.answer: bytes | None = None
        selector.register(self.sock, selectors.EVENT_READ, self)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.answer, self.body = b"".join(self.body), []


def run(count: int, seconds: float, interval: float, storage_kind: str) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="one-loop-"))
    masters, ports = launch(count, workdir)
    url = "memory://" if storage_kind == "memory" else f"sqlite:///{workdir / 'one-loop.db'}"
    try:
        with lm.connect(url) as storage:
            selector = selectors.DefaultSelector()
            polled = []
            for i, port in enumerate(ports):
                test = storage.load_tests.add(make_load_test(locust_cluster_id=f"c{i}"))
                run_id = storage.runs.add(make_run(test, status=lm.RunStatus.RUNNING)).id
                polled.append(_Master(port, run_id, selector))
            return _loop(storage, selector, polled, seconds, interval)
    finally:
        masters.kill()


def _loop(
    storage: lm.Storage,
    selector: selectors.BaseSelector,
    polled: list[_Master],
    seconds: float,
    interval: float,
) -> dict[str, float]:
    count = len(polled)
    started = time.monotonic()
    # Each master's polls spread evenly over the interval: a pointer goes round.
    due = [started + 0.5 + i * interval / count for i in range(count)]
    at = 0
    pending: list[lm.MetricSnapshot] = []
    flushed = started
    polls = 0
    window: tuple[float, int, float] | None = None
    warm, end = started + 5, started + 5 + seconds
    while (now := time.monotonic()) < end:
        if window is None and now >= warm:
            window = (time.process_time(), polls, now)
        while due[at] <= now:
            polled[at].sock.send(_REQUEST)
            due[at] += interval
            at = (at + 1) % count
        stamp = None
        for key, _ in selector.select(max(0.0, min(due[at] - now, 0.01))):
            master: _Master = key.data
            received = master.sock.recv(262144)
            if not received:
                raise SystemExit(f"{master.url}: the master closed its connection")
            master.parser.feed_data(received)
            if master.answer is not None:
                stats = _wire.parse_stats(master.answer.decode(), master.url)
                master.answer, master.slot = None, master.slot + 1
                stamp = stamp or lm.utc_now()
                pending.append(stats.to_snapshot(master.run_id, stamp, master.slot))
                polls += 1
        if pending and now - flushed > 0.05:
            storage.metrics.add_many(pending)
            pending, flushed = [], now
    assert window is not None
    cpu = time.process_time() - window[0]
    done, wall = polls - window[1], time.monotonic() - window[2]
    return {
        "polls": done,
        "expected": count / interval * wall,
        "cpu_per_s": cpu / wall,
        "ms_per_poll": 1000 * cpu / max(done, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", default="2000")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--storage", default="sqlite", choices=["sqlite", "memory"])
    args = parser.parse_args()
    print(
        f"# one loop polls every master: {args.seconds:.0f} s at {args.interval} s."
        f" CPython {platform.python_version()}, {platform.machine()}"
    )
    print(f"# reproduce: python bench/bench_one_loop_poll.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"{'storage':<8}{'N':>6}{'polls':>9}{'expected':>10}{'CPU/s':>8}{'ms a poll':>11}")
    for count in map(int, args.counts.split(",")):
        r = run(count, args.seconds, args.interval, args.storage)
        print(
            f"{args.storage:<8}{count:>6}{r['polls']:>9.0f}{r['expected']:>10.0f}"
            f"{r['cpu_per_s']:>8.2f}{r['ms_per_poll']:>11.3f}"
        )


if __name__ == "__main__":
    main()
