"""The HTML reports in a real headless browser: charts drawn with axes and tick
labels, gaps as gaps, markers where a criterion broke, no console errors.

The run's data is made here, so what the charts must show is known exactly;
``test_cli_real.py`` opens the report of a real Locust run the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from browser import check_report

import loadmanager as lm
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run, make_snapshot, make_summary
from loadmanager.verdicts import CriterionResult, Outcome, Verdict

pytestmark = pytest.mark.slow

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def orch() -> Any:
    with (
        lm.connect("memory://") as storage,
        lm.Orchestrator(storage, lm.ClusterRegistry({}), monitor=False) as o,
    ):
        yield o


def stored_run(orch: lm.Orchestrator) -> lm.LoadTestRun:
    """An aborted run: 60 s of snapshots every 2 s, none from 20 s to 30 s."""
    test = orch.storage.load_tests.add(make_load_test(at=T0))
    broke = T0 + timedelta(seconds=44)
    verdict = Verdict.of(
        [
            CriterionResult("p95 < 300ms for 10s, abort", "p95", "<", 300.0, Outcome.FAILED,
                            observed=412.0, at=broke),
            CriterionResult("error_rate < 1%", "error_rate", "<", 0.01, Outcome.PASSED,
                            observed=0.004),
        ]
    )  # fmt: skip
    run = make_run(test, status=RunStatus.STOPPED, at=T0)
    run = attrs.evolve(
        run,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=60),
        failure_reason="aborted: p95 < 300ms for 10s broke with 412 at 12:00:44",
        summary=make_summary(T0 + timedelta(seconds=60)),
        verdict=verdict,
    )
    orch.storage.runs.add(run)
    for second in range(0, 61, 2):
        if 20 <= second < 30:
            continue
        p95 = 100.0 + 8 * second
        orch.storage.metrics.add(
            make_snapshot(run.id, T0 + timedelta(seconds=second), current_p95=p95,
                          current_rps=50.0 + second, user_count=min(10, 1 + second))
        )  # fmt: skip
    return run


def test_the_run_report_draws_axes_gaps_and_the_abort_marker(
    orch: lm.Orchestrator, tmp_path: Path
) -> None:
    run = stored_run(orch)
    path = lm.write_report(orch, run.id, tmp_path / "report.html", buckets=60)
    state = check_report(path, "report-aborted-run")
    assert [c["id"] for c in state] == ["load", "latency", "endpoints"]
    load = state[0]
    labels = [a["label"] for a in load["axes"]]
    assert labels == ["time (UTC) and elapsed since start", "requests/s", "users"]
    clock_ticks = load["axes"][0]["ticks"]
    assert all(t.startswith("12:00:") and "\n+0:" in t for t in clock_ticks), clock_ticks
    # The 10 s without snapshots is a break in every line, not a bridge and not zeros.
    assert all(n >= 1 for n in load["nulls"])
    html = path.read_text()
    assert '"label":"aborted","kind":"abort"' in html
    marker = '"label":"\\u2717 p95 \\u003c 300ms for 10s, abort","kind":"broke"'
    assert marker in html  # the criterion's break, escaped for a <script> element
    assert "412 ms is not &lt; 300 ms; broke at 12:00:44" in html  # the why column
    assert "0.40 %" in html  # error rates as percentages


def test_the_comparison_report_overlays_both_runs(orch: lm.Orchestrator, tmp_path: Path) -> None:
    first = stored_run(orch)
    second = stored_run(orch)
    path = lm.write_comparison_report(orch, second.id, first.id, tmp_path / "compare.html")
    state = check_report(path, "report-comparison")
    assert [c["id"] for c in state] == ["compare-p95", "compare-rps"]
    assert state[0]["axes"][0]["label"] == "elapsed since start (m:ss)"
    assert all(n >= 1 for n in state[0]["nulls"])  # the shared gap stays a gap
    assert "No regression" in path.read_text()


def test_the_report_reads_on_a_phone_width(orch: lm.Orchestrator, tmp_path: Path) -> None:
    run = stored_run(orch)
    path = lm.write_report(orch, run.id, tmp_path / "phone.html")
    state = check_report(path, "report-phone", width=390)
    assert all(c["width"] <= 390 for c in state)
