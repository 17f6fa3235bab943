"""A Locust master in memory, answering with bodies captured from a real run.

It satisfies :class:`~loadmanager.lifecycle.LocustMaster`, so a run's whole life
can be driven on a :class:`~loadmanager.testing.ManualClock` without a network or
a sleep. Its answers are a real 2-worker run's ``/stats/requests`` JSON and
``/stats/requests/csv`` (``data/``), parsed by the same code that parses a live
master's, with the state and any fields a test sets laid over them.

It is for unit tests of the lifecycle and for fault injection (a refused swarm,
an unreachable master, a stall); tests of the happy path drive a real master.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import LocustError, LocustRejectedError
from ..locust import _wire
from ..locust.stats import (
    LocustErrorRow,
    LocustExceptionRow,
    LocustStats,
    MasterFigures,
    MasterPoll,
    SwarmResult,
)
from ..metrics import EndpointSummary

__all__ = ["FakeLocustMaster"]

DATA = Path(__file__).parent / "data"
_URL = "fake://master"


class FakeLocustMaster:
    """A scripted master: set what it says, then read what it was asked.

    Attributes:
        state: Locust's runner state string as the wire carries it; ``swarm``
            makes it ``running`` and ``stop`` makes it ``stopped``.
        overrides: Top-level ``/stats/requests`` fields laid over the captured
            answer (``{"current_fail_per_sec": 40.0}``).
        plugin_figures: What loadmanager's plugin would answer; ``None`` (the
            default) is a master without the plugin.
        calls: The calls received, by name, in order.
        refuse_swarm: When set, ``swarm`` answers ``success: false`` with it.
        error: When set, every call raises it (an unreachable master).
        on_stats: Called at the start of each ``stats()`` (a stall, a count).
    """

    def __init__(self, state: str = "ready") -> None:
        self.state = state
        self.overrides: dict[str, Any] = {}
        self.plugin_figures: dict[str, Any] | None = None
        self.exception_rows: list[LocustExceptionRow] = []
        self.calls: list[str] = []
        self.refuse_swarm: str | None = None
        self.error: LocustError | None = None
        self.on_stats: Callable[[], None] | None = None
        self.swarmed: list[Mapping[str, Any]] = []
        self._lock = threading.Lock()
        self._stats_body = json.loads((DATA / "stats_requests.json").read_text())
        self._csv_body = (DATA / "stats_requests.csv").read_text()

    def _call(self, name: str) -> None:
        with self._lock:
            self.calls.append(name)
        if self.error is not None:
            raise self.error

    def reset_stats(self) -> None:
        """Record the reset."""
        self._call("reset_stats")

    def swarm(
        self,
        users: int,
        spawn_rate: float,
        *,
        host: str | None = None,
        run_time: str | None = None,
        user_classes: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> SwarmResult:
        """Start "running", or refuse as Locust does."""
        self._call("swarm")
        if self.refuse_swarm is not None:
            raise LocustRejectedError(self.refuse_swarm, url=f"{_URL}/swarm")
        self.swarmed.append({"users": users, "spawn_rate": spawn_rate, "run_time": run_time})
        self.state = "running"
        return SwarmResult("Swarming started", host, None, tuple(user_classes or ()))

    def stop(self) -> None:
        """Become "stopped"."""
        self._call("stop")
        self.state = "stopped"

    def stats(self) -> LocustStats:
        """The captured answer with this master's state and figures."""
        if self.on_stats is not None:
            self.on_stats()
        self._call("stats")
        doc = {**self._stats_body, **self.overrides, "state": self.state}
        return _wire.parse_stats(json.dumps(doc), f"{_URL}/stats/requests")

    def stats_csv(self) -> tuple[EndpointSummary, ...]:
        """The captured final CSV."""
        self._call("stats_csv")
        return _wire.parse_requests_csv(self._csv_body, f"{_URL}/stats/requests/csv")

    def failures(self) -> tuple[LocustErrorRow, ...]:
        """The failures of the captured answer (with ``overrides["errors"]`` if set)."""
        self._call("failures")
        doc = {**self._stats_body, **self.overrides}
        return _wire.parse_stats(json.dumps(doc), f"{_URL}/stats/requests").errors

    def exceptions(self) -> tuple[LocustExceptionRow, ...]:
        """``exception_rows`` (none by default)."""
        self._call("exceptions")
        return tuple(self.exception_rows)

    def figures(self) -> MasterFigures | None:
        """``None``, as a master without loadmanager's plugin; or ``plugin_figures``."""
        self._call("figures")
        if self.plugin_figures is None:
            return None
        return _wire.parse_figures(
            json.dumps(self.plugin_figures), f"{_URL}/loadmanager/v1/figures"
        )

    def poll(self) -> MasterPoll:
        """``stats()`` then ``figures()``, the two reads of a plugin-less or older master.

        A plugin answer that cannot be read is carried in ``figures_error``,
        as :meth:`LocustClient.poll <loadmanager.LocustClient.poll>` does.
        """
        stats = self.stats()
        try:
            figures = self.figures()
        except LocustError as exc:
            return MasterPoll(stats, figures_error=exc)
        return MasterPoll(stats, figures)

    def __repr__(self) -> str:
        return f"FakeLocustMaster(state={self.state!r})"
