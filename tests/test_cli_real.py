"""The ``loadmanager`` command as a CI job runs it: a subprocess, a real local
Locust cluster made per run, a real target, SQLite storage, exit codes read."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import check_report

from loadmanager.testing.target import TargetServer

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer(slow_ms=30, fail_ratio=0.0) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LOADMANAGER_STORAGE": f"sqlite:///{tmp_path / 'cli.db'}",
        "LOADMANAGER_CLUSTERS": "local=local",
        "LOADMANAGER_LOCUSTFILES": str(EXAMPLES),
        "LOADMANAGER_ACTOR": "ci@example.com",
    }


def cli(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadmanager", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        check=False,
    )


def write_test(path: Path, target: TargetServer, threshold: str, name: str) -> Path:
    # YAML, as a team keeps it next to its locustfile.
    path.write_text(
        f"""
name: {name}
tenantId: team-a
envId: ci
locustClusterId: local
targetUrl: {target.url}
locustfile: locustfile.py
defaultUsers: 4
defaultSpawnRate: 4
thresholds:
  - "{threshold}"
  - "error_rate < 1%"
""",
        encoding="utf-8",
    )
    return path


def test_run_wait_prints_the_summary_and_exits_with_the_verdict(
    env: dict[str, str], target: TargetServer, tmp_path: Path
) -> None:
    passing = write_test(tmp_path / "passing.yaml", target, "p95 < 5000ms", "checkout")
    done = cli(env, "--state-dir", str(tmp_path / "clusters"), "run", str(passing), "-t", "6",
               "-o", str(tmp_path / "report.html"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ENDPOINTS" in done.stdout
    assert "GET /items" in done.stdout
    assert "✓ p95 < 5000ms" in done.stdout
    assert "✓ error_rate < 1%" in done.stdout
    assert "VERDICT: PASSED (exit code 0)" in done.stdout
    # The report of this real run, drawn by a real browser: axes, ticks, no errors.
    drawn = check_report(tmp_path / "report.html", "report-real-run")
    assert [chart["id"] for chart in drawn] == ["load", "latency", "endpoints"]

    failing = write_test(tmp_path / "failing.yaml", target, "GET /slow: p95 < 1ms", "checkout")
    done = cli(env, "--state-dir", str(tmp_path / "clusters"), "run", str(failing), "-t", "6")
    assert done.returncode == 1, done.stderr
    assert "✗ GET /slow: p95 < 1ms" in done.stdout
    assert "is not < 1.0 ms" in done.stdout  # the why column, in the criterion's unit
    assert "VERDICT: FAILED (exit code 1)" in done.stdout

    # The same file name and tenant updated one stored test, which now has two runs.
    listed = cli(env, "runs", "--status", "finished")
    verdicts = {line.split()[3]: line.split()[0] for line in listed.stdout.splitlines()[1:]}
    assert set(verdicts) == {"passed", "failed"}
    tests = cli(env, "tests").stdout.splitlines()
    assert len(tests) == 2  # header and the one test

    newer, older = verdicts["failed"], verdicts["passed"]
    compared = cli(env, "compare", newer, older, "-o", str(tmp_path / "compare.html"))
    assert compared.returncode == (1 if "REGRESSION" in compared.stdout else 0)
    assert "p95" in compared.stdout
    assert (tmp_path / "compare.html").is_file()

    gated = cli(env, "gate", newer, "--quiet")
    assert (gated.returncode, gated.stdout) == (1, "")
    shown = cli(env, "show", older)
    assert (shown.returncode, "VERDICT: PASSED" in shown.stdout) == (0, True)


def test_gate_on_a_failed_run_exits_3(
    env: dict[str, str], target: TargetServer, tmp_path: Path
) -> None:
    env = {**env, "LOADMANAGER_CLUSTERS": "dead=http://127.0.0.1:1"}
    spec = tmp_path / "dead.json"
    spec.write_text(
        '{"name": "t", "tenantId": "a", "envId": "e", "locustClusterId": "dead",'
        f'"targetUrl": "{target.url}", "locustfile": "locustfile.py", "defaultUsers": 1,'
        '"defaultSpawnRate": 1}'
    )
    started = cli(env, "run", str(spec))
    assert started.returncode == 3
    assert started.stderr.splitlines()[-1].startswith(
        "loadmanager: error: cannot connect to Locust"
    )
    failed = cli(env, "runs", "--status", "failed").stdout.splitlines()[1].split()[0]
    gated = cli(env, "gate", failed)
    assert gated.returncode == 3
    assert "VERDICT: RUN FAILED (exit code 3)" in gated.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.yaml"], "loadmanager: error: test file 'missing.yaml' does not exist"),
        (["run", "abc", "-u", "0"], "loadmanager: error: Invalid value for '-u' / '--users'"),
        (["runs", "--status", "done"], "loadmanager: error: Invalid value for '--status'"),
        (["gate", "nope"], "loadmanager: error: LoadTestRun 'nope' not found"),
        (["--storage", "sqlite:/x.db", "runs"], "did you mean 'sqlite:///x.db'?"),
        (["--cluster", "local", "runs"], "--cluster 'local': write ID=URL or ID=local"),
    ],
)
def test_bad_flags_exit_4_with_one_line(
    env: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    done = cli(env, *args, cwd=tmp_path)
    assert done.returncode == 4
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr


def test_a_typo_in_the_test_file_exits_4_and_suggests_the_field(
    env: dict[str, str], target: TargetServer, tmp_path: Path
) -> None:
    spec = write_test(tmp_path / "t.yaml", target, "p95 < 100", "x")
    spec.write_text(spec.read_text().replace("defaultUsers", "defaultUser"))
    done = cli(env, "run", str(spec))
    assert done.returncode == 4
    assert "defaultUser: is not a known field (did you mean 'defaultUsers'?)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
