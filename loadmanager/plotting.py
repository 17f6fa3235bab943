"""Pictures of a run and of a comparison (``pip install 'loadmanager[plot]'``).

Functions return matplotlib Figures, which Jupyter shows inline; :func:`save_png`
writes one to disk. Nothing here touches pyplot's global state, so plotting from
a server thread is safe.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Sequence
from datetime import timezone
from typing import Any

from .comparison import Comparison
from .metrics import SeriesBucket
from .models import LoadTestRun
from .status import RunStatus

__all__ = ["plot_comparison", "plot_run", "save_png"]


def _figure(rows: int, height: float) -> Any:
    try:
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'loadmanager[plot]'") from exc
    fig = figure_module.Figure(figsize=(9, height), layout="constrained")
    return fig, fig.subplots(rows, 1, sharex=True) if rows > 1 else [fig.subplots()]


def _gapped(
    series: Sequence[SeriesBucket], field: str, step: float
) -> tuple[list[Any], list[float]]:
    """Times and values, with a NaN where snapshots are missing, so matplotlib
    breaks the line there instead of drawing a bridge (or a zero)."""
    times: list[Any] = []
    values: list[float] = []
    for b in series:
        if times and (b.start - times[-1]).total_seconds() > 1.5 * step:
            times.append(times[-1] + (b.start - times[-1]) / 2)
            values.append(math.nan)
        times.append(b.start)
        value = getattr(b, field).avg
        values.append(math.nan if value is None else value)
    return times, values


def plot_run(
    series: Sequence[SeriesBucket], title: str = "run", *, run: LoadTestRun | None = None
) -> Any:
    """A run over time in two panels, with axes in their units and UTC clock labels.

    Top: requests/s and failures/s on one requests axis (failures as a red
    area, so 1.3 fail/s is drawn at its true size beside 68.9 rps), users on a
    secondary axis. Bottom: p50 and p95 in ms. Gaps in the snapshots stay
    gaps. With ``run``, dashed lines mark when a criterion broke and when the
    run was stopped or aborted.
    """
    fig, (rates, times) = _figure(2, 6.5)
    if series:
        poll = run.parameters.poll_interval if run is not None else 0.0
        widths = [(b.end - b.start).total_seconds() for b in series]
        step = max(min((w for w in widths if w > 0), default=0.0), poll)
        x, rps = _gapped(series, "current_rps", step)
        _, fails = _gapped(series, "current_fail_per_sec", step)
        _, users = _gapped(series, "user_count", step)
        rates.plot(x, rps, color="tab:green", label="requests/s", marker="." if len(x) < 60 else "")
        rates.fill_between(x, fails, color="tab:red", alpha=0.35, label="failures/s")
        rates.plot(x, fails, color="tab:red", linewidth=1)
        rates.set_ylabel("requests/s")
        rates.set_ylim(bottom=0)
        crowd = rates.twinx()
        crowd.plot(x, users, color="tab:blue", alpha=0.7, label="users")
        crowd.set_ylabel("users", color="tab:blue")
        crowd.set_ylim(bottom=0)
        crowd.yaxis.get_major_locator().set_params(integer=True)
        handles = rates.get_legend_handles_labels()[0] + crowd.get_legend_handles_labels()[0]
        rates.legend(handles=handles, loc="upper left", fontsize="small")
        for field, label, colour in (("current_p50", "p50", "tab:purple"),
                                     ("current_p95", "p95", "tab:orange")):  # fmt: skip
            _, values = _gapped(series, field, step)
            times.plot(x, values, label=label, color=colour, marker="." if len(x) < 60 else "")
        times.set_ylabel("response time (ms)")
        times.set_ylim(bottom=0)
        times.set_xlabel("time (UTC)")
        times.legend(loc="upper left", fontsize="small")
        for ax in (rates, times):
            ax.grid(True, alpha=0.3)
        dates = importlib.import_module("matplotlib.dates")
        times.xaxis.set_major_formatter(dates.DateFormatter("%H:%M:%S", tz=timezone.utc))
        if run is not None:
            _mark(run, (rates, times))
    fig.suptitle(title)
    return fig


def _mark(run: LoadTestRun, axes: Sequence[Any]) -> None:
    marks = []
    if run.verdict is not None:
        marks += [(r.at, f"✗ {r.criterion}") for r in run.verdict.results
                  if r.at is not None and r.outcome.value == "failed"]  # fmt: skip
    if run.status in (RunStatus.STOPPED, RunStatus.FAILED) and run.ended_at is not None:
        reason = run.failure_reason or run.status.value
        marks.append((run.ended_at, "aborted" if reason.startswith("aborted") else reason[:40]))
    for at, label in marks:
        for ax in axes:
            ax.axvline(at, color="tab:red", linestyle="--", linewidth=1)
        axes[0].annotate(label, (at, 1.0), xycoords=("data", "axes fraction"), fontsize="x-small",
                         color="tab:red", ha="right", va="top", rotation=90)  # fmt: skip


def plot_comparison(comparison: Comparison, figure: str = "p95") -> Any:
    """A bar per endpoint and run for one figure, regressions marked in red."""
    fig, (ax,) = _figure(1, 4.5)
    entries = [*comparison.endpoints, comparison.aggregated]
    keys = [e.key for e in entries]
    # Error rates are drawn in percent, as every other display shows them.
    scale = 100.0 if figure == "error_rate" else 1.0
    base = [(e.figure(figure).baseline or 0.0) * scale for e in entries]
    now = [(e.figure(figure).current or 0.0) * scale for e in entries]
    positions = range(len(keys))
    ax.bar([p - 0.2 for p in positions], base, width=0.4, label="baseline", color="tab:gray")
    colors = ["tab:red" if e.figure(figure).regression else "tab:blue" for e in entries]
    ax.bar([p + 0.2 for p in positions], now, width=0.4, label="run", color=colors)
    ax.set_xticks(list(positions), keys, rotation=20, ha="right")
    units = {"error_rate": "error rate (%)", "rps": "requests/s", "requests": "requests"}
    ax.set_ylabel(units.get(figure, f"{figure} (ms)"))
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    ax.set_title(
        f"{figure}: run {comparison.run_id[:8]} vs baseline {comparison.baseline_run_id[:8]}"
    )
    return fig


def save_png(figure: Any, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Write a figure as a PNG file."""
    figure.savefig(path, format="png", dpi=dpi)
