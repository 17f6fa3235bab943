"""Pictures of a run and of a comparison (``pip install 'loadmanager[plot]'``).

Functions return matplotlib Figures, which Jupyter shows inline; :func:`save_png`
writes one to disk. Nothing here touches pyplot's global state, so plotting from
a server thread is safe.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

from .comparison import Comparison
from .metrics import SeriesBucket

__all__ = ["plot_comparison", "plot_run", "save_png"]


def _figure(rows: int, height: float) -> Any:
    try:
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'loadmanager[plot]'") from exc
    fig = figure_module.Figure(figsize=(9, height), layout="constrained")
    return fig, fig.subplots(rows, 1, sharex=True) if rows > 1 else [fig.subplots()]


def plot_run(series: Sequence[SeriesBucket], title: str = "run") -> Any:
    """Users, rps and failures/s, and p50/p95 over time, in three panels."""
    fig, (users, rates, times) = _figure(3, 7)
    if series:
        t0 = series[0].start
        x = [(b.start - t0).total_seconds() for b in series]
        users.plot(x, [b.user_count.avg for b in series], color="tab:blue")
        users.set_ylabel("users")
        rates.plot(x, [b.current_rps.avg for b in series], color="tab:green")
        rates.set_ylabel("requests/s", color="tab:green")
        # Failures are usually a tiny fraction of requests: on a shared axis they
        # would hug zero, so they get their own scale on the right.
        failures = rates.twinx()
        failures.plot(x, [b.current_fail_per_sec.avg for b in series], color="tab:red")
        failures.set_ylabel("failures/s", color="tab:red")
        failures.set_ylim(bottom=0)
        times.plot(x, [b.current_p50.avg for b in series], label="p50", color="tab:purple")
        times.plot(x, [b.current_p95.avg for b in series], label="p95", color="tab:orange")
        times.set_ylabel("ms")
        times.set_xlabel("seconds since start")
        times.legend(loc="upper left")
    fig.suptitle(title)
    return fig


def plot_comparison(comparison: Comparison, figure: str = "p95") -> Any:
    """A bar per endpoint and run for one figure, regressions marked in red."""
    fig, (ax,) = _figure(1, 4.5)
    entries = [*comparison.endpoints, comparison.aggregated]
    keys = [e.key for e in entries]
    base = [e.figure(figure).baseline or 0.0 for e in entries]
    now = [e.figure(figure).current or 0.0 for e in entries]
    positions = range(len(keys))
    ax.bar([p - 0.2 for p in positions], base, width=0.4, label="baseline", color="tab:gray")
    colors = ["tab:red" if e.figure(figure).regression else "tab:blue" for e in entries]
    ax.bar([p + 0.2 for p in positions], now, width=0.4, label="run", color=colors)
    ax.set_xticks(list(positions), keys, rotation=20, ha="right")
    ax.set_ylabel(figure)
    ax.legend()
    ax.set_title(
        f"{figure}: run {comparison.run_id[:8]} vs baseline {comparison.baseline_run_id[:8]}"
    )
    return fig


def save_png(figure: Any, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Write a figure as a PNG file."""
    figure.savefig(path, format="png", dpi=dpi)
