"""Hypothesis strategies for every model, and for the junk callers may send.

Strategies that build valid models exclude surrogates so that a JSON round trip
of anything generated here is exact. Strategies that attack an entry point
(:func:`attacks`, :func:`attack_texts`) include them, with NUL bytes, deep
nesting, huge integers, naive datetimes, operator documents and bare strings
where collections are expected: those inputs found real defects.
"""

from __future__ import annotations

import string
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from .._constraints import MAX_USERS
from ..metrics import (
    EndpointStats,
    EndpointSummary,
    MetricSnapshot,
    Percentiles,
    RunSummary,
)
from ..models import (
    METRICS,
    OPERATORS,
    TIME_METRICS,
    WINDOW_METRICS,
    WINDOW_MODES,
    Audit,
    LoadTest,
    LoadTestRun,
    LoadTestSpec,
    RunOverrides,
    RunParameters,
    Threshold,
)
from ..status import RunStatus
from ..verdicts import CriterionResult, Outcome, Verdict

__all__ = [
    "attack_texts",
    "attacks",
    "audits",
    "identifiers",
    "json_values",
    "load_test_runs",
    "load_test_specs",
    "load_tests",
    "metric_snapshots",
    "object_ids",
    "run_overrides",
    "run_summaries",
    "times",
    "verdicts",
]

_TEXT = st.characters(blacklist_categories=("Cs", "Cc"))
_IDENT_CHARS = string.ascii_letters + string.digits + "._-"


def times() -> st.SearchStrategy[datetime]:
    """UTC datetimes with millisecond precision between 2000 and 2100."""
    return st.integers(946_684_800_000, 4_102_444_800_000).map(
        lambda ms: datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(
            microsecond=(ms % 1000) * 1000
        )
    )


def identifiers() -> st.SearchStrategy[str]:
    """Tenant, env and cluster ids."""
    return st.text(_IDENT_CHARS, min_size=1, max_size=64)


def object_ids() -> st.SearchStrategy[str]:
    """Library-style object ids."""
    return st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=32)


def _line(max_size: int) -> st.SearchStrategy[str]:
    return st.text(_TEXT, min_size=1, max_size=max_size).filter(lambda s: s.strip() != "")


_names = _line(200)
_tags = st.lists(_line(64), max_size=8).map(tuple)
_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){0,2}", fullmatch=True),
    st.sampled_from(["", ":8080", ":443"]),
    st.sampled_from(["", "/", "/api", "/v1/items?x=1"]),
)
_locustfiles = st.from_regex(r"[a-z_]{1,12}(/[a-z_]{1,12}){0,2}\.py", fullmatch=True)
_users = st.integers(1, MAX_USERS)
_rates = st.floats(0.01, 10_000, allow_nan=False, allow_infinity=False)
_durations = st.builds(
    lambda h, m, s: (f"{h}h" if h else "") + (f"{m}m" if m else "") + f"{s}s",
    st.integers(0, 3),
    st.integers(0, 59),
    st.integers(1, 59),
)
_measures = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
_opt_measures = st.none() | _measures
_counts = st.integers(0, 10**9)


@st.composite
def thresholds(draw: st.DrawFn) -> Threshold:
    """Valid criteria of every shape: units, baselines, windows, abort."""
    windowed = draw(st.booleans())
    metric = draw(st.sampled_from(WINDOW_METRICS if windowed else METRICS))
    baseline = draw(st.sampled_from([None, None, "*", "+"]))
    if baseline == "*":
        unit = None
    elif metric in TIME_METRICS:
        unit = draw(st.sampled_from([None, "ms", "s"]))
    elif metric == "error_rate":
        unit = draw(st.sampled_from([None, "%"]))
    else:
        unit = None
    return Threshold(
        metric=metric,
        op=draw(st.sampled_from(OPERATORS)),
        value=draw(st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)),
        scope=draw(st.none() | st.sampled_from(["GET /items", "POST /orders", "custom: name"])),
        unit=unit,
        baseline=baseline,
        window=float(draw(st.integers(1, 7200))) if windowed else None,
        window_mode=draw(st.sampled_from(WINDOW_MODES)) if windowed else None,
        abort_on_fail=draw(st.booleans()) if windowed else False,
    )


def load_test_specs() -> st.SearchStrategy[LoadTestSpec]:
    """Valid create/update bodies."""
    return st.builds(
        LoadTestSpec,
        name=_names,
        tenant_id=identifiers(),
        env_id=identifiers(),
        locust_cluster_id=identifiers(),
        target_url=_urls,
        locustfile=_locustfiles,
        default_users=_users,
        default_spawn_rate=_rates,
        description=st.text(_TEXT, max_size=50),
        tags=_tags,
        default_run_time=st.none() | _durations,
        thresholds=st.lists(thresholds(), max_size=3).map(tuple),
        created_by=st.none(),
    )


def audits() -> st.SearchStrategy[Audit]:
    """Audit records whose update is not before their creation."""
    return st.builds(
        lambda a, b, who, who2: Audit(min(a, b), who, max(a, b), who2),
        times(),
        times(),
        _line(40),
        _line(40),
    )


def load_tests() -> st.SearchStrategy[LoadTest]:
    """Valid stored load tests."""
    return st.builds(
        lambda spec, id_, audit, version: LoadTest(
            id=id_,
            audit=audit,
            version=version,
            **{k: getattr(spec, k) for k in _spec_fields()},
        ),
        load_test_specs(),
        object_ids(),
        audits(),
        st.integers(1, 1000),
    )


def _spec_fields() -> tuple[str, ...]:
    from ..models import SPEC_FIELDS

    return SPEC_FIELDS


def run_parameters() -> st.SearchStrategy[RunParameters]:
    """Resolved run parameters."""
    return st.builds(
        RunParameters,
        target_users=_users,
        spawn_rate=_rates,
        target_url=_urls,
        run_time=st.none() | _durations,
        user_classes=st.lists(
            st.from_regex(r"[A-Z][A-Za-z0-9_]{0,15}", fullmatch=True), max_size=3
        ).map(tuple),
        tags=_tags,
    )


def run_overrides() -> st.SearchStrategy[RunOverrides]:
    """Start-run bodies."""
    return st.builds(
        RunOverrides,
        target_users=st.none() | _users,
        spawn_rate=st.none() | _rates,
        run_time=st.none() | _durations,
        target_url=st.none() | _urls,
        user_classes=st.none(),
        tags=st.none() | _tags,
    )


def percentiles() -> st.SearchStrategy[Percentiles]:
    """Percentile sets (any may be missing)."""
    return st.builds(Percentiles, *([_opt_measures] * 11))


def endpoint_summaries() -> st.SearchStrategy[EndpointSummary]:
    """Rows of a final summary."""
    return st.builds(
        EndpointSummary,
        method=st.sampled_from(["GET", "POST", ""]),
        name=_line(30),
        num_requests=_counts,
        num_failures=_counts,
        avg_response_time=_opt_measures,
        min_response_time=_opt_measures,
        max_response_time=_opt_measures,
        median_response_time=_opt_measures,
        avg_content_length=_opt_measures,
        requests_per_sec=_measures,
        failures_per_sec=_measures,
        percentiles=percentiles(),
    )


def run_summaries() -> st.SearchStrategy[RunSummary]:
    """Final summaries."""
    return st.builds(
        RunSummary,
        taken_at=times(),
        aggregated=endpoint_summaries(),
        endpoints=st.lists(endpoint_summaries(), max_size=3).map(tuple),
    )


def load_test_runs() -> st.SearchStrategy[LoadTestRun]:
    """Runs in any status, with the fields that status implies."""

    def build(
        id_: str,
        test_id: str,
        tenant: str,
        env: str,
        cluster: str,
        params: RunParameters,
        audit: Audit,
        status: RunStatus,
        summary: RunSummary | None,
        verdict: Verdict | None,
        version: int,
    ) -> LoadTestRun:
        ended = status.is_terminal
        return LoadTestRun(
            id=id_,
            load_test_id=test_id,
            tenant_id=tenant,
            env_id=env,
            locust_cluster_id=cluster,
            parameters=params,
            audit=audit,
            status=status,
            started_at=None if status is RunStatus.PENDING else audit.created_at,
            ended_at=audit.updated_at if ended else None,
            failure_reason="master unreachable" if status is RunStatus.FAILED else None,
            summary=summary if ended else None,
            verdict=verdict if ended else None,
            version=version,
        )

    return st.builds(
        build,
        object_ids(),
        object_ids(),
        identifiers(),
        identifiers(),
        identifiers(),
        run_parameters(),
        audits(),
        st.sampled_from(RunStatus),
        st.none() | run_summaries(),
        st.none() | verdicts(),
        st.integers(1, 1000),
    )


def verdicts() -> st.SearchStrategy[Verdict]:
    """Verdicts with any mix of criterion outcomes."""
    result = st.builds(
        CriterionResult,
        criterion=_line(40),
        metric=st.sampled_from(METRICS),
        op=st.sampled_from(OPERATORS),
        threshold=st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
        outcome=st.sampled_from(Outcome),
        observed=_opt_measures,
        scope=st.none() | st.sampled_from(["GET /items"]),
        reason=st.none() | _line(40),
    )
    return st.lists(result, max_size=4).map(Verdict.of)


def endpoint_stats() -> st.SearchStrategy[EndpointStats]:
    """Rows of a live snapshot."""
    return st.builds(
        EndpointStats,
        method=st.sampled_from(["GET", "POST"]),
        name=_line(30),
        num_requests=_counts,
        num_failures=_counts,
        current_rps=_measures,
        current_fail_per_sec=_measures,
        avg_response_time=_opt_measures,
        min_response_time=_opt_measures,
        max_response_time=_opt_measures,
        median_response_time=_opt_measures,
        p95_response_time=_opt_measures,
        p99_response_time=_opt_measures,
    )


def metric_snapshots(
    run_id: st.SearchStrategy[str] | None = None,
    at: st.SearchStrategy[datetime] | None = None,
) -> st.SearchStrategy[MetricSnapshot]:
    """Live snapshots, optionally of one run or within some times."""
    return st.builds(
        MetricSnapshot,
        load_test_run_id=run_id if run_id is not None else object_ids(),
        timestamp=at if at is not None else times(),
        state=st.sampled_from(["spawning", "running", "stopped"]),
        user_count=st.integers(0, 10_000),
        worker_count=st.integers(0, 100),
        current_rps=_measures,
        current_fail_per_sec=_measures,
        total_requests=_counts,
        total_failures=_counts,
        current_p50=_opt_measures,
        current_p95=_opt_measures,
        endpoints=st.lists(endpoint_stats(), max_size=3).map(tuple),
    )


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Arbitrary JSON: what an untrusted caller may send."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(_TEXT, max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(_TEXT, max_size=12), inner, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def near_documents(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid document with some fields replaced, removed or added at random.

    Arbitrary JSON rarely gets past "must be an object"; this reaches every
    field's own checks.
    """
    keys = sorted(valid)
    return st.builds(
        lambda replaced, removed, added: {
            **{k: v for k, v in valid.items() if k not in removed},
            **replaced,
            **added,
        },
        st.dictionaries(st.sampled_from(keys), json_values(8), max_size=4),
        st.sets(st.sampled_from(keys), max_size=3),
        st.dictionaries(st.text(_TEXT, max_size=8), json_values(4), max_size=2),
    )


def attack_texts() -> st.SearchStrategy[str]:
    """Strings a hostile or careless caller sends: surrogates, NUL, control characters."""
    specials = st.sampled_from(
        ["", " ", "\x00", "x\ud800", "\udfff", "a" * 5000, "$ne", ".*", "../etc", "\u202e"]
    )
    return specials | st.text(max_size=30) | st.text(st.characters(), max_size=8)


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def attacks() -> st.SearchStrategy[Any]:
    """Any value at all, in the shapes that have broken entry points before."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.sampled_from([2**63, -(2**63) - 1, 10**30, -1, 0])
        | st.floats()
        | attack_texts()
        | st.binary(max_size=8)
        | st.datetimes()  # naive
        | st.datetimes(timezones=st.just(timezone.utc))
        | st.just(timedelta(seconds=1))
        | st.sampled_from([{"$ne": None}, {"$gt": ""}, {"$where": "1"}, object()])
        | st.sampled_from([_nested(40), _nested(200)])
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.tuples(inner)
            | st.frozensets(st.integers() | st.text(max_size=4), max_size=3)
            | st.dictionaries(attack_texts(), inner, max_size=3)
        ),
        max_leaves=10,
    )
