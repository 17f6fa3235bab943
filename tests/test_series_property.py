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

T0 = datetime(2025, 6, 1, 0, 0, 3, 250_000, tzinfo=timezone.utc)  # off every level
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FIELDS = ("user_count", "current_rps", "current_fail_per_sec", "current_p50", "current_p95")
_ids = itertools.count()


@pytest.fixture
def storage(each_storage: lm.Storage) -> lm.Storage:
    each_storage.load_tests.add(make_load_test(id="t"))
    return each_storage


LEVELS_MS = (10_000, 60_000, 600_000)


def layout(lo_ms: int, hi_ms: int, buckets: int) -> tuple[int, int, int]:
    """The documented layout, written out again: (start, end, width) in ms."""
    width = max(1, math.ceil((hi_ms - lo_ms) / buckets))
    fitting = [level for level in LEVELS_MS if level <= width]
    if not fitting:
        return lo_ms, hi_ms, width
    level = fitting[-1]
    lo_ms, hi_ms = lo_ms // level * level, math.ceil(hi_ms / level) * level
    return lo_ms, hi_ms, math.ceil((hi_ms - lo_ms) / (buckets * level)) * level


def brute_force(
    snaps: list[lm.MetricSnapshot], buckets: int, start: datetime | None, end: datetime | None
) -> list[tuple[datetime, int, list[tuple[float | None, float | None, float | None]]]]:
    def ms(t: datetime) -> int:
        return round((t - EPOCH).total_seconds() * 1000)

    asked = [s for s in snaps if (start is None or s.timestamp >= start)]
    asked = [s for s in asked if end is None or s.timestamp < end]
    if (start is None or end is None) and not asked:
        return []
    lo = ms(start) if start else min(ms(s.timestamp) for s in asked)
    hi = ms(end) if end else max(ms(s.timestamp) for s in asked) + 1
    if hi <= lo:
        return []
    lo, hi, width = layout(lo, hi, buckets)
    groups: dict[int, list[lm.MetricSnapshot]] = {}
    for s in snaps:
        if lo <= ms(s.timestamp) < hi:
            groups.setdefault((ms(s.timestamp) - lo) // width, []).append(s)
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
        out.append((EPOCH + timedelta(milliseconds=lo + index * width), len(members), stats))
    return out


measure = st.none() | st.floats(0, 10_000, allow_nan=False).map(lambda x: round(x, 3))
snapshot_args = st.tuples(
    st.integers(0, 120_000) | st.integers(0, 4_000_000),  # offset in ms
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
    window=st.none()
    | st.tuples(st.integers(-5_000, 60_000), st.integers(1, 90_000))
    | st.tuples(st.integers(-700_000, 4_000_000), st.integers(1, 8_000_000)),
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
