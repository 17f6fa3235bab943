"""Run statuses and the one table of transitions between them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ACTIVE_STATUSES", "TERMINAL_STATUSES", "TRANSITIONS", "MasterState", "RunStatus"]


class RunStatus(str, enum.Enum):
    """Where a :class:`~loadmanager.LoadTestRun` is in its life.

    ``pending`` → ``running`` → ``finished`` | ``stopped`` | ``failed``, with
    ``pending`` → ``failed`` when the master refuses the start and
    ``running`` → ``stopping`` → ``stopped`` for a stop that Locust confirms later.
    ``stopping`` → ``failed`` exists because a master can die while stopping, and
    a run must still reach an end.
    """

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        """True while the run holds its cluster (not yet in a terminal status)."""
        return self in ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        """True once the run has ended; no transition leaves a terminal status."""
        return self in TERMINAL_STATUSES

    def can_become(self, other: RunStatus) -> bool:
        """Whether the transition table allows going from this status to ``other``."""
        return other in TRANSITIONS[self]

    def __str__(self) -> str:
        return self.value


TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = MappingProxyType(
    {
        RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.FAILED}),
        RunStatus.RUNNING: frozenset(
            {RunStatus.STOPPING, RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.FAILED}
        ),
        RunStatus.STOPPING: frozenset({RunStatus.STOPPED, RunStatus.FAILED}),
        RunStatus.FINISHED: frozenset(),
        RunStatus.STOPPED: frozenset(),
        RunStatus.FAILED: frozenset(),
    }
)
"""Every allowed status change; anything not listed is refused."""

TERMINAL_STATUSES = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
ACTIVE_STATUSES = frozenset(RunStatus) - TERMINAL_STATUSES


class MasterState(str, enum.Enum):
    """What a load generator's master says it is doing, in loadmanager's words.

    The Locust adapter maps its runner states onto these; nothing past it sees
    Locust's own strings. ``UNKNOWN`` stands for a state this version does not know.
    """

    READY = "ready"
    SPAWNING = "spawning"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CLEANUP = "cleanup"
    MISSING = "missing"
    UNKNOWN = "unknown"

    @property
    def generating_load(self) -> bool:
        """Users are being started or are running."""
        return self in (MasterState.SPAWNING, MasterState.RUNNING)

    @property
    def ended(self) -> bool:
        """The load stopped and the master still holds the run's figures."""
        return self is MasterState.STOPPED

    @property
    def lost(self) -> bool:
        """The master runs nothing and holds no run (restarted, or never started)."""
        return self in (MasterState.READY, MasterState.MISSING)

    def __str__(self) -> str:
        return self.value
