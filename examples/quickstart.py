"""loadmanager's quick start: a real load test on this machine, end to end.

Starts a small local target and the embedded SQLite storage; creates the seed's
example load test pointed at the target, naming ``locustfile.py`` from this
folder; runs it for about 15 seconds on a Locust cluster (one master, two
workers) that the LocalProvider makes for this run from that file's content,
with a live progress line; prints the end-of-run summary (endpoints, criteria,
failures, the verdict and the SHA-256 of the locustfile that ran) and writes the
HTML report. Exits 0 when the run finished and its cluster is gone.

    pip install -e '.[local]'
    python examples/quickstart.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import loadmanager as lm
from loadmanager.testing.target import TargetServer

HERE = Path(__file__).parent


def main(db_path: str | None = None) -> int:
    db_path = db_path or str(Path(tempfile.mkdtemp(prefix="loadmanager-")) / "quickstart.db")
    # One master and two workers per run, made from the test's own locustfile.
    local = lm.LocalProvider(state_dir=Path(db_path).parent / "clusters", users_per_worker=10)
    with (
        TargetServer(slow_ms=50, fail_ratio=0.02) as target,
        lm.connect(f"sqlite:///{db_path}") as storage,
        lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"cluster-1": local}),
            locustfiles=[lm.LocustfileDirectory(HERE)],
        ) as orch,
    ):
        print(f"target {target.url} · storage {storage.url}")
        # The seed's example body, pointed at the local target, with thresholds.
        test = orch.create_load_test(
            {
                "name": "API Load Test",
                "description": "Tests API performance",
                "tags": ["api", "prod"],
                "tenantId": "tenant-1",
                "envId": "prod",
                "locustClusterId": "cluster-1",
                "targetUrl": target.url,
                "locustfile": "locustfile.py",
                "defaultUsers": 100,
                "defaultSpawnRate": 10,
                "createdBy": "user@example.com",
                "thresholds": [
                    {"metric": "p95", "op": "<", "value": 500},
                    {"metric": "error_rate", "op": "<", "value": 0.05},
                ],
            },
            actor="user@example.com",
        )
        print(f"created load test {test.id} ({test.name})")
        run = orch.start_run(
            test.id,
            {"targetUsers": 20, "spawnRate": 10, "runTime": "15s", "createdBy": "user@example.com"},
            actor="user@example.com",
        )
        workers = run.parameters.workers
        master = run.cluster.master_url if run.cluster else "?"
        print(f"started run {run.id}: 20 users for 15 s on {workers} workers, master {master}")
        # The k6-style summary: endpoints, criteria with their observed figures,
        # failures, warnings and the verdict (rich tables in a terminal).
        run = orch.wait(run.id, timeout=120, progress=True, summary=True)
        report = lm.write_report(orch, run.id, Path(db_path).parent / "report.html")
        print(f"{len(orch.snapshots(run.id))} snapshots stored in {db_path}")
        print(f"report (charts, one self-contained file): {report}")
    # Closed, the Orchestrator has finished releasing: no Locust process is left.
    left = local.held()
    if left:
        print(f"clusters still held after the run: {left}")
    return 0 if run.status is lm.RunStatus.FINISHED and not left else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
