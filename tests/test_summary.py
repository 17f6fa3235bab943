"""The end-of-run summary, units as a person reads them, and exit codes.

The README's snippet ends with ``print_summary``/``write_report``/``to_json``/
``exit_code``: those four must work for every way a run can end.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest

import loadmanager as lm
from loadmanager import _units
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run, make_summary
from loadmanager.verdicts import CriterionResult, Outcome, Verdict

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def failed_verdict() -> Verdict:
    return Verdict.of(
        [
            CriterionResult(
                "p95 < 300ms for 10s", "p95", "<", 300.0, Outcome.FAILED, observed=412.0,
                at=T0 + timedelta(seconds=44),
            ),
            CriterionResult("error_rate < 1%", "error_rate", "<", 0.01, Outcome.FAILED,
                            observed=0.01456),
            CriterionResult("rps > 10", "rps", ">", 10.0, Outcome.PASSED, observed=68.9),
        ]
    )  # fmt: skip


def ended(status: RunStatus, **changes: object) -> lm.LoadTestRun:
    test = make_load_test(at=T0)
    run = make_run(test, status=status, at=T0)
    fields: dict[str, object] = {"started_at": T0}
    if status.is_terminal:
        fields["ended_at"] = T0 + timedelta(seconds=75)
    if status in (RunStatus.FINISHED, RunStatus.STOPPED):
        fields["summary"] = make_summary(T0 + timedelta(seconds=75))
    fields.update(changes)
    return attrs.evolve(run, **fields)


@pytest.mark.parametrize(
    ("run", "code", "verdict"),
    [
        (ended(RunStatus.FINISHED), 0, "NO CRITERIA"),
        (ended(RunStatus.FINISHED, verdict=failed_verdict()), 1, "FAILED"),
        (ended(RunStatus.STOPPED, verdict=Verdict.of([])), 0, "PASSED"),
        (
            ended(RunStatus.STOPPED, verdict=Verdict.of([CriterionResult(
                "p95 < 1", "p95", "<", 1.0, Outcome.NOT_EVALUATED, reason="no requests")])),
            2,
            "NOT EVALUATED",
        ),
        (ended(RunStatus.FAILED, failure_reason="the master died"), 3, "RUN FAILED"),
        (ended(RunStatus.RUNNING), 2, "RUNNING"),
    ],
)  # fmt: skip
def test_the_readme_ending_works_for_every_way_a_run_ends(
    run: lm.LoadTestRun, code: int, verdict: str, tmp_path: Path
) -> None:
    out = io.StringIO()
    summary = lm.print_summary(run, file=out)
    text = out.getvalue()
    assert text.endswith(f"VERDICT: {verdict} (exit code {code})\n")
    assert summary.exit_code == lm.exit_code(run) == code
    assert json.loads(lm.to_json(run))["id"] == run.id
    html = lm.render_report(run, None, [])
    assert f"Verdict: {verdict}</b> (exit code {code})" in html


def test_the_summary_shows_each_figure_in_its_unit_and_says_why() -> None:
    run = ended(RunStatus.FINISHED, verdict=failed_verdict())
    text = lm.summarize(run).text()
    criteria = text.split("CRITERIA\n")[1].split("\n\n")[0].splitlines()
    assert criteria[1].split() == [
        "✗", "p95", "<", "300ms", "for", "10s", "412", "ms", "<", "300", "ms",
        "412", "ms", "is", "not", "<", "300", "ms;", "broke", "at", "12:00:44",
    ]  # fmt: skip
    assert "1.46 %" in criteria[2]
    assert "is not < 1.00 %" in criteria[2]
    assert criteria[3].split()[:5] == ["✓", "rps", ">", "10", "68.9/s"]
    endpoints = text.split("ENDPOINTS\n")[1].split("\n\n")[0].splitlines()
    assert endpoints[0].split() == [
        "endpoint", "requests", "failures", "error", "%", "rps", "avg", "median", "p95", "p99",
        "max",
    ]  # fmt: skip
    assert "1.00 %" in endpoints[1]  # 10 failures of 1,000 requests
    assert "33.3/s" in endpoints[1]


def test_a_failed_run_says_why_among_its_warnings() -> None:
    run = ended(RunStatus.FAILED, failure_reason="Locust did not start the run")
    text = lm.summarize(run).text()
    assert "  ! the run failed: Locust did not start the run" in text
    assert "ENDPOINTS" not in text  # a failed run has no final figures to show


def test_rich_output_in_a_terminal_and_html_in_jupyter() -> None:
    run = ended(RunStatus.FINISHED, verdict=failed_verdict())
    terminal = io.StringIO()
    lm.print_summary(run, file=terminal, rich=True)
    drawn = terminal.getvalue()
    assert "Endpoints" in drawn
    assert "┃" in drawn or "│" in drawn  # drawn as rich tables, not plain text
    assert "412 ms is not < 300 ms" in drawn
    html = lm.summarize(run)._repr_html_()
    assert "<h5>Criteria</h5>" in html
    assert "1.46 %" in html
    assert "&lt; 1.00 %" in html


@pytest.mark.parametrize(
    ("metric", "value", "shown"),
    [
        ("error_rate", 0.01456, "1.46 %"),
        ("error_rate", 0.0, "0.00 %"),
        ("p95", 412.0, "412 ms"),
        ("p95", 1.0, "1.0 ms"),
        ("median", 9.95, "9.9 ms"),
        ("rps", 68.94, "68.9/s"),
        ("requests", 12345, "12,345"),
        ("p95", None, "-"),
        ("p95", float("nan"), "-"),
    ],
)
def test_units(metric: str, value: float | None, shown: str) -> None:
    assert _units.show(metric, value) == shown


def test_a_comparison_moves_error_rates_in_points_not_percent() -> None:
    assert _units.change("error_rate", 0.0, 0.0146) == "+1.46 pp"
    assert _units.change("p95", 200.0, 225.0) == "+12.5 %"
    assert _units.change("rps", 0.0, 5.0) == "new"
    assert _units.change("rps", None, 5.0) == "-"
