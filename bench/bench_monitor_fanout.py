"""Monitor fan-out: can one Orchestrator keep N runs at Locust's 2 s resolution?

N simulated masters answer from one separate process (bench/_fake_masters.py);
this process runs an Orchestrator that monitors N runs for a fixed time. Reported:
lost polls (poll slots in the window with no snapshot, counted run by run: a
snapshot stored late in its own slot still counts, none is double-counted at the
window's edges), completeness (stored / expected), CPU seconds used by this
process (all its threads), and the p99 poll lag (the gap between two snapshots
of a run beyond the interval). ``--readers K`` runs K threads that compute
500-bucket series of the monitored runs back to back the whole time, to show
whether reads hold up monitoring; ``--reader-processes K`` does the same from K
processes of their own (SQLite). ``--plugin`` makes the masters answer
loadmanager's plugin route as well, histograms growing between answers, so each
poll reads and stores histogram changes as it does on a provisioned cluster.
Asserts nothing.

    python bench/bench_monitor_fanout.py                         # N = 50, 200, 500, 1000
    python bench/bench_monitor_fanout.py --counts 500 --seconds 60 --storage memory
    python bench/bench_monitor_fanout.py --counts 500 --readers 1 --storage sqlite
    python bench/bench_monitor_fanout.py --counts 2000 --storage sqlite --plugin
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from _fake_masters import launch

import loadmanager as lm

HERE = Path(__file__).parent


def _read_back_to_back(
    orch: lm.Orchestrator, run_ids: list[str], stop: threading.Event, done: list[int]
) -> None:
    for run_id in itertools.cycle(run_ids):
        if stop.is_set():
            return
        orch.series(run_id, 500)
        done[0] += 1


_READER_PROCESS = """
import itertools, sys, time
import loadmanager as lm
url, ids, seconds = sys.argv[1], open(sys.argv[2]).read().split(), float(sys.argv[3])
done, end = 0, time.monotonic() + seconds
with lm.connect(url) as storage:
    for run_id in itertools.cycle(ids):
        if time.monotonic() > end:
            break
        storage.metrics.series(run_id, 500)
        done += 1
print(done)
"""


def run(
    count: int,
    seconds: float,
    interval: float,
    storage_kind: str,
    readers: int = 0,
    reader_processes: int = 0,
    plugin: bool = False,
) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="fanout-"))
    masters, ports = launch(count, workdir, plugin)
    try:
        url = "memory://" if storage_kind == "memory" else f"sqlite:///{workdir / 'fanout.db'}"
        registry = lm.ClusterRegistry(
            {f"c{i}": f"http://127.0.0.1:{p}" for i, p in enumerate(ports)}
        )
        with (
            lm.connect(url) as storage,
            lm.Orchestrator(
                storage=storage, clusters=registry, poll_interval=interval, monitor=False
            ) as orch,
        ):
            runs = []
            for i in range(count):
                spec = {
                    "name": f"t{i}",
                    "tenantId": "bench",
                    "envId": "bench",
                    "locustClusterId": f"c{i}",
                    "targetUrl": "http://127.0.0.1:9",
                    "locustfile": "x.py",
                    "defaultUsers": 10,
                    "defaultSpawnRate": 10,
                }
                test = orch.create_load_test(spec, actor="bench")
                runs.append(orch.start_run(test.id, actor="bench"))
            # The Monitor starts once every run has: starting thousands of runs
            # while it polls the first ones measured the starts, not the Monitor.
            orch.monitor.start()
            time.sleep(interval * 2)  # let the first round of polls settle in
            stop, queries = threading.Event(), [0]
            reading = [
                threading.Thread(
                    target=_read_back_to_back,
                    args=(orch, [r.id for r in runs], stop, queries),
                    daemon=True,
                )
                for _ in range(readers)
            ]
            for thread in reading:
                thread.start()
            ids_file = workdir / "run_ids"
            ids_file.write_text("\n".join(r.id for r in runs))
            # Readers in processes of their own (a notebook, another worker)
            # share the database file but not this process's GIL.
            others = [
                subprocess.Popen(
                    [sys.executable, "-c", _READER_PROCESS, url, str(ids_file), str(seconds)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(reader_processes if storage_kind == "sqlite" else 0)
            ]
            print(f"# measuring {count} runs from pid {os.getpid()}", file=sys.stderr, flush=True)
            started_at = lm.utc_now()
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            time.sleep(seconds)
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            ended_at = lm.utc_now()
            stop.set()
            for thread in reading:
                thread.join()
            for other in others:
                out, _ = other.communicate(timeout=seconds + 60)
                queries[0] += int(out.split()[-1])
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            # Kernel time and context switches show what threads cost a poll.
            user, system = cpu1.ru_utime - cpu0.ru_utime, cpu1.ru_stime - cpu0.ru_stime
            switches = cpu1.ru_nvcsw - cpu0.ru_nvcsw
            looped, pooled = orch.monitor.polls_looped, orch.monitor.polls_pooled
            print(
                f"# user {user:.1f} s, sys {system:.1f} s, {switches} switches;"
                f" polls on the loop {looped}, in the pool {pooled}",
                file=sys.stderr,
            )
            # A slot that began just before the end is polled in its middle:
            # give those polls their time before counting what is missing.
            time.sleep(interval * 1.5)
            expected = count * seconds / interval
            stored, lost, slots, lags = 0, 0, 0, []
            for r in runs:
                began = orch.get_run(r.id).started_at or r.audit.created_at
                first = math.ceil((started_at - began).total_seconds() / interval)
                last = math.ceil((ended_at - began).total_seconds() / interval)
                due = set(range(first, last))  # slots that began inside the window
                # A poll answered late is stored in its own slot with a later
                # time: read one interval past the window, then count slots.
                kept = [
                    s
                    for s in storage.metrics.snapshots(
                        r.id,
                        start=began + timedelta(seconds=first * interval),
                        end=began + timedelta(seconds=(last + 1) * interval),
                    )
                    if s.slot in due
                ]
                lost += len(due - {s.slot for s in kept})
                slots += len(due)
                stamps = [s.timestamp for s in kept]
                stored += len(stamps)
                lags += [
                    max(0.0, (b - a).total_seconds() - interval)
                    for a, b in itertools.pairwise(stamps)
                ]
            failed = len(orch.list_runs(statuses=["failed"], limit=10_000))
        lags.sort()
        return {
            "lost_polls": lost,
            "slots": slots,
            "queries": queries[0],
            "completeness": stored / expected,
            "cpu_s": cpu,
            "cpu_per_s": cpu / seconds,
            "p99_lag_s": lags[int(len(lags) * 0.99)] if lags else float("nan"),
            "median_lag_s": statistics.median(lags) if lags else float("nan"),
            "failed_runs": failed,
        }
    finally:
        masters.terminate()
        masters.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", default="50,200,500,1000")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--storage", default="sqlite,memory")
    parser.add_argument("--readers", type=int, default=0, help="threads computing series")
    parser.add_argument(
        "--reader-processes", type=int, default=0, help="processes computing series (SQLite)"
    )
    parser.add_argument(
        "--plugin",
        action="store_true",
        help="masters answer loadmanager's plugin route too, as provisioned clusters do",
    )
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"# monitor fan-out: {args.seconds:g} s at a {args.interval:g} s interval."
        f" {platform.python_implementation()} {platform.python_version()},"
        f" {os.cpu_count()} cores, {platform.machine()}"
    )
    print(f"# reproduce: python {' '.join(sys.argv)}")
    print(
        f"{'storage':<8}{'N':>6}{'lost polls':>16}{'stored %':>10}{'CPU s':>8}{'CPU/s':>7}"
        f"{'p99 lag s':>11}{'median lag':>12}{'failed':>8}{'series read':>13}"
    )
    for kind in args.storage.split(","):
        for count in map(int, args.counts.split(",")):
            r = run(
                count,
                args.seconds,
                args.interval,
                kind,
                args.readers,
                args.reader_processes,
                args.plugin,
            )
            lost = f"{r['lost_polls']:.0f}/{r['slots']:.0f}"
            print(
                f"{kind:<8}{count:>6}{lost:>16}{100 * (1 - r['lost_polls'] / r['slots']):>10.3f}"
                f"{r['cpu_s']:>8.1f}{r['cpu_per_s']:>7.2f}{r['p99_lag_s']:>11.3f}"
                f"{r['median_lag_s']:>12.3f}{r['failed_runs']:>8.0f}{r['queries']:>13.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
