"""What a run measures: live snapshots, the final summary, and downsampled series.

Snapshots carry Locust's *current* figures (rps and percentiles over its recent
window) at one moment plus the cumulative counts; the summary carries Locust's own
final cumulative figures. Percentiles are never averaged into a summary, because
an average of percentiles is not a percentile.
"""

from __future__ import annotations

import operator
from datetime import datetime
from typing import Any

import attrs

from . import _constraints as c
from . import _html
from .status import MasterState

__all__ = [
    "AGGREGATED",
    "EndpointKey",
    "EndpointStats",
    "EndpointSummary",
    "Failure",
    "HistogramDelta",
    "MetricSnapshot",
    "Percentiles",
    "RunSummary",
    "SeriesBucket",
    "Stat",
    "UserException",
    "WorkerHealth",
    "exceptions_html",
    "failures_html",
]

AGGREGATED = "Aggregated"
"""The key of the row, histogram and figures of every request together (Locust's name)."""

SATURATED_CPU = 90.0
"""A worker's CPU % from which its figures are not trusted (Locust warns at 90 %)."""

MAX_LIVE_FAILURES = 100
"""Failure rows kept per snapshot: the most frequent ones (all are kept at the end)."""

_OPT_MEASURE = c.OPTIONAL_MEASURE


class EndpointKey:
    """How every row of per-endpoint figures is named: ``"METHOD name"``.

    Thresholds, comparisons and series all look endpoints up by this key; the
    aggregated row has an empty method, so its key is its name.
    """

    __slots__ = ()
    method: str
    name: str

    @property
    def key(self) -> str:
        """``"METHOD name"``."""
        return f"{self.method} {self.name}".strip()


@attrs.frozen
class EndpointStats(EndpointKey):
    """One endpoint's row in a live snapshot (times in milliseconds).

    ``median``, ``p95`` and ``p99`` are Locust's cumulative percentiles for the
    endpoint at that moment; ``None`` until the endpoint has a request.
    """

    method: str
    name: str
    num_requests: int = attrs.field(validator=c.COUNT)
    num_failures: int = attrs.field(validator=c.COUNT)
    current_rps: float = attrs.field(validator=c.MEASURE)
    current_fail_per_sec: float = attrs.field(validator=c.MEASURE)
    avg_response_time: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    min_response_time: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    max_response_time: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    median_response_time: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p95_response_time: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p99_response_time: float | None = attrs.field(default=None, validator=_OPT_MEASURE)


@attrs.frozen
class Failure(EndpointKey):
    """One distinct failure Locust saw: where, what, and how often.

    Attributes:
        method: The request's method (empty for a custom event).
        name: The request's name.
        error: Locust's message for it (the exception, or the assertion text).
        occurrences: How many times it happened.
    """

    method: str = attrs.field(validator=c.rule(c.text(max_len=64, required=False)))
    name: str = attrs.field(validator=c.rule(c.text(max_len=10_000, required=False)))
    error: str = attrs.field(validator=c.rule(c.text(max_len=100_000, required=False)))
    occurrences: int = attrs.field(validator=c.COUNT)


@attrs.frozen
class UserException:
    """An exception raised in a locustfile's own code on the workers, and how often.

    Attributes:
        count: How many times it was raised.
        message: Its message.
        traceback: Where it was raised.
        nodes: Which workers raised it, as Locust lists them.
    """

    count: int = attrs.field(validator=c.COUNT)
    message: str = attrs.field(validator=c.rule(c.text(max_len=100_000, required=False)))
    traceback: str = attrs.field(validator=c.rule(c.text(max_len=100_000, required=False)))
    nodes: str = attrs.field(default="", validator=c.rule(c.text(max_len=10_000, required=False)))


def exceptions_html(exceptions: tuple[UserException, ...]) -> str:
    """The exceptions table of a run, most frequent first."""
    rows = [[e.message, e.traceback, _html.num(e.count)] for e in
            sorted(exceptions, key=lambda e: -e.count)]  # fmt: skip
    return "<h5>Exceptions</h5>" + _html.table(["message", "traceback", "#"], rows, text=2)


def failures_html(failures: tuple[Failure, ...], limit: int = 100, *, heading: bool = True) -> str:
    """A failures table (most frequent first), as Locust's report shows it."""
    rows = [
        [f.method, f.name, f.error, _html.num(f.occurrences)]
        for f in sorted(failures, key=lambda f: -f.occurrences)[:limit]
    ]
    more = len(failures) - len(rows)
    tail = f"<small>{more} more not shown</small>" if more > 0 else ""
    table = _html.table(["method", "name", "error", "#"], rows, text=3)
    return ("<h5>Failures</h5>" if heading else "") + table + tail


def _never_negative(pairs: tuple[tuple[int, int], ...]) -> str | None:
    # A change counts requests that ended: none goes below zero, and neither
    # does a response time. The pairs are sorted: the first bucket is the least.
    if pairs and (pairs[0][0] < 0 or min(map(_COUNT, pairs)) < 0):
        return "buckets and their counts must be >= 0"
    return None


_COUNT = operator.itemgetter(1)


def _pairs(value: Any) -> tuple[tuple[int, int], ...]:
    # Already numbers (the plugin's parse, a stored document's rows): tested
    # a column at a time, not converted pair by pair.
    if type(value) is dict and c.all_whole(value, value.values()):
        return tuple(sorted(value.items()))
    rows = c.whole_rows(value, 2)
    if rows is not None:
        return tuple(sorted(rows))  # type: ignore[arg-type]  # width 2: pairs
    items = value.items() if isinstance(value, dict) else value
    return tuple(sorted((int(k), int(v)) for k, v in items))


@attrs.frozen
class HistogramDelta:
    """How one endpoint's response-time histogram grew since the previous snapshot.

    From loadmanager's Locust plugin. Buckets are Locust's rounded
    milliseconds; only those that changed are kept. Summing the deltas of any
    stretch of snapshots gives that stretch's exact histogram.

    Attributes:
        key: ``"METHOD name"``, or ``"Aggregated"`` for every request.
        buckets: ``(bucket_ms, requests)`` pairs, by bucket.
    """

    key: str
    buckets: tuple[tuple[int, int], ...] = attrs.field(
        converter=_pairs, validator=c.rule(_never_negative)
    )

    def as_dict(self) -> dict[int, int]:
        """The buckets as ``{bucket_ms: requests}``."""
        return dict(self.buckets)

    @classmethod
    def _unchecked(cls, key: str, counts: dict[int, int]) -> HistogramDelta:
        """A delta of counts known whole and >= 0: the difference of two checked histograms.

        The run lifecycle makes one per endpoint per poll from numbers the wire
        parser has checked; checking them again was a third of that stage's
        CPU at 200 buckets (bench/bench_plugin_poll.py).
        """
        delta = object.__new__(cls)
        # attrs' own __init__ sets a frozen class's fields the same way.
        object.__setattr__(delta, "key", key)
        object.__setattr__(delta, "buckets", tuple(sorted(counts.items())))
        return delta


def _histogram_of(histograms: tuple[HistogramDelta, ...], key: str) -> dict[int, int] | None:
    # None: no histograms at all (no plugin); {}: the plugin, but no request for key.
    if not histograms:
        return None
    return next((h.as_dict() for h in histograms if h.key == key), {})


@attrs.frozen
class WorkerHealth:
    """One load generator at one moment: a worker's state, users and CPU.

    Past :data:`SATURATED_CPU` percent its figures are suspect: a saturated
    generator measures its own queueing, not the system under test.
    """

    id: str
    state: str
    user_count: int = attrs.field(validator=c.COUNT)
    cpu_usage: float = attrs.field(validator=c.MEASURE)

    @property
    def saturated(self) -> bool:
        """True at or past :data:`SATURATED_CPU` percent CPU."""
        return self.cpu_usage >= SATURATED_CPU


@attrs.frozen
class MetricSnapshot:
    """The state of a run's master at one moment, as the Monitor polled it.

    Attributes:
        load_test_run_id: The run the snapshot belongs to.
        timestamp: When it was taken (UTC, millisecond precision).
        state: What the master was doing (``spawning``, ``running``, ``stopped``...).
        slot: The poll slot: whole poll intervals since the run started. A run
            keeps at most one snapshot per slot, so two replicas that poll in
            the same slot store it once. ``None`` for snapshots not taken by
            the Monitor (imports, tests), which are never deduplicated.
        current_rps: Requests per second over Locust's recent window.
        current_fail_per_sec: Failures per second over the same window.
        current_p50: Locust's current 50th percentile response time (ms).
        current_p95: Locust's current 95th percentile response time (ms).
        total_requests: Requests since the run started.
        total_failures: Failures since the run started.
        endpoints: One row per endpoint (the aggregated row excluded).
        failures: The most frequent failures so far (at most
            :data:`MAX_LIVE_FAILURES`, by occurrences); the run keeps them all
            when it ends.
        workers: Each worker's state, users and CPU at that moment.
        histograms: With loadmanager's Locust plugin, each endpoint's (and the
            aggregated) histogram change since the previous snapshot; empty
            without it.
    """

    load_test_run_id: str = attrs.field(validator=c.OBJECT_ID)
    timestamp: datetime = attrs.field(validator=c.TIME)
    state: MasterState = attrs.field(converter=MasterState)
    user_count: int = attrs.field(validator=c.COUNT)
    worker_count: int = attrs.field(validator=c.COUNT)
    current_rps: float = attrs.field(validator=c.MEASURE)
    current_fail_per_sec: float = attrs.field(validator=c.MEASURE)
    total_requests: int = attrs.field(validator=c.COUNT)
    total_failures: int = attrs.field(validator=c.COUNT)
    current_p50: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    current_p95: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    endpoints: tuple[EndpointStats, ...] = attrs.field(default=(), converter=c.as_tuple)
    slot: int | None = attrs.field(default=None, validator=c.optional(c.COUNT))
    failures: tuple[Failure, ...] = attrs.field(default=(), converter=c.as_tuple)
    workers: tuple[WorkerHealth, ...] = attrs.field(default=(), converter=c.as_tuple)
    histograms: tuple[HistogramDelta, ...] = attrs.field(default=(), converter=c.as_tuple)

    def histogram(self, key: str) -> dict[int, int] | None:
        """This snapshot's histogram change for ``key``; ``None`` without the plugin."""
        return _histogram_of(self.histograms, key)


@attrs.frozen
class Percentiles:
    """The response-time percentiles of Locust's ``/stats/requests/csv`` (ms).

    ``None`` where Locust reports ``N/A`` (no request yet).
    """

    p50: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p66: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p75: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p80: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p90: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p95: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p98: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p99: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p99_9: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p99_99: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    p100: float | None = attrs.field(default=None, validator=_OPT_MEASURE)


@attrs.frozen
class EndpointSummary(EndpointKey):
    """One endpoint's (or the aggregated row's) cumulative figures at the end."""

    method: str
    name: str
    num_requests: int = attrs.field(validator=c.COUNT)
    num_failures: int = attrs.field(validator=c.COUNT)
    avg_response_time: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    min_response_time: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    max_response_time: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    median_response_time: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    avg_content_length: float | None = attrs.field(default=None, validator=_OPT_MEASURE)
    requests_per_sec: float = attrs.field(default=0.0, validator=c.MEASURE)
    failures_per_sec: float = attrs.field(default=0.0, validator=c.MEASURE)
    percentiles: Percentiles = Percentiles()

    @property
    def error_rate(self) -> float:
        """Failures over requests, 0.0 when there was no request."""
        return self.num_failures / self.num_requests if self.num_requests else 0.0


@attrs.frozen
class RunSummary:
    """A run's final figures, straight from Locust's own cumulative statistics.

    ``histograms`` are the final cumulative response-time histograms, per
    endpoint and ``"Aggregated"``, when the master had loadmanager's plugin
    (empty otherwise): several runs' percentiles merge them, never averaging.
    """

    taken_at: datetime = attrs.field(validator=c.TIME)
    aggregated: EndpointSummary
    endpoints: tuple[EndpointSummary, ...] = attrs.field(default=(), converter=c.as_tuple)
    histograms: tuple[HistogramDelta, ...] = attrs.field(default=(), converter=c.as_tuple)

    def histogram(self, key: str) -> dict[int, int] | None:
        """The final histogram of ``key``; ``None`` without the plugin."""
        return _histogram_of(self.histograms, key)

    def endpoint(self, key: str) -> EndpointSummary | None:
        """The row of ``"METHOD name"``, or ``None``."""
        return next((e for e in self.endpoints if e.key == key), None)

    def _repr_html_(self) -> str:
        headers = ["endpoint", "requests", "failures", "error %", "rps", "avg", "median"]
        headers += ["p95", "p99", "max"]
        rows = [
            [
                r.key,
                _html.num(r.num_requests),
                _html.num(r.num_failures),
                _html.num(100 * r.error_rate, digits=2),
                _html.num(r.requests_per_sec),
                _html.num(r.avg_response_time),
                _html.num(r.median_response_time),
                _html.num(r.percentiles.p95),
                _html.num(r.percentiles.p99),
                _html.num(r.max_response_time),
            ]
            for r in (*self.endpoints, self.aggregated)
        ]
        return _html.table(headers, rows) + "<small>times in ms</small>"


@attrs.frozen
class Stat:
    """Minimum, mean and maximum of one figure within a bucket (``None`` if no value)."""

    min: float | None = None
    avg: float | None = None
    max: float | None = None


@attrs.frozen
class SeriesBucket:
    """One bucket of a downsampled time series.

    Attributes:
        start: The bucket's first instant (inclusive).
        end: The instant after its last (exclusive).
        samples: How many snapshots fell into it (buckets with none are omitted).
    """

    start: datetime
    end: datetime
    samples: int
    user_count: Stat
    current_rps: Stat
    current_fail_per_sec: Stat
    current_p50: Stat
    current_p95: Stat
