"""The live progress line of ``Orchestrator.wait(progress=True)``.

In a terminal it rewrites one line on stderr; in Jupyter it updates one output
cell through IPython's display handle. IPython is imported only if it is already
loaded, so scripts never pay for it.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from .metrics import MetricSnapshot
from .models import LoadTestRun

__all__ = ["Progress"]


def _jupyter_display() -> Any:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    # Looked up, not imported: IPython is optional and carries no type hints.
    display = importlib.import_module("IPython.display").display
    return display("", display_id=True)


def describe(run: LoadTestRun, snapshot: MetricSnapshot | None, now: datetime) -> str:
    """``run 1a2b… running  00:12 / 00:30  users 10  rps 55.3  fail/s 0.0``."""
    began = run.started_at or run.audit.created_at
    elapsed = int((now - began).total_seconds())
    planned = run.parameters.run_time_seconds
    clock = f"{elapsed // 60:02d}:{elapsed % 60:02d}"
    if planned:
        clock += f" / {planned // 60:02d}:{planned % 60:02d}"
    line = f"run {run.id[:8]} {run.status.value:<8} {clock}"
    if snapshot is not None:
        line += (
            f"  users {snapshot.user_count}  rps {snapshot.current_rps:.1f}"
            f"  fail/s {snapshot.current_fail_per_sec:.1f}"
        )
    return line


class Progress:
    """Shows a run's progress, or nothing when disabled.

    A terminal gets one line redrawn in place; a log file or pipe gets a new line
    at most every ``log_every`` seconds, so CI logs stay readable.
    """

    def __init__(
        self,
        enabled: bool,
        stream: TextIO | None = None,
        *,
        log_every: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self._stream = stream or sys.stderr
        self._handle = _jupyter_display() if enabled else None
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._log_every = log_every
        self._monotonic = monotonic
        self._last_line = ""
        self._last_write = -log_every
        self._width = 0

    def show(self, line: str) -> None:
        """Replace the progress line (if it changed)."""
        if not self.enabled or line == self._last_line:
            return
        if self._handle is not None:
            self._handle.update(line)
        elif self._tty:
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self._stream.flush()
        elif self._monotonic() - self._last_write >= self._log_every:
            self._stream.write(line + "\n")
            self._stream.flush()
            self._last_write = self._monotonic()
        else:
            return
        self._last_line = line

    def close(self, line: str) -> None:
        """Show the final line and end it."""
        if not self.enabled:
            return
        self._last_write = -self._log_every  # the last line always shows
        self.show(line)
        if self._handle is None and self._tty:
            self._stream.write("\n")
            self._stream.flush()
