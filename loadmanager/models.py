"""Load tests, their runs, and the values they are made of.

Plain frozen attrs classes: they know nothing of JSON, databases or HTTP. A change
is a method that returns a new object, so an illegal change (a status transition
the table refuses) can never be half-applied.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from . import _constraints as c
from . import _html
from .errors import FieldError, InvalidTransitionError, ValidationError
from .metrics import Failure, RunSummary, UserException, exceptions_html, failures_html
from .status import RunStatus
from .verdicts import Verdict

__all__ = [
    "METRICS",
    "OPERATORS",
    "Audit",
    "Baseline",
    "BaselineFigure",
    "ClusterHandle",
    "LoadTest",
    "LoadTestRun",
    "LoadTestSpec",
    "RunOverrides",
    "RunParameters",
    "Threshold",
]

_NOT_TIMES = ("rps", "fail_rps", "error_rate", "requests", "failures", "users")

METRICS = (
    "avg",
    "min",
    "max",
    "median",
    "p50",
    "p66",
    "p75",
    "p80",
    "p90",
    "p95",
    "p98",
    "p99",
    "p99.9",
    "p99.99",
    "p100",
    *_NOT_TIMES,
)
"""Figures a threshold can be set on; percentiles are the ones Locust's CSV has."""

OPERATORS = ("<", "<=", ">", ">=", "==", "!=")
"""Comparison operators; a threshold states what must hold."""


@attrs.frozen
class Audit:
    """Who created and last changed an object, and when (UTC, set by the library)."""

    created_at: datetime = attrs.field(validator=c.TIME)
    created_by: str = attrs.field(validator=c.ACTOR)
    updated_at: datetime = attrs.field(validator=c.TIME)
    updated_by: str = attrs.field(validator=c.ACTOR)

    @classmethod
    def new(cls, at: datetime, actor: str) -> Audit:
        """The audit of an object created by ``actor`` at ``at``."""
        return cls(created_at=at, created_by=actor, updated_at=at, updated_by=actor)

    def touched(self, at: datetime, actor: str) -> Audit:
        """The same audit after ``actor`` changed the object at ``at``."""
        return attrs.evolve(self, updated_at=at, updated_by=actor)


TIME_METRICS = frozenset(METRICS) - frozenset(_NOT_TIMES)
"""Metrics measured in milliseconds; their values may carry ``ms`` or ``s``."""

WINDOW_METRICS = ("users", "rps", "fail_rps", "error_rate", "median", "p50", "p95")
"""Metrics Locust reports live, so they can be judged over a time window."""

WINDOW_MODES = ("for", "over")
BASELINE_RELATIONS = ("*", "+")


def _window(value: Any) -> str | None:
    if not c.is_number(value):
        return "must be a number of seconds"
    if not float(value).is_integer() or not 1 <= value <= 86_400:
        return "must be whole seconds from 1 to 86400"
    return None


@attrs.frozen
class Threshold:
    """A criterion a run must satisfy, such as ``GET /items: p95 < 300ms for 10s``.

    Attributes:
        metric: One of :data:`METRICS`.
        op: One of :data:`OPERATORS`; the criterion holds when ``observed op limit``.
        value: The number as written: the limit itself, or with ``baseline`` the
            factor (``*``) or the offset (``+``) applied to the baseline's figure.
        scope: ``"METHOD name"`` of one endpoint as Locust reports it; ``None``
            means the aggregated row.
        unit: ``ms`` or ``s`` for times, ``%`` for ``error_rate``; ``None`` means
            milliseconds for times and a ratio (0 to 1) for ``error_rate``.
        baseline: ``"*"`` or ``"+"`` to make the limit relative to the baseline run.
        window: Seconds; with ``window_mode`` the criterion is judged live on
            snapshots instead of on the final figures.
        window_mode: ``"for"``: broken only when violated at every snapshot for
            ``window`` seconds in a row; ``"over"``: judged on the mean of the
            last ``window`` seconds.
        abort_on_fail: Stop the run as soon as the (windowed) criterion breaks.
    """

    metric: str = attrs.field(validator=c.rule(c.one_of(*METRICS)))
    op: str = attrs.field(validator=c.rule(c.one_of(*OPERATORS)))
    value: float = attrs.field(validator=c.FINITE)
    scope: str | None = attrs.field(default=None, validator=c.optional(c.NAME))
    unit: str | None = attrs.field(
        default=None, validator=c.optional(c.rule(c.one_of("ms", "s", "%")))
    )
    baseline: str | None = attrs.field(
        default=None, validator=c.optional(c.rule(c.one_of(*BASELINE_RELATIONS)))
    )
    window: float | None = attrs.field(default=None, validator=c.optional(c.rule(_window)))
    window_mode: str | None = attrs.field(
        default=None, validator=c.optional(c.rule(c.one_of(*WINDOW_MODES)))
    )
    abort_on_fail: bool = False

    def __attrs_post_init__(self) -> None:
        problems = []
        if (self.window is None) != (self.window_mode is None):
            problems.append(FieldError("windowMode", "window and windowMode go together"))
        if self.window is not None and self.metric not in WINDOW_METRICS:
            allowed = ", ".join(WINDOW_METRICS)
            problems.append(
                FieldError("metric", f"cannot be judged over a window; live metrics: {allowed}")
            )
        if self.abort_on_fail and self.window is None:
            problems.append(
                FieldError("abortOnFail", "needs a window: final figures exist only at the end")
            )
        if self.unit is not None:
            if self.baseline == "*":
                problems.append(FieldError("unit", "a factor of the baseline takes no unit"))
            elif self.unit in ("ms", "s") and self.metric not in TIME_METRICS:
                problems.append(FieldError("unit", f"{self.metric} is not a time"))
            elif self.unit == "%" and self.metric != "error_rate":
                problems.append(FieldError("unit", "% is for error_rate"))
        if problems:
            raise ValidationError(problems)

    @property
    def windowed(self) -> bool:
        """Whether the criterion is judged live over a window."""
        return self.window is not None

    def limit(self, baseline_figure: float | None = None) -> float | None:
        """The limit in canonical units (ms, ratio), or ``None`` without a needed baseline."""
        amount = self.value
        if self.unit == "s":
            amount *= 1000.0
        elif self.unit == "%":
            amount /= 100.0
        if self.baseline is None:
            return amount
        if baseline_figure is None:
            return None
        return baseline_figure * amount if self.baseline == "*" else baseline_figure + amount


@attrs.frozen(kw_only=True)
class _Definition:
    """The caller-editable fields a LoadTestSpec and a LoadTest share, declared once."""

    name: str = attrs.field(validator=c.NAME)
    tenant_id: str = attrs.field(validator=c.IDENT)
    env_id: str = attrs.field(validator=c.IDENT)
    locust_cluster_id: str = attrs.field(validator=c.IDENT)
    target_url: str = attrs.field(validator=c.URL)
    locustfile: str = attrs.field(validator=c.LOCUSTFILE)
    default_users: int = attrs.field(validator=c.USERS)
    default_spawn_rate: float = attrs.field(validator=c.SPAWN_RATE)
    description: str = attrs.field(default="", validator=c.DESCRIPTION)
    tags: tuple[str, ...] = attrs.field(default=(), converter=c.as_tuple, validator=c.TAGS)
    default_run_time: str | None = attrs.field(
        default=None, converter=c.seconds_as_duration, validator=c.optional(c.RUN_TIME)
    )
    thresholds: tuple[Threshold, ...] = attrs.field(default=(), converter=c.as_tuple)


@attrs.frozen(kw_only=True)
class LoadTestSpec(_Definition):
    """What a caller says about a load test: the body of a create or update.

    Attributes:
        created_by: The identity the body claims, accepted so that the seed's
            example bodies work as written; it is only compared with the caller's
            actor and never stored.
    """

    created_by: str | None = attrs.field(default=None, validator=c.optional(c.ACTOR), eq=False)


# Fields of a spec that a LoadTest stores; created_by is a claim, never stored.
SPEC_FIELDS = tuple(a.name for a in attrs.fields(_Definition))


@attrs.frozen(kw_only=True)
class LoadTest(_Definition):
    """A load test definition: what to run, against what, on which cluster.

    Create one with :meth:`from_spec`; the library sets ``id``, ``version`` and
    ``audit``. ``version`` starts at 1 and grows by one with each stored update.
    """

    id: str = attrs.field(validator=c.OBJECT_ID)
    audit: Audit
    baseline_run_id: str | None = attrs.field(default=None, validator=c.optional(c.OBJECT_ID))
    version: int = attrs.field(default=1, validator=c.VERSION)

    @classmethod
    def from_spec(cls, spec: LoadTestSpec, *, id: str, at: datetime, actor: str) -> LoadTest:  # noqa: A002
        """A new load test (version 1) from a validated spec."""
        fields = {name: getattr(spec, name) for name in SPEC_FIELDS}
        return cls(id=id, audit=Audit.new(at, actor), **fields)

    def with_baseline(self, run_id: str | None, *, at: datetime, actor: str) -> LoadTest:
        """This test comparing relative criteria with run ``run_id`` (``None``: automatic)."""
        return attrs.evolve(self, baseline_run_id=run_id, audit=self.audit.touched(at, actor))

    def spec(self) -> LoadTestSpec:
        """The caller-editable part, the base an update is merged onto."""
        return LoadTestSpec(**{name: getattr(self, name) for name in SPEC_FIELDS})

    def revised(self, spec: LoadTestSpec, *, at: datetime, actor: str) -> LoadTest:
        """This test with every editable field taken from ``spec``.

        The version is left alone: the repository bumps it when it stores the update.
        """
        fields = {name: getattr(spec, name) for name in SPEC_FIELDS}
        return attrs.evolve(self, audit=self.audit.touched(at, actor), **fields)

    @property
    def created_by(self) -> str:
        """Shortcut for ``audit.created_by``."""
        return self.audit.created_by

    def overview(self) -> list[tuple[str, str]]:
        """The test's key facts as (label, text) pairs, for displays and pages."""
        return [
            ("id", self.id),
            ("tenant / env", f"{self.tenant_id} / {self.env_id}"),
            ("cluster", self.locust_cluster_id),
            ("target", self.target_url),
            ("locustfile", self.locustfile),
            (
                "defaults",
                f"{self.default_users} users at {self.default_spawn_rate:g}/s"
                + (f" for {self.default_run_time}" if self.default_run_time else ""),
            ),
            ("tags", ", ".join(self.tags) or "-"),
            (
                "thresholds",
                "; ".join(
                    (f"{t.scope}: " if t.scope else "") + f"{t.metric} {t.op} {t.value:g}"
                    for t in self.thresholds
                )
                or "-",
            ),
            ("created", f"{self.audit.created_at:%Y-%m-%d %H:%M:%S} by {self.audit.created_by}"),
            ("updated", f"{self.audit.updated_at:%Y-%m-%d %H:%M:%S} by {self.audit.updated_by}"),
            ("baseline run", self.baseline_run_id or "the last passed run (default)"),
            ("version", str(self.version)),
        ]

    def _repr_html_(self) -> str:
        return f"<h4>Load test: {_html.esc(self.name)}</h4>{_html.kv(self.overview())}"


@attrs.frozen
class BaselineFigure:
    """One figure of a baseline run that a relative criterion compares with.

    ``value`` is ``None`` when the baseline run has no such figure (the
    criterion is then not evaluated, never guessed).
    """

    metric: str
    scope: str | None = None
    value: float | None = attrs.field(default=None, validator=c.optional(c.FINITE))


@attrs.frozen
class Baseline:
    """The baseline run's figures, frozen onto a run when it starts.

    Only the figures the run's relative criteria need are kept, so judging the
    run later reads nothing else, and a baseline chosen later cannot change it.
    """

    run_id: str = attrs.field(validator=c.OBJECT_ID)
    figures: tuple[BaselineFigure, ...] = attrs.field(default=(), converter=c.as_tuple)

    def figure(self, metric: str, scope: str | None) -> float | None:
        """The baseline's figure for ``metric`` at ``scope``, if it has one."""
        return next(
            (f.value for f in self.figures if f.metric == metric and f.scope == scope), None
        )


@attrs.frozen
class RunParameters:
    """The parameters a run actually used, after defaults and overrides.

    Attributes:
        thresholds: The criteria the run is judged by, copied from its load test
            when it started: editing the test later never changes this run's verdict.
        baseline: The baseline figures its relative criteria compare with,
            resolved when it started; ``None`` when it has no baseline.
        poll_interval: Seconds between two snapshots; with the start time it
            defines the run's poll slots, which every replica shares.
        workers: The Locust workers provisioned for the run (an override, or
            the provider's users-per-worker rule); ``None`` on a static cluster.
        locustfile_sha256: The SHA-256 of the locustfile content the run ran,
            when the name resolved (always, on a provisioned cluster).
        locustfile_version: The stored version it ran; ``None`` for a file
            from a directory.
    """

    target_users: int = attrs.field(validator=c.USERS)
    spawn_rate: float = attrs.field(validator=c.SPAWN_RATE)
    target_url: str = attrs.field(validator=c.URL)
    run_time: str | None = attrs.field(
        default=None, converter=c.seconds_as_duration, validator=c.optional(c.RUN_TIME)
    )
    user_classes: tuple[str, ...] = attrs.field(
        default=(), converter=c.as_tuple, validator=c.USER_CLASSES
    )
    tags: tuple[str, ...] = attrs.field(default=(), converter=c.as_tuple, validator=c.TAGS)
    thresholds: tuple[Threshold, ...] = attrs.field(default=(), converter=c.as_tuple)
    baseline: Baseline | None = None
    poll_interval: float = attrs.field(default=2.0, validator=c.rule(c.positive_rate))
    workers: int | None = attrs.field(default=None, validator=c.optional(c.WORKERS))
    locustfile_sha256: str | None = attrs.field(default=None, validator=c.optional(c.SHA256))
    locustfile_version: int | None = attrs.field(default=None, validator=c.optional(c.VERSION))

    @property
    def run_time_seconds(self) -> int | None:
        """The run time in seconds, or ``None`` for a run that lasts until stopped."""
        return None if self.run_time is None else c.parse_duration(self.run_time)


@attrs.frozen
class RunOverrides:
    """The body of a start-run request: every field overrides a test default.

    ``tags`` are Locust task tags, passed on to the master, not the test's labels.
    """

    target_users: int | None = attrs.field(default=None, validator=c.optional(c.USERS))
    spawn_rate: float | None = attrs.field(default=None, validator=c.optional(c.SPAWN_RATE))
    run_time: str | None = attrs.field(
        default=None, converter=c.seconds_as_duration, validator=c.optional(c.RUN_TIME)
    )
    target_url: str | None = attrs.field(default=None, validator=c.optional(c.URL))
    user_classes: tuple[str, ...] | None = attrs.field(
        default=None, validator=c.optional(c.USER_CLASSES)
    )
    tags: tuple[str, ...] | None = attrs.field(default=None, validator=c.optional(c.TAGS))
    workers: int | None = attrs.field(default=None, validator=c.optional(c.WORKERS))
    created_by: str | None = attrs.field(default=None, validator=c.optional(c.ACTOR), eq=False)

    def resolve(
        self,
        test: LoadTest,
        *,
        baseline: Baseline | None = None,
        poll_interval: float = 2.0,
    ) -> RunParameters:
        """The parameters for a run of ``test``: each override, else the default.

        The test's criteria and the given ``baseline`` are frozen into them.
        """

        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        return RunParameters(
            target_users=pick(self.target_users, test.default_users),
            spawn_rate=pick(self.spawn_rate, test.default_spawn_rate),
            target_url=pick(self.target_url, test.target_url),
            run_time=pick(self.run_time, test.default_run_time),
            user_classes=pick(self.user_classes, ()),
            tags=pick(self.tags, ()),
            workers=self.workers,
            thresholds=test.thresholds,
            baseline=baseline,
            poll_interval=poll_interval,
        )


@attrs.frozen
class ClusterHandle:
    """The cluster a provider made for one run: enough to reach it and to release it.

    Recorded on the run (pending) before Locust is asked to swarm, so an heir
    that finds the run after a crash reaches the same master and releases the
    same processes or objects.

    Attributes:
        master_url: The master's web API address.
        workers: How many workers it was given.
        ref: The provider's own names for what it made (pids, a namespace and
            object names); opaque to everything but the provider.
    """

    master_url: str = attrs.field(validator=c.URL)
    workers: int = attrs.field(validator=c.WORKERS)
    ref: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class LoadTestRun:
    """One execution of a :class:`LoadTest` on its cluster.

    Status changes go through :meth:`transition`, which consults the single table
    in :mod:`loadmanager.status` and refuses everything else.

    ``snapshots_dropped`` counts the snapshots lost while the storage was
    unreachable for longer than the replica's buffer holds (0 normally).

    ``exceptions`` are those raised in the locustfile's own code, with their
    counts, stored when the run ends.

    ``failures`` is Locust's complete failures table, stored when the run ends
    (live, the latest snapshot has the most frequent ones). ``saturated`` says a
    load generator passed 90 % CPU during the run.

    ``exclusive`` runs (on a static cluster) hold their cluster's lease while
    active; a run on a provisioned cluster has a cluster of its own, recorded
    in ``cluster`` once it is made.
    """

    id: str = attrs.field(validator=c.OBJECT_ID)
    load_test_id: str = attrs.field(validator=c.OBJECT_ID)
    tenant_id: str = attrs.field(validator=c.IDENT)
    env_id: str = attrs.field(validator=c.IDENT)
    locust_cluster_id: str = attrs.field(validator=c.IDENT)
    parameters: RunParameters
    audit: Audit
    status: RunStatus = attrs.field(default=RunStatus.PENDING, converter=RunStatus)
    started_at: datetime | None = attrs.field(default=None, validator=c.optional(c.TIME))
    ended_at: datetime | None = attrs.field(default=None, validator=c.optional(c.TIME))
    failure_reason: str | None = attrs.field(default=None, validator=c.optional(c.REASON))
    summary: RunSummary | None = None
    verdict: Verdict | None = None
    version: int = attrs.field(default=1, validator=c.VERSION)
    snapshots_dropped: int = attrs.field(default=0, validator=c.COUNT)
    exclusive: bool = True
    cluster: ClusterHandle | None = None
    failures: tuple[Failure, ...] = attrs.field(default=(), converter=c.as_tuple)
    exceptions: tuple[UserException, ...] = attrs.field(default=(), converter=c.as_tuple)
    saturated: bool = False

    @classmethod
    def new(
        cls,
        test: LoadTest,
        parameters: RunParameters,
        *,
        id: str,  # noqa: A002
        at: datetime,
        actor: str,
        exclusive: bool = True,
    ) -> LoadTestRun:
        """A pending run of ``test``, scoped to the test's tenant, env and cluster."""
        return cls(
            id=id,
            load_test_id=test.id,
            tenant_id=test.tenant_id,
            env_id=test.env_id,
            locust_cluster_id=test.locust_cluster_id,
            parameters=parameters,
            audit=Audit.new(at, actor),
            exclusive=exclusive,
        )

    @property
    def lease_key(self) -> str:
        """What the run holds while active: its cluster, or itself on a cluster of its own."""
        return self.locust_cluster_id if self.exclusive else f"run:{self.id}"

    @property
    def is_active(self) -> bool:
        """True while the run has not reached a terminal status."""
        return self.status.is_active

    def transition(
        self,
        to: RunStatus,
        *,
        at: datetime,
        actor: str,
        reason: str | None = None,
    ) -> LoadTestRun:
        """This run in status ``to``, or :class:`InvalidTransitionError`.

        Entering ``running`` sets ``started_at``; entering a terminal status sets
        ``ended_at``; ``reason`` is kept as ``failure_reason`` (why it failed, or
        why it was stopped).
        """
        to = RunStatus(to)
        if not self.status.can_become(to):
            raise InvalidTransitionError(self.id, self.status.value, to.value)
        changes: dict[str, Any] = {"status": to, "audit": self.audit.touched(at, actor)}
        if to is RunStatus.RUNNING:
            changes["started_at"] = at
        if to.is_terminal:
            changes["ended_at"] = at
        if reason is not None:
            changes["failure_reason"] = reason
        return attrs.evolve(self, **changes)

    def overview(self) -> list[tuple[str, str]]:
        """The run's key facts as (label, text) pairs, for displays and reports."""
        p = self.parameters
        status = self.status.value + (f" ({self.failure_reason})" if self.failure_reason else "")
        params = f"{p.target_users} users at {p.spawn_rate:g}/s"
        params += (f" for {p.run_time}" if p.run_time else "") + f" against {p.target_url}"
        return [
            ("id", self.id),
            ("load test", self.load_test_id),
            ("status", status),
            ("parameters", params),
            ("started", "-" if self.started_at is None else f"{self.started_at:%Y-%m-%d %H:%M:%S}"),
            ("ended", "-" if self.ended_at is None else f"{self.ended_at:%Y-%m-%d %H:%M:%S}"),
            ("verdict", "none" if self.verdict is None else self.verdict.outcome.value),
            ("load generators", "saturated (over 90 % CPU)" if self.saturated else "ok"),
        ]

    def _repr_html_(self) -> str:
        pairs = self.overview()
        parts = [f"<h4>Run {_html.esc(self.id)}</h4>", _html.kv(pairs)]
        if self.summary is not None:
            parts.append(self.summary._repr_html_())
        if self.verdict is not None:
            parts.append(self.verdict._repr_html_())
        if self.failures:
            parts.append(failures_html(self.failures))
        if self.exceptions:
            parts.append(exceptions_html(self.exceptions))
        return "".join(parts)

    def with_cluster(self, cluster: ClusterHandle, *, at: datetime, actor: str) -> LoadTestRun:
        """This run with the cluster a provider made for it."""
        return attrs.evolve(self, cluster=cluster, audit=self.audit.touched(at, actor))

    def with_dropped(self, count: int) -> LoadTestRun:
        """This run having lost ``count`` more snapshots (a storage outage past the buffer)."""
        return attrs.evolve(self, snapshots_dropped=self.snapshots_dropped + count)

    def with_summary(
        self,
        summary: RunSummary,
        verdict: Verdict | None = None,
        *,
        failures: tuple[Failure, ...] = (),
        exceptions: tuple[UserException, ...] = (),
        saturated: bool = False,
    ) -> LoadTestRun:
        """This run carrying Locust's final figures, failures, and the verdict on them."""
        if verdict is not None and saturated:
            verdict = attrs.evolve(verdict, saturated=True)
        return attrs.evolve(
            self,
            summary=summary,
            verdict=verdict,
            failures=failures,
            exceptions=exceptions,
            saturated=saturated,
        )
