"""Typed views of what a Locust master reports, in loadmanager's own names.

Locust's JSON and CSV field names end at :mod:`loadmanager.locust._wire`; past it,
code sees these classes (and the domain's :class:`~loadmanager.EndpointSummary`).
"""

from __future__ import annotations

from datetime import datetime

import attrs

from ..errors import LocustError
from ..metrics import (
    MAX_LIVE_FAILURES,
    EndpointKey,
    EndpointStats,
    Failure,
    HistogramDelta,
    MetricSnapshot,
    UserException,
    WorkerHealth,
)
from ..status import MasterState

__all__ = [
    "EndpointHistogram",
    "LocustErrorRow",
    "LocustExceptionRow",
    "LocustRow",
    "LocustStats",
    "MasterFigures",
    "MasterPoll",
    "SwarmResult",
    "WorkerInfo",
]


@attrs.frozen
class LocustRow(EndpointKey):
    """One row of ``/stats/requests`` (an endpoint, or the aggregated total)."""

    method: str
    name: str
    num_requests: int
    num_failures: int
    avg_response_time: float
    min_response_time: float
    max_response_time: float
    median_response_time: float
    p95_response_time: float | None
    p99_response_time: float | None
    current_rps: float
    current_fail_per_sec: float
    total_rps: float
    total_fail_per_sec: float
    avg_content_length: float

    def to_endpoint_stats(self) -> EndpointStats:
        """This row as a snapshot's endpoint row."""
        has = self.num_requests > 0
        return EndpointStats(
            method=self.method,
            name=self.name,
            num_requests=self.num_requests,
            num_failures=self.num_failures,
            current_rps=self.current_rps,
            current_fail_per_sec=self.current_fail_per_sec,
            avg_response_time=self.avg_response_time if has else None,
            min_response_time=self.min_response_time if has else None,
            max_response_time=self.max_response_time if has else None,
            median_response_time=self.median_response_time if has else None,
            p95_response_time=self.p95_response_time if has else None,
            p99_response_time=self.p99_response_time if has else None,
        )


@attrs.frozen
class LocustErrorRow:
    """One distinct failure Locust has seen."""

    method: str
    name: str
    error: str
    occurrences: int

    def to_failure(self) -> Failure:
        """This row as the domain's failure row."""
        return Failure(self.method, self.name, self.error, max(0, self.occurrences))


@attrs.frozen
class LocustExceptionRow:
    """One distinct exception raised in user code on the workers."""

    count: int
    message: str
    traceback: str
    nodes: str

    def to_exception(self) -> UserException:
        """This row as the domain's exception row."""
        return UserException(max(0, self.count), self.message, self.traceback, self.nodes)


@attrs.frozen
class WorkerInfo:
    """One worker connected to the master."""

    id: str
    state: str
    user_count: int
    cpu_usage: float
    memory_usage: float

    def to_health(self) -> WorkerHealth:
        """This worker as the domain's health row."""
        return WorkerHealth(self.id, self.state, max(0, self.user_count), max(0.0, self.cpu_usage))


@attrs.frozen
class LocustStats:
    """The master's ``/stats/requests`` answer.

    Attributes:
        state: The master's state, mapped from Locust's runner state.
        current_p50: The aggregated current 50th percentile (ms), if any.
        current_p95: The aggregated current 95th percentile (ms), if any.
        endpoints: One row per endpoint, the aggregated row excluded.
        aggregated: The ``Aggregated`` row.
    """

    state: MasterState
    user_count: int
    worker_count: int
    workers: tuple[WorkerInfo, ...]
    total_rps: float
    total_fail_per_sec: float
    current_rps: float
    current_fail_per_sec: float
    fail_ratio: float
    current_p50: float | None
    current_p95: float | None
    endpoints: tuple[LocustRow, ...]
    aggregated: LocustRow | None
    errors: tuple[LocustErrorRow, ...]

    def endpoint(self, key: str) -> LocustRow | None:
        """The row of ``"METHOD name"``, or ``None``."""
        return next((r for r in self.endpoints if r.key == key), None)

    def to_snapshot(
        self,
        run_id: str,
        at: datetime,
        slot: int | None = None,
        histograms: tuple[HistogramDelta, ...] = (),
    ) -> MetricSnapshot:
        """These figures as a run's snapshot at ``at`` (in poll ``slot``), with
        the plugin's ``histograms`` changes if there are any."""
        agg = self.aggregated
        return MetricSnapshot(
            load_test_run_id=run_id,
            timestamp=at,
            slot=slot,
            state=self.state,
            user_count=self.user_count,
            worker_count=self.worker_count,
            current_rps=self.current_rps,
            current_fail_per_sec=self.current_fail_per_sec,
            total_requests=agg.num_requests if agg else 0,
            total_failures=agg.num_failures if agg else 0,
            current_p50=self.current_p50,
            current_p95=self.current_p95,
            endpoints=tuple(r.to_endpoint_stats() for r in self.endpoints),
            failures=tuple(
                e.to_failure()
                for e in sorted(self.errors, key=lambda e: -e.occurrences)[:MAX_LIVE_FAILURES]
            ),
            workers=tuple(w.to_health() for w in self.workers),
            histograms=histograms,
        )


@attrs.frozen
class SwarmResult:
    """What the master said when it accepted a swarm."""

    message: str
    host: str | None
    run_time_seconds: int | None
    user_classes: tuple[str, ...]


@attrs.frozen
class EndpointHistogram(EndpointKey):
    """One endpoint's (or the aggregated) cumulative response-time histogram.

    Attributes:
        histogram: ``{bucket_ms: requests}`` in Locust's rounded buckets.
    """

    method: str
    name: str
    num_requests: int
    num_failures: int
    histogram: dict[int, int]


@attrs.frozen
class MasterFigures:
    """What loadmanager's Locust plugin answers (``/loadmanager/v1/figures``).

    Attributes:
        endpoints: One histogram per endpoint.
        aggregated: The aggregated histogram.
        locustfiles: The SHA-256 of each locustfile the master loaded, by file name.
    """

    state: str
    endpoints: tuple[EndpointHistogram, ...]
    aggregated: EndpointHistogram
    errors: tuple[LocustErrorRow, ...]
    workers: tuple[WorkerInfo, ...]
    locustfiles: dict[str, str]

    def histogram(self, key: str) -> EndpointHistogram | None:
        """The histogram of ``"METHOD name"`` (or of the aggregated row's name)."""
        if key == self.aggregated.key:
            return self.aggregated
        return next((e for e in self.endpoints if e.key == key), None)


@attrs.frozen
class MasterPoll:
    """One poll of a master: its statistics, and its plugin's histograms if it has one.

    Attributes:
        stats: What ``/stats/requests`` answers.
        figures: The plugin's figures; ``None`` without the plugin, or when
            its answer could not be read (then ``figures_error`` says why).
        figures_error: Why a master with the plugin gave no figures this time.
    """

    stats: LocustStats
    figures: MasterFigures | None = None
    figures_error: LocustError | None = None
