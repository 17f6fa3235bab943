"""A CI gate: run a load test with criteria and exit with its verdict.

Exit codes: 0 passed, 1 failed, 2 not evaluated, 3 the run itself failed (its
cluster broke: no verdict). Pass --slower to see a failing gate: the target gets
40 ms slower and the p95 criterion breaks.

    python examples/ci_gate.py            # exits 0
    python examples/ci_gate.py --slower   # exits 1
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import loadmanager as lm
from loadmanager.testing.target import TargetServer

HERE = Path(__file__).parent
CRITERIA = [
    "p95 < 200ms",
    "error_rate < 5%",
    "GET /items: median < 20ms",
    "error_rate < 50% for 5s, abort",
]


def main(slower: bool) -> int:
    with (
        TargetServer(slow_ms=50, fail_ratio=0.02) as target,
        lm.LocalCluster(HERE / "locustfile.py", workers=2, host=target.url) as cluster,
        lm.connect(f"sqlite:///{Path(tempfile.mkdtemp()) / 'gate.db'}") as storage,
        lm.Orchestrator(storage=storage, clusters=lm.ClusterRegistry({"ci": cluster.url})) as orch,
    ):
        target.extra_delay_ms = 160 if slower else 0
        test = orch.create_load_test(
            {
                "name": "checkout gate",
                "tenantId": "ci",
                "envId": "staging",
                "locustClusterId": "ci",
                "targetUrl": target.url,
                "locustfile": "locustfile.py",
                "defaultUsers": 10,
                "defaultSpawnRate": 10,
                "defaultRunTime": "10s",
                "thresholds": CRITERIA,
            },
            actor="ci-pipeline",
        )
        run = orch.start_run(test.id, actor="ci-pipeline")
        # The summary (criteria with observed figures and why they failed), then
        # the same exit code as `loadmanager gate` (docs/cli.md).
        run = orch.wait(run.id, timeout=120, summary=True)
        return lm.exit_code(run)


if __name__ == "__main__":
    sys.exit(main("--slower" in sys.argv[1:]))
