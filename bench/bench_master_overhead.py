"""What monitoring costs the Locust master: its CPU with and without the Monitor.

A real master and one worker load a local target in two phases of equal length
and load: first driven by LocustClient alone (nobody polls), then as a run of an
Orchestrator whose Monitor polls every interval. The master's CPU time is read
from /proc. Asserts nothing.

    python bench/bench_master_overhead.py --seconds 30
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import loadmanager as lm
from loadmanager.testing.target import TargetServer

HERE = Path(__file__).parent
LOCUSTFILE = HERE.parent / "examples" / "locustfile.py"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    with (
        TargetServer() as target,
        lm.LocalCluster(LOCUSTFILE, workers=1, host=target.url) as cluster,
    ):
        assert cluster.master is not None
        pid = cluster.master.pid
        with lm.LocustClient(cluster.url) as client:
            client.swarm(args.users, args.users, host=target.url)
            time.sleep(3)
            before = cpu_seconds(pid)
            time.sleep(args.seconds)
            quiet = cpu_seconds(pid) - before
            client.stop()
            time.sleep(3)
        db = Path(tempfile.mkdtemp()) / "overhead.db"
        with (
            lm.connect(f"sqlite:///{db}") as storage,
            lm.Orchestrator(
                storage=storage,
                clusters=lm.ClusterRegistry({"c": cluster.url}),
                poll_interval=args.interval,
            ) as orch,
        ):
            spec = {
                "name": "overhead",
                "tenantId": "b",
                "envId": "b",
                "locustClusterId": "c",
                "targetUrl": target.url,
                "locustfile": "locustfile.py",
                "defaultUsers": args.users,
                "defaultSpawnRate": args.users,
            }
            test = orch.create_load_test(spec, actor="bench")
            run = orch.start_run(test.id, actor="bench")
            time.sleep(3)
            before = cpu_seconds(pid)
            time.sleep(args.seconds)
            polled = cpu_seconds(pid) - before
            orch.stop_run(run.id, actor="bench")
            orch.wait(run.id, timeout=60)
            polls = len(orch.snapshots(run.id))
    print(
        f"# master CPU over {args.seconds:g} s, {args.users} users, 1 worker;"
        f" reproduce: python {' '.join(sys.argv)}"
    )
    print(f"without monitoring: {quiet:.2f} CPU-s ({100 * quiet / args.seconds:.1f} % of a core)")
    print(
        f"with the Monitor polling every {args.interval:g} s: {polled:.2f} CPU-s"
        f" ({100 * polled / args.seconds:.1f} % of a core), {polls} snapshots"
    )
    ratio = (polled / quiet - 1) * 100 if quiet else float("nan")
    print(f"overhead: {polled - quiet:+.2f} CPU-s ({ratio:+.1f} %)")


if __name__ == "__main__":
    main()
