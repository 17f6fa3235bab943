"""Many simulated Locust masters in one process, for the monitor fan-out benchmark.

Each listens on its own 127.0.0.1 port and answers the routes the Monitor uses
with bodies captured from a real run (loadmanager/testing/data), made distinct
per master. With ``plugin``, they also answer loadmanager's plugin route
(``/loadmanager/v1/figures``, captured from a real master with the plugin) and
its histograms grow with every answer, as a live run's do, so that each poll
has histogram changes to store; like the plugin, it carries the master's
``/stats/requests`` answer under ``stats``.
Not a test double for correctness: only for measuring the Monitor at scale.

    python bench/_fake_masters.py COUNT PORTS_FILE [plugin]
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent.parent / "loadmanager" / "testing" / "data"


def stats_answer(index: int) -> dict[str, Any]:
    stats: dict[str, Any] = json.loads((DATA / "stats_requests.json").read_text())
    stats["user_count"] = 10 + index % 90
    stats["state"] = "running"
    for row in stats["stats"]:
        row["num_requests"] += index
    return stats


def bodies(index: int) -> dict[str, bytes]:
    return {
        "GET /stats/requests": json.dumps(stats_answer(index)).encode(),
        "GET /stats/requests/csv": (DATA / "stats_requests.csv").read_bytes(),
        "POST /swarm": b'{"success": true, "message": "Swarming started", "host": null}',
        "POST /stop": b'{"success": true, "message": "Test stopped"}',
        "POST /stats/reset": b"ok",
    }


class GrowingFigures:
    """The plugin's answer (its format 2), every histogram bucket a few requests
    fuller each time."""

    def __init__(self, index: int) -> None:
        doc = json.loads((DATA / "plugin_figures.json").read_text())  # captured in format 1
        for row in [*doc["entries"], doc["total"]]:
            counted = sorted((int(k), v) for k, v in row.pop("histogram").items())
            row["buckets"] = [k for k, _ in counted]
            row["counts"] = [v for _, v in counted]
        doc["format"] = 2
        doc["stats"] = stats_answer(index)
        self.doc = doc
        self.step = 1 + index % 3

    def __call__(self) -> bytes:
        for row in [*self.doc["entries"], self.doc["total"]]:
            counts = row["counts"]
            row["counts"] = [count + self.step for count in counts]
            row["numRequests"] += self.step * len(counts)
        return json.dumps(self.doc).encode()


async def serve(index: int, plugin: bool) -> int:
    answers = bodies(index)
    figures = GrowingFigures(index) if plugin else None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                if length:
                    await reader.readexactly(length)
                route = f"{method} {path.split('?')[0]}"
                if figures is not None and route == "GET /loadmanager/v1/figures":
                    body: bytes | None = figures()
                else:
                    body = answers.get(route)
                status = "200 OK" if body is not None else "404 Not Found"
                body = body if body is not None else b"{}"
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=64)
    return int(server.sockets[0].getsockname()[1])


def launch(
    count: int, workdir: Path, plugin: bool = False
) -> tuple[subprocess.Popen[bytes], list[int]]:
    """Start ``count`` simulated masters in a process of their own: it and their ports."""
    ports_file = workdir / "ports"
    masters = subprocess.Popen(
        [sys.executable, __file__, str(count), str(ports_file), *(["plugin"] if plugin else [])]
    )
    deadline = time.monotonic() + 60
    while not (ports_file.exists() and len(ports_file.read_text().split()) == count):
        if time.monotonic() > deadline or masters.poll() is not None:
            masters.kill()
            raise SystemExit("the simulated masters did not start")
        time.sleep(0.1)
    return masters, [int(p) for p in ports_file.read_text().split()]


async def main(count: int, ports_file: Path, plugin: bool) -> None:
    ports = [await serve(i, plugin) for i in range(count)]
    ports_file.write_text("\n".join(map(str, ports)))
    await asyncio.Event().wait()


if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:] == ["plugin"]))
