"""Property: every backend's series agrees with brute force over the raw snapshots."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run, make_snapshot

T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)
FIELDS = ("user_count", "current_rps", "current_fail_per_sec", "current_p50", "current_p95")
_ids = itertools.count()


@pytest.fixture
def storage(each_storage: lm.Storage) -> lm.Storage:
    each_storage.load_tests.add(make_load_test(id="t"))
    return each_storage


def brute_force(
    snaps: list[lm.MetricSnapshot], buckets: int, start: datetime | None, end: datetime | None
) -> list[tuple[datetime, int, list[tuple[float | None, float | None, float | None]]]]:
    if not snaps:
        return []
    lo = start or min(s.timestamp for s in snaps)
    hi = end or max(s.timestamp for s in snaps) + timedelta(milliseconds=1)
    inside = [s for s in snaps if lo <= s.timestamp < hi]
    if not inside or hi <= lo:
        return []
    span_ms = round((hi - lo).total_seconds() * 1000)
    width = max(1, math.ceil(span_ms / buckets))
    groups: dict[int, list[lm.MetricSnapshot]] = {}
    for s in inside:
        groups.setdefault(round((s.timestamp - lo).total_seconds() * 1000) // width, []).append(s)
    out = []
    for index in sorted(groups):
        members = groups[index]
        stats = []
        for f in FIELDS:
            values = [float(getattr(m, f)) for m in members if getattr(m, f) is not None]
            stats.append(
                (min(values), sum(values) / len(values), max(values))
                if values
                else (None, None, None)
            )
        out.append((lo + timedelta(milliseconds=index * width), len(members), stats))
    return out


measure = st.none() | st.floats(0, 10_000, allow_nan=False).map(lambda x: round(x, 3))
snapshot_args = st.tuples(
    st.integers(0, 120_000),  # offset in ms
    st.integers(0, 500),
    st.floats(0, 5_000, allow_nan=False).map(lambda x: round(x, 3)),
    measure,
    measure,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    points=st.lists(snapshot_args, max_size=40, unique_by=lambda p: p[0]),
    buckets=st.integers(1, 60),
    window=st.none() | st.tuples(st.integers(-5_000, 60_000), st.integers(1, 90_000)),
)
def test_buckets_agree_with_brute_force(
    storage: lm.Storage,
    points: list[tuple[int, int, float, float | None, float | None]],
    buckets: int,
    window: tuple[int, int] | None,
) -> None:
    run = storage.runs.add(
        make_run(storage.load_tests.get("t"), id=f"run{next(_ids)}", status=RunStatus.FINISHED)
    )
    snaps = [
        make_snapshot(
            run.id,
            T0 + timedelta(milliseconds=offset),
            user_count=users,
            current_rps=rps,
            current_p50=p50,
            current_p95=p95,
            endpoints=(),
        )
        for offset, users, rps, p50, p95 in points
    ]
    storage.metrics.add_many(snaps)
    start = end = None
    if window is not None:
        start = T0 + timedelta(milliseconds=window[0])
        end = start + timedelta(milliseconds=window[1])
    got = storage.metrics.series(run.id, buckets, start=start, end=end)
    expected = brute_force(snaps, buckets, start, end)
    assert [(b.start, b.samples) for b in got] == [(e[0], e[1]) for e in expected]
    for bucket, (_, _, stats) in zip(got, expected, strict=True):
        for field, (lo, avg, hi) in zip(FIELDS, stats, strict=True):
            stat: Any = getattr(bucket, field)
            assert (stat.min, stat.max) == (lo, hi), field
            if avg is None:
                assert stat.avg is None
            else:
                assert stat.avg == pytest.approx(avg, rel=1e-9, abs=1e-9), field
