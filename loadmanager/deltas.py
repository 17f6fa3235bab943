"""From the master's cumulative histograms to the change each snapshot stores.

The plugin answers cumulative histograms; a snapshot keeps only what changed
since the run's previous snapshot, so that any stretch of snapshots sums to
that stretch's exact histogram. The previous histograms are kept in memory
while one replica polls a run slot after slot; after a gap (another replica
polled meanwhile, or this one is new to the run) they are rebuilt from the
stored changes, so two replicas never count the same requests twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from . import histograms as h
from .locust.stats import MasterFigures
from .metrics import HistogramDelta, MetricSnapshot

__all__ = ["HistogramDeltas", "cumulative"]


def cumulative(snapshots: list[MetricSnapshot]) -> dict[str, dict[int, int]]:
    """The histograms the stored changes add up to, by endpoint key."""
    keys = {d.key for s in snapshots for d in s.histograms}
    return {key: h.merge(s.histogram(key) or {} for s in snapshots) for key in sorted(keys)}


class HistogramDeltas:
    """The last cumulative histograms seen of each run this replica polls.

    Args:
        read: A run's stored snapshots (``metrics.snapshots``).
    """

    def __init__(self, read: Callable[[str], list[MetricSnapshot]]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._last: dict[str, tuple[int | None, dict[str, dict[int, int]]]] = {}

    def changes(
        self, run_id: str, slot: int | None, figures: MasterFigures
    ) -> tuple[HistogramDelta, ...]:
        """What changed since the run's previous snapshot, per endpoint and aggregated."""
        with self._lock:
            last = self._last.get(run_id)
        if last is not None and slot is not None and last[0] == slot - 1:
            previous = last[1]
        else:
            previous = cumulative(self._read(run_id))
        current = {e.key: dict(e.histogram) for e in (*figures.endpoints, figures.aggregated)}
        with self._lock:
            self._last[run_id] = (slot, current)
        return tuple(
            HistogramDelta(key, h.diff(histogram, previous.get(key, {})))
            for key, histogram in sorted(current.items())
        )

    def forget(self, run_id: str) -> None:
        """Drop what is kept of a run this replica no longer polls."""
        with self._lock:
            self._last.pop(run_id, None)
