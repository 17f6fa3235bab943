"""Drive a real Locust cluster on this machine with LocustClient.

Starts a small target server and a LocalCluster (one master, two workers), swarms
10 users for 10 seconds, prints Locust's statistics as a table, and stops.

    pip install 'loadmanager[local]'
    python examples/locust_client.py
"""

from __future__ import annotations

import time
from pathlib import Path

import loadmanager as lm
from loadmanager.testing.target import TargetServer

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def main() -> None:
    with (
        TargetServer() as target,
        lm.LocalCluster(LOCUSTFILE, workers=2, host=target.url) as cluster,
        lm.LocustClient(cluster.url) as client,
    ):
        print(f"master at {cluster.url} with {client.worker_count()} workers; target {target.url}")
        client.reset_stats()
        client.swarm(10, 5, host=target.url, run_time="10s")
        deadline = time.monotonic() + 30
        stats = client.stats()
        while time.monotonic() < deadline:
            time.sleep(2)
            stats = client.stats()
            print(f"  {stats.state:<9} users={stats.user_count:<3} rps={stats.current_rps:6.1f}")
            if stats.state == "stopped":
                break
        client.stop()
        time.sleep(2.1)  # the master caches /stats/requests for 2 s; read the final figures
        rows = client.stats_csv()
        print(f"\n{'endpoint':<22}{'requests':>9}{'failures':>9}{'median':>8}{'p95':>6}{'p99':>6}")
        for row in rows:
            p = row.percentiles
            print(
                f"{row.key:<22}{row.num_requests:>9}{row.num_failures:>9}"
                f"{row.median_response_time or 0:>8.0f}{p.p95 or 0:>6.0f}{p.p99 or 0:>6.0f}"
            )


if __name__ == "__main__":
    main()
