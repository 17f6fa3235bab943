"""The end-of-run summary, modelled on k6's: what ran, per-endpoint figures,
every criterion with ✓/✗, failures, warnings, and the verdict with its exit code.

:func:`summarize` builds one :class:`Summary`; it renders as plain text
(:meth:`Summary.text`), as rich tables in a terminal (``pip install
'loadmanager[cli]'``), and as HTML in Jupyter. :func:`print_summary` picks the
right one for where it is printed. Error rates are shown as percentages, times
in milliseconds; the data itself keeps its canonical units.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import attrs

from . import _html, _units
from .metrics import EndpointSummary
from .models import LoadTest, LoadTestRun
from .status import RunStatus
from .verdicts import Outcome

__all__ = [
    "EXIT_FAILED_VERDICT",
    "EXIT_NOT_EVALUATED",
    "EXIT_PASSED",
    "EXIT_RUN_FAILED",
    "EXIT_USAGE",
    "Summary",
    "exit_code",
    "print_summary",
    "summarize",
]

EXIT_PASSED = 0
"""Every criterion held (or the test has none) and the run ended normally."""
EXIT_FAILED_VERDICT = 1
"""A criterion failed: the system under test missed its thresholds."""
EXIT_NOT_EVALUATED = 2
"""A criterion could not be judged, or the run has not ended."""
EXIT_RUN_FAILED = 3
"""The run failed: its cluster or the infrastructure broke, so nothing was judged."""
EXIT_USAGE = 4
"""Bad flags, a bad test file, an unknown id: nothing was run (the CLI's own)."""

_ENDPOINT_HEADERS: tuple[str, ...] = ("endpoint", "requests", "failures", "error %", "rps")
_ENDPOINT_HEADERS += ("avg", "median", "p95", "p99", "max")


def exit_code(run: LoadTestRun) -> int:
    """The run's outcome as a stable process exit code (see ``docs/cli.md``).

    ``0`` passed (or no criteria), ``1`` failed verdict, ``2`` not evaluated or
    still active, ``3`` the run failed.
    """
    if run.status is RunStatus.FAILED:
        return EXIT_RUN_FAILED
    if run.status.is_active:
        return EXIT_NOT_EVALUATED
    if run.verdict is None:
        return EXIT_PASSED
    return {
        Outcome.PASSED: EXIT_PASSED,
        Outcome.FAILED: EXIT_FAILED_VERDICT,
        Outcome.NOT_EVALUATED: EXIT_NOT_EVALUATED,
    }[run.verdict.outcome]


@attrs.frozen
class Section:
    """One table of the summary: a title, its column headers and rows of text.

    ``text`` says which columns hold words (aligned left): how many leading
    ones, or their indexes; the rest hold figures.
    """

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    text: int | tuple[int, ...] = 1

    def left(self, index: int) -> bool:
        """Whether column ``index`` holds words (aligned left)."""
        return index < self.text if isinstance(self.text, int) else index in self.text


@attrs.frozen
class Summary:
    """A run's end-of-run summary, ready to render three ways.

    Attributes:
        title: ``run 1a2b3c4d "API Load Test"``.
        facts: What ran: status, duration, users, target, locustfile.
        sections: Endpoints, criteria, failures, exceptions.
        warnings: Load generator saturation, dropped snapshots, a failure reason.
        verdict: ``PASSED``, ``FAILED``, ``NOT EVALUATED``, ``NO CRITERIA``,
            ``RUN FAILED`` or ``RUNNING``.
        exit_code: As :func:`exit_code`.
    """

    title: str
    facts: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]
    warnings: tuple[str, ...]
    verdict: str
    exit_code: int

    def text(self) -> str:
        """Plain text, aligned in columns, for logs and pipes."""
        lines = [self.title, ""]
        width = max((len(k) for k, _ in self.facts), default=0)
        lines += [f"  {k.ljust(width)}  {v}" for k, v in self.facts]
        for section in self.sections:
            lines += ["", section.title.upper()]
            lines += _aligned(section)
        if self.warnings:
            lines += ["", "WARNINGS"] + [f"  ! {w}" for w in self.warnings]
        lines += ["", f"VERDICT: {self.verdict} (exit code {self.exit_code})"]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return self.html()

    def html(self, *, title: bool = True) -> str:
        """The HTML form (Jupyter shows it); ``title=False`` for a page that has one."""
        parts = [f"<h4>{_html.esc(self.title)}</h4>" if title else "", _html.kv(self.facts)]
        for section in self.sections:
            parts.append(f"<h5>{_html.esc(section.title)}</h5>")
            parts.append(_html.table(section.headers, section.rows, text=section.text))
        if self.warnings:
            items = "".join(f"<li>{_html.esc(w)}</li>" for w in self.warnings)
            parts.append(f"<h5>Warnings</h5><ul>{items}</ul>")
        colour = {0: "#1a7f37", 1: "#cf222e", 3: "#cf222e"}.get(self.exit_code, "#9a6700")
        parts.append(
            f'<p style="color:{colour}"><b>Verdict: {_html.esc(self.verdict)}</b> '
            f"(exit code {self.exit_code})</p>"
        )
        return "".join(parts)

    def __rich__(self) -> Any:
        """Rich tables for a terminal (needs ``rich``, which the ``cli`` extra brings)."""
        rich_table = importlib.import_module("rich.table")
        rich_console = importlib.import_module("rich.console")
        rich_text = importlib.import_module("rich.text")
        facts = rich_table.Table.grid(padding=(0, 2))
        facts.add_column(style="dim")
        facts.add_column()
        for k, v in self.facts:
            facts.add_row(k, v)
        parts: list[Any] = [rich_text.Text(self.title, style="bold"), facts]
        for section in self.sections:
            table = rich_table.Table(title=section.title, title_justify="left", title_style="bold")
            for index, header in enumerate(section.headers):
                table.add_column(header, justify="left" if section.left(index) else "right")
            for row in section.rows:
                table.add_row(*(_marked(cell) for cell in row))
            parts.append(table)
        for w in self.warnings:
            parts.append(rich_text.Text(f"! {w}", style="yellow"))
        style = {0: "bold green", 1: "bold red", 3: "bold red"}.get(self.exit_code, "bold yellow")
        parts.append(rich_text.Text(f"VERDICT: {self.verdict} (exit code {self.exit_code})", style))
        return rich_console.Group(*parts)


def _marked(cell: str) -> str:
    # rich reads [brackets] as markup; figures and endpoint names are not markup.
    escaped = str(importlib.import_module("rich.markup").escape(cell))
    if cell.startswith("✓"):
        return f"[green]{escaped}[/green]"
    if cell.startswith("✗"):
        return f"[red]{escaped}[/red]"
    return escaped


def _aligned(section: Section) -> list[str]:
    table = [section.headers, *section.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(section.headers))]

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.ljust(widths[i]) if section.left(i) else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  " + "  ".join(cells).rstrip()

    return [line(row) for row in table]


def _endpoint_row(r: EndpointSummary) -> tuple[str, ...]:
    p = r.percentiles
    return (
        r.key,
        f"{r.num_requests:,}",
        f"{r.num_failures:,}",
        _units.show("error_rate", r.error_rate),
        _units.show("rps", r.requests_per_sec),
        _units.show("avg", r.avg_response_time),
        _units.show("median", r.median_response_time),
        _units.show("p95", p.p95),
        _units.show("p99", p.p99),
        _units.show("max", r.max_response_time),
    )


def _duration(run: LoadTestRun) -> str:
    if run.started_at is None:
        return "-"
    if run.ended_at is None:
        return "running"
    seconds = int((run.ended_at - run.started_at).total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _facts(run: LoadTestRun, test: LoadTest | None) -> list[tuple[str, str]]:
    p = run.parameters
    reason = f" ({run.failure_reason})" if run.failure_reason else ""
    facts = [("status", run.status.value + reason)]
    began = "-" if run.started_at is None else f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC"
    facts += [("started", began), ("duration", _duration(run))]
    load = f"{p.target_users} users at {p.spawn_rate:g}/s"
    load += f" for {p.run_time}" if p.run_time else ""
    facts += [("load", load), ("target", p.target_url)]
    if test is not None:
        locustfile = test.locustfile
        if p.locustfile_sha256:
            version = f" v{p.locustfile_version}" if p.locustfile_version else ""
            locustfile += f"{version} (sha256 {p.locustfile_sha256[:12]})"
        facts.append(("locustfile", locustfile))
    facts.append(("cluster", run.locust_cluster_id))
    return facts


def _criteria(run: LoadTestRun) -> Section | None:
    if run.verdict is None:
        return None
    marks = {Outcome.PASSED: "✓", Outcome.FAILED: "✗", Outcome.NOT_EVALUATED: "?"}
    rows = tuple(
        (f"{marks[r.outcome]} {r.criterion}", r.observed_text, r.threshold_text, r.why)
        for r in run.verdict.results
    )
    return Section("Criteria", ("criterion", "observed", "limit", "why"), rows, text=(0, 3))


def _warnings(run: LoadTestRun) -> list[str]:
    out = []
    if run.saturated:
        out.append(
            "a load generator passed 90 % CPU: the figures may include its own queueing; "
            "add workers or lower the users per worker"
        )
    if run.snapshots_dropped:
        out.append(f"{run.snapshots_dropped} snapshots were dropped while the storage was down")
    if run.status is RunStatus.FAILED and run.failure_reason:
        out.append(f"the run failed: {run.failure_reason}")
    return out


def _verdict(run: LoadTestRun) -> str:
    if run.status is RunStatus.FAILED:
        return "RUN FAILED"
    if run.status.is_active:
        return str(run.status.value).upper()
    if run.verdict is None:
        return "NO CRITERIA"
    return run.verdict.outcome.value.replace("_", " ").upper()


def summarize(run: LoadTestRun, test: LoadTest | None = None, *, failures: int = 10) -> Summary:
    """The summary of ``run``; pass its load test to show the test's name and locustfile.

    Args:
        failures: How many of the most frequent failures to list.
    """
    name = f' "{test.name}"' if test is not None else ""
    sections: list[Section] = []
    if run.summary is not None:
        rows = [_endpoint_row(r) for r in (*run.summary.endpoints, run.summary.aggregated)]
        sections.append(Section("Endpoints", _ENDPOINT_HEADERS, tuple(rows)))
    criteria = _criteria(run)
    if criteria is not None:
        sections.append(criteria)
    if run.failures:
        top = sorted(run.failures, key=lambda f: -f.occurrences)[:failures]
        rows = [(f"{f.method} {f.name}", f.error, f"{f.occurrences:,}") for f in top]
        more = len(run.failures) - len(top)
        title = "Failures" + (f" ({more} more not shown)" if more > 0 else "")
        sections.append(Section(title, ("endpoint", "error", "#"), tuple(rows), text=2))
    if run.exceptions:
        rows = [(e.message, f"{e.count:,}") for e in sorted(run.exceptions, key=lambda e: -e.count)]
        sections.append(Section("Exceptions in the locustfile", ("message", "#"), tuple(rows)))
    return Summary(
        title=f"run {run.id}{name}",
        facts=tuple(_facts(run, test)),
        sections=tuple(sections),
        warnings=tuple(_warnings(run)),
        verdict=_verdict(run),
        exit_code=exit_code(run),
    )


def _in_jupyter() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def print_summary(
    run: LoadTestRun,
    test: LoadTest | None = None,
    *,
    file: TextIO | None = None,
    rich: bool | None = None,
) -> Summary:
    """Print the run's summary where a person will read it, and return it.

    Jupyter gets the HTML form; a terminal gets rich tables when ``rich`` is
    installed; a log file or pipe gets plain text. ``rich=False`` forces plain
    text, ``rich=True`` rich output even into a file.
    """
    summary = summarize(run, test)
    if file is None and rich is None and _in_jupyter():
        importlib.import_module("IPython.display").display(summary)
        return summary
    stream = file or sys.stdout
    if rich is None:
        rich = bool(getattr(stream, "isatty", lambda: False)())
    if rich:
        try:
            console = importlib.import_module("rich.console").Console(file=stream)
        except ImportError:
            rich = False
        else:
            console.print(summary)
            return summary
    stream.write(summary.text())
    stream.flush()
    return summary
