"""CPU of a poll's plugin work, stage by stage, against histogram size.

One run polled ``polls`` times in a row, each answer a real plugin answer (with
the ``/stats/requests`` figures it carries) whose histograms grew since the
last: how many microseconds each stage of a poll takes in this thread. The
stages are reading the answer (``parse``), the snapshot from the statistics
and the changes (``snapshot``), the histogram changes since the previous poll
(``changes``) and the document SQLite stores (``document``). ``--buckets``
widens every histogram to that many of Locust's buckets (exact below 100 ms,
10 ms steps to 1 s, then 100 ms), as a service whose latencies spread does:
the captured answer holds 5-17 an endpoint, real services hundreds, and every
per-bucket cost scales with them. Asserts nothing (it is not a test).

    python bench/bench_plugin_poll.py                  # captured, then 200 buckets
    python bench/bench_plugin_poll.py --buckets 0 400  # 0: the captured answer
    python bench/bench_plugin_poll.py --format 1       # the plugin's answers before format 2
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs

from loadmanager import _serialization
from loadmanager.deltas import HistogramDeltas
from loadmanager.locust import _wire
from loadmanager.locust.stats import LocustStats
from loadmanager.repositories.sqlite import _snapshot_doc

# How SQLite writes a snapshot's document (json.dumps before compact_json).
write = getattr(_serialization, "compact_json", lambda doc: json.dumps(doc, separators=(",", ":")))
ONE_STEP = "histograms" in inspect.signature(LocustStats.to_snapshot).parameters
DATA = Path(__file__).parent.parent / "loadmanager" / "testing" / "data"
BEGAN = datetime(2026, 1, 1, tzinfo=timezone.utc)


def locust_buckets(count: int) -> list[int]:
    """The first ``count`` buckets Locust rounds response times into, from 1 ms."""
    grid = [*range(1, 100), *range(100, 1000, 10), *range(1000, 100_000, 100)]
    return grid[:count]


def answers(buckets: int, polls: int, form: int) -> list[str]:
    """Successive plugin answers of one run, every bucket a little fuller each time."""
    doc: dict[str, Any] = json.loads((DATA / "plugin_figures.json").read_text())
    doc["stats"] = json.loads((DATA / "stats_requests.json").read_text())
    rows = [*doc["entries"], doc["total"]]
    if buckets:
        for row in rows:
            row["histogram"] = {str(b): 1 for b in locust_buckets(buckets)}
    bodies = []
    for step in range(polls):
        for row in rows:
            for bucket in row["histogram"]:
                row["histogram"][bucket] += 1 + step % 3
        bodies.append(json.dumps(doc if form == 1 else as_format_2(doc)))
    return bodies


def as_format_2(doc: dict[str, Any]) -> dict[str, Any]:
    """The answer as the plugin writes it since format 2: histograms as two arrays."""

    def row(entry: dict[str, Any]) -> dict[str, Any]:
        counted = sorted((int(k), v) for k, v in entry["histogram"].items())
        rest = {k: v for k, v in entry.items() if k != "histogram"}
        return {**rest, "buckets": [k for k, _ in counted], "counts": [v for _, v in counted]}

    return {
        **doc,
        "format": 2,
        "entries": [row(e) for e in doc["entries"]],
        "total": row(doc["total"]),
    }


def parser() -> tuple[Callable[[str], Any], Callable[[Any], tuple[Any, Any]]]:
    """(how an answer arrives, how it is read): untimed, then timed."""
    plugin = getattr(_wire, "parse_plugin", None)
    if plugin is not None:
        return (lambda body: body), (lambda body: plugin(body, "http://m/loadmanager/v1/figures"))

    def arrive(body: str) -> tuple[str, str]:  # before the plugin carried the statistics:
        doc = json.loads(body)  # two answers, /stats/requests' and the plugin's
        return json.dumps(doc.pop("stats")), json.dumps(doc)

    def read(bodies: tuple[str, str]) -> tuple[Any, Any]:
        stats = _wire.parse_stats(bodies[0], "http://m/stats/requests")
        return _wire.parse_figures(bodies[1], "http://m/loadmanager/v1/figures"), stats

    return arrive, read


def once(buckets: int, polls: int, form: int) -> dict[str, float]:
    arrive, parse = parser()
    bodies = [arrive(body) for body in answers(buckets, polls, form)]
    deltas = HistogramDeltas(lambda run_id, since: [])
    spent = dict.fromkeys(("parse", "snapshot", "changes", "document"), 0.0)
    for slot, body in enumerate(bodies):
        t0 = time.process_time()
        figures, stats = parse(body)
        t1 = time.process_time()
        changes = deltas.changes("run-1", slot, figures)
        t2 = time.process_time()
        at = BEGAN + timedelta(seconds=2 * slot)
        if ONE_STEP:  # as the lifecycle makes it: the snapshot with its histograms
            snapshot = stats.to_snapshot("run-1", at, slot, changes)
        else:  # before: made, then evolved with them
            snapshot = attrs.evolve(stats.to_snapshot("run-1", at, slot), histograms=changes)
        t3 = time.process_time()
        write(_snapshot_doc(snapshot))
        t4 = time.process_time()
        for stage, took in zip(spent, (t1 - t0, t3 - t2, t2 - t1, t4 - t3), strict=True):
            spent[stage] += took
    return {stage: 1e6 * took / polls for stage, took in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--buckets", type=int, nargs="+", default=[0, 200])
    ap.add_argument("--polls", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--format",
        type=int,
        default=2,
        help="the plugin's answer format: 1 (histograms keyed by text) or 2",
    )
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}")
    print(f"{'buckets/row':>11}  {'parse':>7}  {'snapshot':>8}  {'changes':>7}  "
          f"{'document':>8}  {'total us':>8}")  # fmt: skip
    for buckets in args.buckets:
        runs = [once(buckets, args.polls, args.format) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: sum(r.values()))
        label = "captured" if buckets == 0 else str(buckets)
        figures = [best[stage] for stage in ("parse", "snapshot", "changes", "document")]
        print(f"{label:>11}  " + "  ".join(f"{f:7.1f}" for f in figures) + f"  {sum(figures):8.1f}")


if __name__ == "__main__":
    main()
