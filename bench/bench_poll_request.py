"""CPU per poll request: one GET of Locust's ``/stats/requests`` and its parse.

Starts the fan-out bench's simulated masters (bench/_fake_masters.py, bodies
captured from a real run) and, in this one thread, times the process's CPU
for each way loadmanager can read an answer: httpx (the POSTs' client), the
kept-alive socket framed by ``http.client`` (no extras) and by httptools (the
``fast`` extra, which this bench needs); then parsing the answer into
LocustStats with ``json`` and with orjson. Prints microseconds of CPU per
request and the ratios. Asserts nothing (it is not a test).

    python bench/bench_poll_request.py --requests 5000
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from loadmanager.locust import _keepalive, _wire

HERE = Path(__file__).parent


def cpu_per_call(fn: Callable[[], object], count: int) -> float:
    """Microseconds of this process's CPU per call, best of three rounds."""
    for _ in range(min(200, count)):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(count):
            fn()
        best = min(best, (time.process_time() - start) / count * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()

    ports_file = Path(tempfile.mkdtemp(prefix="poll-request-")) / "ports"
    masters = subprocess.Popen([sys.executable, str(HERE / "_fake_masters.py"), "1", ports_file])
    try:
        deadline = time.monotonic() + 30
        while not (ports_file.exists() and ports_file.read_text().split()):
            if time.monotonic() > deadline or masters.poll() is not None:
                raise SystemExit("the simulated master did not start")
            time.sleep(0.05)
        port = int(ports_file.read_text().split()[0])
        url = f"http://127.0.0.1:{port}/stats/requests"
        openers: dict[str, _keepalive.Opener] = {
            "http.client": _keepalive.StdlibConnection,
            "httptools": _keepalive.LlhttpConnection,
        }
        gets = {
            name: _keepalive.KeptAliveGets(
                "127.0.0.1", port, "", headers={}, auth=None, timeout=5, opener=opener
            )
            for name, opener in openers.items()
        }
        body = gets["http.client"].get("stats/requests", url)
        n = args.requests
        print(
            f"# CPU per poll request, /stats/requests ({len(body)} bytes), best of 3 x {n}."
            f" CPython {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"
        )
        print("# reproduce: python bench/bench_poll_request.py")
        with httpx.Client() as client:
            timings = {"GET httpx.Client": cpu_per_call(lambda: client.get(url).text, n // 5)}
        for name, kept in gets.items():
            timings[f"GET kept alive, {name}"] = cpu_per_call(
                functools.partial(kept.get, "stats/requests", url), n
            )
            kept.close()
        # The parser is chosen once per process (_wire._json_loads): time both.
        chosen = _wire._json_loads
        timings["parse, orjson"] = cpu_per_call(lambda: _wire.parse_stats(body, url), n)

        def standard_library() -> Callable[[str], object]:
            return json.loads

        _wire._json_loads = standard_library  # type: ignore[assignment]
        try:
            timings["parse, json"] = cpu_per_call(lambda: _wire.parse_stats(body, url), n)
        finally:
            _wire._json_loads = chosen
        for name, micros in timings.items():
            print(f"{name:32s} {micros:8.1f} us")
        base = timings["GET kept alive, http.client"] + timings["parse, json"]
        fast = timings["GET kept alive, httptools"] + timings["parse, orjson"]
        ratio = fast / base
        print(f"# GET + parse: {base:.1f} us without extras, {fast:.1f} us with fast: {ratio:.2f}x")
    finally:
        masters.terminate()
        masters.wait()


if __name__ == "__main__":
    main()
