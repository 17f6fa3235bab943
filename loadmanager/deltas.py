"""From the master's cumulative histograms to the change each snapshot stores.

The plugin answers cumulative histograms; a snapshot keeps only what changed
since the run's previous snapshot, so that any stretch of snapshots sums to
that stretch's exact histogram. The previous histograms are kept in memory
while one replica polls a run slot after slot. After skipped slots (polls
shed under load, a master that timed out) the changes stored since this
replica's last poll, by another replica that took the run over meanwhile, are
added to them; a replica new to the run rebuilds them from every stored
change. Either way two replicas never count the same requests twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from . import histograms as h
from .locust.stats import MasterFigures
from .metrics import HistogramDelta, MetricSnapshot

__all__ = ["HistogramDeltas", "cumulative"]

_ROUNDING = timedelta(milliseconds=1)


def cumulative(snapshots: list[MetricSnapshot]) -> dict[str, dict[int, int]]:
    """The histograms the stored changes add up to, by endpoint key."""
    keys = {d.key for s in snapshots for d in s.histograms}
    return {key: h.merge(s.histogram(key) or {} for s in snapshots) for key in sorted(keys)}


class HistogramDeltas:
    """The last cumulative histograms seen of each run this replica polls.

    Args:
        read: A run's stored snapshots taken since a time, or all of them for
            ``None`` (``metrics.snapshots(run_id, start=since)``).
    """

    def __init__(self, read: Callable[[str, datetime | None], list[MetricSnapshot]]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._last: dict[str, tuple[int | None, dict[str, dict[int, int]]]] = {}

    def changes(
        self,
        run_id: str,
        slot: int | None,
        figures: MasterFigures,
        slot_start: Callable[[int], datetime] | None = None,
    ) -> tuple[HistogramDelta, ...]:
        """What changed since the run's previous snapshot, per endpoint and aggregated.

        Args:
            slot_start: When a poll slot of the run begins (no snapshot of a
                slot is taken earlier). Without it, skipped slots make this
                read every stored change of the run.
        """
        with self._lock:
            last = self._last.get(run_id)
        previous = None
        if last is not None and last[0] is not None and slot is not None:
            seen, kept = last[0], last[1]
            if seen == slot - 1:
                previous = kept
            elif seen < slot and slot_start is not None:
                # Reading the whole history here made every skipped slot cost
                # a read of the run so far: at 2,000 runs, the shed polls'
                # gaps read more than the polls did, and monitoring collapsed.
                # A slot's snapshot is stamped no earlier than the slot's
                # start (the slot is worked out from the stamp, and a late
                # answer keeps an earlier slot): from the next slot's start,
                # less a millisecond for rounding, skips this replica's own
                # last snapshot, which it keeps already.
                stored = self._read(run_id, slot_start(seen + 1) - _ROUNDING)
                since = cumulative([s for s in stored if s.slot is not None and s.slot > seen])
                previous = {k: h.merge((kept.get(k, {}), since.get(k, {}))) for k in kept | since}
        if previous is None:
            previous = cumulative(self._read(run_id, None))
        current = {e.key: dict(e.histogram) for e in (*figures.endpoints, figures.aggregated)}
        with self._lock:
            self._last[run_id] = (slot, current)
        return tuple(
            # Both sides checked (the wire, the stored changes), and a diff
            # never goes below zero: the delta needs no checking again.
            HistogramDelta._unchecked(key, h.diff(histogram, previous.get(key, {})))
            for key, histogram in sorted(current.items())
        )

    def forget(self, run_id: str) -> None:
        """Drop what is kept of a run this replica no longer polls."""
        with self._lock:
            self._last.pop(run_id, None)
