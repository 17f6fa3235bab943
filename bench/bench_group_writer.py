"""CPU per call of the Monitor's group writer, under contention.

``threads`` callers each store ``calls`` one-snapshot batches through one
``GroupWriter`` whose write sleeps ``write_ms`` (releasing the GIL, as SQLite's
does), the way the Monitor's poll threads finish at once. Prints the process's
CPU and voluntary context switches per call: what joining a group, waiting for
the leader and being woken cost a poll, without the storage's own work.
Asserts nothing (it is not a test).

    python bench/bench_group_writer.py --threads 32 --calls 3000
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Sequence

from loadmanager.held import GroupWriter


def once(threads: int, calls: int, write_ms: float) -> tuple[float, float]:
    """(µs of CPU, voluntary switches) per call."""

    def write(batch: Sequence[object]) -> None:
        time.sleep(write_ms / 1000)

    writer = GroupWriter(write)

    def work() -> None:
        for _ in range(calls):
            writer([None])  # type: ignore[list-item]

    workers = [threading.Thread(target=work) for _ in range(threads)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return 1e6 * cpu / (threads * calls), (after.ru_nvcsw - before.ru_nvcsw) / (threads * calls)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--write-ms", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"# group writer: {args.threads} threads x {args.calls} calls, a {args.write_ms:g} ms"
        f" write. {platform.python_implementation()} {platform.python_version()},"
        f" {os.cpu_count()} cores"
    )
    print(f"# reproduce: python {' '.join(sys.argv)}")
    print(f"{'round':<7}{'CPU us/call':>12}{'switches/call':>15}")
    for n in range(args.rounds):
        cpu, switches = once(args.threads, args.calls, args.write_ms)
        print(f"{n + 1:<7}{cpu:>12.1f}{switches:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
