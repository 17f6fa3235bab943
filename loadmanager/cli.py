"""The ``loadmanager`` command: run, watch, gate and report load tests from a shell or CI.

``pip install 'loadmanager[cli]'`` brings click (commands and flags), rich
(tables, the progress bar) and PyYAML (test files). The exit codes are the
contract a CI job reads; docs/cli.md lists them:

==  =====================================================================
0   passed (every criterion held, or the test has none)
1   the verdict failed (a criterion broke), or ``compare`` found a regression
2   not evaluated (a criterion could not be judged, or the run is still active)
3   the run failed, or the infrastructure did (Locust, storage, a busy cluster)
4   usage or validation error: bad flags, a bad test file, an unknown id
==  =====================================================================

Storage and clusters come from flags or the environment, so a CI job sets
them once: ``LOADMANAGER_STORAGE`` (default ``sqlite:///loadmanager.db``),
``LOADMANAGER_CLUSTERS`` (``id=url`` or ``id=local``, separated by commas),
``LOADMANAGER_LOCUSTFILES`` (directories, separated by ``os.pathsep``) and
``LOADMANAGER_ACTOR`` (the identity in the audit fields).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from .clusters import ClusterRegistry
from .errors import (
    LoadManagerError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    WaitTimeoutError,
)
from .locustfiles import LocustfileDirectory
from .models import LoadTest, LoadTestRun
from .orchestrator import Orchestrator
from .report import write_comparison_report, write_report
from .status import RunStatus
from .storage import connect
from .summary import (
    EXIT_FAILED_VERDICT,
    EXIT_NOT_EVALUATED,
    EXIT_PASSED,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    exit_code,
)
from .summary import print_summary as _print_summary

__all__ = ["main"]

DEFAULT_STORAGE = "sqlite:///loadmanager.db"


class UsageError(click.ClickException):
    """A mistake in what was asked: exit code 4, one line on stderr."""

    exit_code = EXIT_USAGE


def _clusters(specs: Sequence[str], state_dir: Path | None) -> ClusterRegistry:
    entries: dict[str, Any] = {}
    for spec in specs:
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            cluster_id, sep, target = item.partition("=")
            if not sep or not cluster_id or not target:
                raise UsageError(f"--cluster {item!r}: write ID=URL or ID=local")
            if target == "local":
                from .providers.local import LocalProvider

                entries[cluster_id] = LocalProvider(state_dir=state_dir)
            else:
                entries[cluster_id] = target
    return ClusterRegistry(entries)


class _Context:
    """What every command shares: how to open the Orchestrator, and who acts."""

    def __init__(
        self,
        storage: str,
        clusters: Sequence[str],
        locustfiles: Sequence[str],
        actor: str,
        state_dir: Path | None,
    ) -> None:
        self.storage_url = storage
        self.cluster_specs = clusters
        self.locustfile_dirs = locustfiles
        self.actor = actor
        self.state_dir = state_dir

    @contextlib.contextmanager
    def orchestrator(self, *, monitor: bool = False) -> Iterator[Orchestrator]:
        registry = _clusters(self.cluster_specs, self.state_dir)
        sources = [LocustfileDirectory(d) for d in self.locustfile_dirs]
        with (
            connect(self.storage_url) as storage,
            Orchestrator(storage, registry, locustfiles=sources, monitor=monitor) as orch,
        ):
            yield orch


pass_context = click.make_pass_decorator(_Context)


def _split_paths(value: str | None) -> list[str]:
    return [p for p in (value or "").split(os.pathsep) if p]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--storage",
    envvar="LOADMANAGER_STORAGE",
    default=DEFAULT_STORAGE,
    show_default=True,
    help="Storage URL (env LOADMANAGER_STORAGE): sqlite:///file.db, mongodb://host/db, memory://.",
)
@click.option(
    "--cluster",
    "clusters",
    multiple=True,
    help="A cluster as ID=URL (a master you run) or ID=local (one made per run on this host); "
    "repeat, or set LOADMANAGER_CLUSTERS=id=url,id2=local.",
)
@click.option(
    "--locustfiles",
    "locustfile_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="A directory the tests' locustfiles are read from (repeatable; env "
    "LOADMANAGER_LOCUSTFILES, separated by os.pathsep).",
)
@click.option(
    "--actor",
    envvar="LOADMANAGER_ACTOR",
    default=None,
    help="Who acts, for the audit fields (env LOADMANAGER_ACTOR; default: the login name).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where local clusters keep their state (default: the LocalProvider's own).",
)
@click.version_option(package_name="loadmanager")
@click.pass_context
def cli(
    ctx: click.Context,
    storage: str,
    clusters: tuple[str, ...],
    locustfile_dirs: tuple[str, ...],
    actor: str | None,
    state_dir: Path | None,
) -> None:
    """Run Locust load tests, gate CI on their verdicts, and report on them."""
    env_clusters = os.environ.get("LOADMANAGER_CLUSTERS", "")
    env_dirs = _split_paths(os.environ.get("LOADMANAGER_LOCUSTFILES"))
    ctx.obj = _Context(
        storage,
        list(clusters) or [env_clusters],
        list(locustfile_dirs) or env_dirs,
        actor or getpass.getuser(),
        state_dir,
    )


# -- run ---------------------------------------------------------------------------


def _read_test_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError
        raise UsageError(f"{path}: not valid JSON: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - PyYAML's errors are its own, multi-line
        kind = path.suffix.lstrip(".").upper() or "JSON or YAML"
        raise UsageError(f"{path}: not valid {kind}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: must hold one load test (an object), not {type(data).__name__}")
    odd = [key for key in data if not isinstance(key, str)]
    if odd:
        raise UsageError(f"{path}: field names must be text, not {odd[0]!r}")
    return data


def _test_from_file(orch: Orchestrator, path: Path, actor: str) -> LoadTest:
    """The stored test of that file's (tenantId, name), created or brought up to date."""
    body = _read_test_file(path)
    body.pop("createdBy", None)
    same = [
        t
        for t in orch.list_load_tests(tenant_id=str(body.get("tenantId", "")), limit=1000)
        if t.name == body.get("name")
    ]
    if not same:
        return orch.create_load_test(body, actor=actor)
    changes = {k: v for k, v in body.items() if k != "tenantId"}
    return orch.update_load_test(same[0].id, changes, actor=actor)


def _overrides(**given: Any) -> dict[str, Any]:
    names = {
        "users": "targetUsers",
        "spawn_rate": "spawnRate",
        "run_time": "runTime",
        "target_url": "targetUrl",
    }
    return {names[k]: v for k, v in given.items() if v is not None}


def _rich_wait(orch: Orchestrator, run: LoadTestRun, timeout: float | None) -> LoadTestRun:
    """Wait with a rich progress bar: time against the planned run time, users, rps."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    planned = run.parameters.run_time_seconds
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = [
        TextColumn("[bold]{task.fields[status]:<8}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[figures]}"),
    ]
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("run", total=planned, status=run.status.value, figures="")
        while True:
            run = orch.get_run(run.id)
            if run.status.is_terminal:
                bar.update(task, status=run.status.value, completed=planned)
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(run.id, run.status.value, timeout or 0.0)
            s = orch.latest_snapshot(run.id)
            figures = ""
            if s is not None:
                figures = (
                    f"users {s.user_count}  rps {s.current_rps:.1f}  "
                    f"fail/s {s.current_fail_per_sec:.1f}"
                )
            now = orch.clock.now()
            elapsed = (now - run.started_at).total_seconds() if run.started_at else 0.0
            bar.update(task, status=run.status.value, completed=elapsed, figures=figures)
            time.sleep(0.5)


@cli.command()
@click.argument("test")
@click.option("-u", "--users", type=click.IntRange(min=1), help="Users (overrides the default).")
@click.option("-r", "--spawn-rate", type=click.FloatRange(min=0, min_open=True), help="Users/s.")
@click.option("-t", "--run-time", help="How long: 90 (seconds), 30s, 5m, 1h30m.")
@click.option("--target-url", help="Another target than the test's own.")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the end and print the summary; --no-wait prints the run id "
    "and leaves it to a host that monitors the store.",
)
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up waiting after N seconds.")
@click.option(
    "-o",
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the HTML report of the run there.",
)
@pass_context
def run(
    ctx: _Context,
    test: str,
    users: int | None,
    spawn_rate: float | None,
    run_time: str | None,
    target_url: str | None,
    wait: bool,
    timeout: float | None,
    report_path: Path | None,
) -> None:
    """Start a run of TEST: a stored load test id, or a JSON or YAML test file.

    A file holds the load test as the REST API takes it (camelCase fields); the
    test of the same tenantId and name is created, or updated to match.
    """
    overrides: dict[str, Any] = _overrides(
        users=users, spawn_rate=spawn_rate, target_url=target_url
    )
    if run_time is not None:
        overrides["runTime"] = int(run_time) if run_time.isdigit() else run_time
    with ctx.orchestrator(monitor=wait) as orch:
        path = Path(test)
        if path.suffix.lower() in (".json", ".yaml", ".yml") or path.is_file():
            if not path.is_file():
                raise UsageError(f"test file {test!r} does not exist")
            load_test = _test_from_file(orch, path, ctx.actor)
        else:
            load_test = orch.get_load_test(test)
        started = orch.start_run(load_test.id, overrides, actor=ctx.actor)
        click.echo(f"started run {started.id} of {load_test.name!r} ({load_test.id})", err=True)
        if not wait:
            click.echo(started.id)
            return
        try:
            if sys.stderr.isatty():
                ended = _rich_wait(orch, started, timeout)
            else:
                ended = orch.wait(started.id, timeout=timeout, progress=True)
        except KeyboardInterrupt:
            click.echo("interrupted: stopping the run", err=True)
            orch.stop_run(started.id, actor=ctx.actor)
            ended = orch.wait(started.id, timeout=60)
        _print_summary(ended, load_test)
        if report_path is not None:
            click.echo(f"report: {write_report(orch, ended.id, report_path)}", err=True)
    sys.exit(exit_code(ended))


# -- reading -----------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(str(r[i])) for r in (headers, *rows)) for i in range(len(headers))]
    for row in (headers, *rows):
        click.echo(
            "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        )


@cli.command()
@click.option("--tenant", help="Only this tenant's tests.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@pass_context
def tests(ctx: _Context, tenant: str | None, limit: int) -> None:
    """List the stored load tests."""
    with ctx.orchestrator() as orch:
        found = orch.list_load_tests(tenant_id=tenant, limit=limit)
        _table(
            ["id", "name", "tenant", "env", "cluster", "locustfile"],
            [
                [t.id, t.name, t.tenant_id, t.env_id, t.locust_cluster_id, t.locustfile]
                for t in found
            ],
        )


@cli.command()
@click.option("--test", "load_test_id", help="Only the runs of this load test.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in RunStatus]),
    help="Only runs in this status (repeatable).",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@pass_context
def runs(ctx: _Context, load_test_id: str | None, statuses: tuple[str, ...], limit: int) -> None:
    """List runs, oldest first (as the API pages them)."""
    with ctx.orchestrator() as orch:
        found = orch.list_runs(load_test_id=load_test_id, statuses=statuses or None, limit=limit)
        rows = []
        for r in found:
            started = f"{r.started_at:%Y-%m-%d %H:%M:%S}" if r.started_at else "-"
            verdict = r.verdict.outcome.value if r.verdict else "-"
            users = str(r.parameters.target_users)
            rows.append([r.id, r.load_test_id[:8], r.status.value, verdict, started, users])
        _table(["id", "test", "status", "verdict", "started (UTC)", "users"], rows)


@cli.command()
@click.argument("run_id")
@pass_context
def show(ctx: _Context, run_id: str) -> None:
    """Print a run's summary (live figures while it runs)."""
    with ctx.orchestrator() as orch:
        found = orch.get_run(run_id)
        _print_summary(found, orch.load_test_of(found))


@cli.command()
@click.argument("run_id")
@click.option("--wait/--no-wait", default=False, help="Wait until it has stopped.")
@pass_context
def stop(ctx: _Context, run_id: str, wait: bool) -> None:
    """Stop a running run; its figures so far are kept and judged."""
    with ctx.orchestrator() as orch:
        stopping = orch.stop_run(run_id, actor=ctx.actor)
        click.echo(f"run {stopping.id}: {stopping.status.value}")
        if wait:
            ended = orch.wait(run_id, timeout=120)
            click.echo(f"run {ended.id}: {ended.status.value}")


@cli.command()
@click.argument("run_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The file to write (default: report-RUN.html).",
)
@click.option("--buckets", type=click.IntRange(10, 5000), default=200, show_default=True)
@pass_context
def report(ctx: _Context, run_id: str, output: Path | None, buckets: int) -> None:
    """Write a run's self-contained HTML report (charts inlined, no network)."""
    with ctx.orchestrator() as orch:
        path = write_report(orch, run_id, output or Path(f"report-{run_id}.html"), buckets=buckets)
    click.echo(str(path))


@cli.command()
@click.argument("run_id")
@click.argument("baseline_run_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the comparison report (HTML) there.",
)
@pass_context
def compare(ctx: _Context, run_id: str, baseline_run_id: str, output: Path | None) -> None:
    """Compare RUN_ID with BASELINE_RUN_ID; exit 1 when a figure regressed."""
    with ctx.orchestrator() as orch:
        comparison = orch.compare(run_id, baseline_run_id)
        rows = [[*row[:5], "REGRESSION" if row[5] else ""] for row in comparison.rows()]
        _table(["endpoint", "figure", "baseline", "run", "change", ""], rows)
        if output is not None:
            path = write_comparison_report(orch, run_id, baseline_run_id, output)
            click.echo(f"report: {path}", err=True)
    sys.exit(EXIT_FAILED_VERDICT if comparison.regression else EXIT_PASSED)


@cli.command()
@click.argument("run_id")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; only the exit code speaks.")
@pass_context
def gate(ctx: _Context, run_id: str, quiet: bool) -> None:
    """Exit with the run's outcome: 0 passed, 1 failed, 2 not evaluated, 3 run failed."""
    with ctx.orchestrator() as orch:
        found = orch.get_run(run_id)
        if not quiet:
            _print_summary(found, orch.load_test_of(found))
    sys.exit(exit_code(found))


# -- entry point -----------------------------------------------------------------------


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"loadmanager: error: {message}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script: run the command, map every error to its exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.Abort:
        _fail(EXIT_RUN_FAILED, "aborted")
    except click.ClickException as exc:
        # click's usage errors would exit 2, which means "not evaluated" here.
        _fail(EXIT_USAGE, exc.format_message())
    except WaitTimeoutError as exc:
        _fail(EXIT_NOT_EVALUATED, str(exc))
    except (ValidationError, NotFoundError, PermissionDeniedError) as exc:
        _fail(EXIT_USAGE, str(exc).splitlines()[0])
    except LoadManagerError as exc:
        _fail(EXIT_RUN_FAILED, str(exc).splitlines()[0])
    sys.exit(EXIT_PASSED)


if __name__ == "__main__":
    main()
