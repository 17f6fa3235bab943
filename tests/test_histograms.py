"""Histogram arithmetic: exact percentiles of windows and of several runs.

The walk is Locust's own; the real comparison with Locust's final CSV is in
test_plugin_real.py.
"""

from __future__ import annotations

import ast
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager import histograms as h
from loadmanager.locust import _wire
from loadmanager.locust.client import PLUGIN_ROUTE
from loadmanager.locust.local import PLUGIN
from loadmanager.metrics import HistogramDelta
from loadmanager.testing import make_load_test, make_run, make_snapshot

buckets = st.dictionaries(st.integers(0, 60_000), st.integers(1, 50), max_size=40)


def expand(histogram: dict[int, int]) -> list[int]:
    return sorted(b for b, n in histogram.items() for _ in range(n))


@given(buckets, buckets)
def test_merged_percentiles_are_those_of_the_concatenated_samples(
    a: dict[int, int], b: dict[int, int]
) -> None:
    merged = h.merge([a, b])
    samples = expand(a) + expand(b)
    assert h.total(merged) == len(samples)
    concatenated = h.merge([{s: 1} for s in samples])
    for fraction in h.PERCENTILES:
        assert h.percentile(merged, fraction) == h.percentile(concatenated, fraction)


@given(buckets, buckets)
def test_a_window_is_the_difference_of_two_cumulative_histograms(
    before: dict[int, int], window: dict[int, int]
) -> None:
    later = h.merge([before, window])
    assert h.diff(later, before) == {k: v for k, v in window.items() if v}


@given(st.lists(st.tuples(buckets, st.booleans()), max_size=12))
def test_a_sliding_window_holds_the_merge_of_what_is_inside(
    changes: list[tuple[dict[int, int], bool]],
) -> None:
    """Changes added, then some taken away again: exactly the merge of the rest,
    with no bucket left at zero (a zero bucket is a wrong p100)."""
    inside: dict[int, int] = {}
    for change, _ in changes:
        h.accumulate(inside, change)
    for change, leaves in changes:
        if leaves:
            h.accumulate(inside, change, -1)
    assert inside == h.merge(change for change, leaves in changes if not leaves)


counts = st.dictionaries(st.integers(0, 60_000), st.integers(0, 50), max_size=40)


@given(st.dictionaries(st.integers(0, 300), st.tuples(st.integers(0, 9), st.integers(0, 9))))
def test_diff_is_the_bucket_by_bucket_rule_resets_included(
    pairs: dict[int, tuple[int, int]],
) -> None:
    """The C-level path and the reset path give what the rule says."""
    later = {b: n for b, (n, _) in pairs.items() if b % 5}  # some buckets only earlier
    earlier = {b: n for b, (_, n) in pairs.items() if b % 7}  # some only later
    rule = {}
    for bucket, count in later.items():
        before = earlier.get(bucket, 0)
        rule[bucket] = count - before if count >= before else count
    assert h.diff(later, earlier) == {k: v for k, v in rule.items() if v}


@given(counts)
def test_a_delta_reads_numbers_and_their_text_alike(histogram: dict[int, int]) -> None:
    as_numbers = HistogramDelta("GET /x", histogram)
    as_text = HistogramDelta("GET /x", [(str(k), str(v)) for k, v in histogram.items()])
    assert as_numbers == as_text
    assert as_numbers.buckets == tuple(sorted(histogram.items()))


@given(counts, st.integers(-(2**64), -1), st.booleans(), st.sampled_from(["dict", "rows", "text"]))
def test_a_delta_refuses_a_negative_bucket_or_count(
    histogram: dict[int, int], negative: int, as_count: bool, form: str
) -> None:
    """Deltas count requests that ended; none is ever below zero, nor a response time."""
    bad = {**histogram, 7: negative} if as_count else {**histogram, negative: 1}
    value: object = bad
    if form != "dict":
        value = [(str(k), str(v)) if form == "text" else (k, v) for k, v in bad.items()]
    with pytest.raises(lm.ValidationError) as caught:
        HistogramDelta("GET /x", value)
    assert [e.path for e in caught.value.errors] == ["buckets"]


@given(counts, counts)
def test_the_lifecycles_unchecked_delta_is_the_checked_one(
    later: dict[int, int], earlier: dict[int, int]
) -> None:
    """What the lifecycle makes without checking equals what the checks give."""
    change = h.diff(h.merge([later, earlier]), later)
    assert HistogramDelta._unchecked("GET /x", change) == HistogramDelta("GET /x", change)
    reset = h.diff(earlier, h.merge([later, earlier, {1: 1}]))  # statistics reset between
    assert HistogramDelta._unchecked("GET /x", reset) == HistogramDelta("GET /x", reset)


@given(counts, st.sampled_from(["list", "tuple"]))
def test_a_delta_read_back_from_its_document_is_the_same_delta(
    histogram: dict[int, int], rows: str
) -> None:
    """Stored documents are read back a column at a time (lists from JSON,
    tuples from the document as written); the result is the delta written."""
    delta = HistogramDelta("GET /x", histogram)
    doc = lm.to_dict(delta)
    if rows == "list":
        doc = json.loads(json.dumps(doc))
    assert lm.from_dict(HistogramDelta, doc) == delta


@given(buckets)
def test_both_plugin_formats_give_the_same_histogram(histogram: dict[int, int]) -> None:
    row = {"method": "GET", "name": "/x", "numRequests": h.total(histogram), "numFailures": 0}
    keyed = {**row, "histogram": {str(k): v for k, v in histogram.items()}}
    ordered = sorted(histogram.items())
    arrays = {**row, "buckets": [k for k, _ in ordered], "counts": [v for _, v in ordered]}
    read = [
        _wire.parse_figures(
            json.dumps(
                {"format": form, "entries": [entry], "total": {**entry, "name": "Aggregated"}}
            ),
            "http://m/loadmanager/v1/figures",
        )
        for form, entry in ((1, keyed), (2, arrays))
    ]
    assert read[0] == read[1]
    assert read[1].endpoints[0].histogram == histogram


def test_percentiles_follow_locusts_walk() -> None:
    # 100 requests: 90 at 10 ms, 10 at 500 ms. Locust's calculate_response_time_percentile
    # answers 10 for p89 and 500 for p90 and p95 (checked against locust 2.47).
    histogram = {10: 90, 500: 10}
    assert h.percentile(histogram, 0.89) == 10
    assert h.percentile(histogram, 0.9) == 500
    assert h.percentile(histogram, 0.95) == 500
    assert h.percentile(histogram, 1.0) == 500
    assert h.percentile({}, 0.95) is None
    with pytest.raises(ValueError, match="fraction"):
        h.percentile(histogram, 95)


def test_merged_p95_differs_from_the_average_of_two_p95s() -> None:
    fast = {10: 100}  # a run where everything took 10 ms
    slow = {10: 900, 1000: 100}  # a run with a slow tenth
    averaged = (h.percentile(fast, 0.95) + h.percentile(slow, 0.95)) / 2  # type: ignore[operator]
    merged = h.percentile(h.merge([fast, slow]), 0.95)
    assert averaged == 505.0
    assert merged == 1000  # 100 of 1,100 requests took 1 s: more than 5 %


def test_a_reset_counts_from_zero_again() -> None:
    assert h.diff({10: 3}, {10: 7, 20: 1}) == {10: 3}


def test_the_plugin_stands_alone_and_agrees_with_the_client() -> None:
    # Read, not imported: importing locust would monkey-patch this process.
    tree = ast.parse(PLUGIN.read_text())
    constants = {
        t.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name) and t.id in ("ROUTE", "FORMAT")
    }
    assert constants == {"ROUTE": PLUGIN_ROUTE, "FORMAT": max(_wire.PLUGIN_FORMATS)}
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        if node.level == 0
    }
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))
    assert "loadmanager" not in imported


@pytest.mark.parametrize(
    "doc",
    [
        {"format": 3},
        {"format": True},
        {"format": 1, "entries": {}, "total": {}},
        {"format": 1, "entries": [], "total": {"name": "Aggregated", "numRequests": 1,
                                               "numFailures": 0, "histogram": {"x": 1}}},
        {"format": 1, "entries": [], "total": {"name": "Aggregated", "numRequests": 1,
                                               "numFailures": 0, "histogram": {"5": -1}}},
        *(
            {"format": 2, "entries": [], "total": {"name": "Aggregated", "numRequests": 1,
                                                   "numFailures": 0, **arrays}}
            for arrays in (
                {"buckets": [5, 6], "counts": [1]},  # lengths differ
                {"buckets": [5], "counts": [True]},
                {"buckets": ["5"], "counts": [1]},
                {"buckets": [5.0], "counts": [1]},
                {"buckets": [5], "counts": [-1]},
                {"buckets": [-5], "counts": [1]},
                {"buckets": [5, 5], "counts": [1, 2]},  # one bucket twice
                {"buckets": {"5": 1}, "counts": [1]},
            )
        ),
    ],
)  # fmt: skip
def test_a_bad_plugin_answer_is_a_locust_response_error(doc: dict[str, object]) -> None:
    with pytest.raises(lm.LocustResponseError):
        _wire.parse_figures(json.dumps(doc), "http://m/loadmanager/v1/figures")


# -- the Catalog's window queries ------------------------------------------------


def _brute_percentile_series(
    snapshots: list[lm.MetricSnapshot],
    key: str,
    fraction: float,
    window: float,
    start: datetime | None,
) -> list[tuple[datetime, float | None]]:
    """The definition: at each snapshot with histograms, the percentile of those of
    the last ``window`` seconds, looked up snapshot by snapshot."""
    kept = [s for s in snapshots if s.histograms]
    points = []
    for i, snap in enumerate(kept):
        if start is not None and snap.timestamp < start:
            continue
        inside = [  # this snapshot and those stored before it
            e.histogram(key) or {}
            for e in kept[: i + 1]
            if (snap.timestamp - e.timestamp).total_seconds() < window
        ]
        value = h.percentile(h.merge(inside), fraction)
        points.append((snap.timestamp, None if value is None else float(value)))
    return points


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # seconds; equal times and gaps both occur
            st.booleans(),  # with histograms or without (a master without the plugin)
            st.dictionaries(st.sampled_from(["Aggregated", "GET /a"]), buckets, max_size=2),
        ),
        max_size=25,
    ),
    st.sampled_from([None, "GET /a"]),
    st.sampled_from([0.5, 0.95, 1.0]),
    st.sampled_from([0.0, 1.0, 2.0, 10.0, 100.0]),
    st.sampled_from([None, 5, 20]),
    st.sampled_from([None, 30]),
)
def test_percentile_series_and_window_percentiles_follow_their_definitions(
    rows: list[tuple[int, bool, dict[str, dict[int, int]]]],
    endpoint: str | None,
    fraction: float,
    window: float,
    start_s: int | None,
    end_s: int | None,
) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with lm.connect("memory://") as storage:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=lm.RunStatus.FINISHED))
        storage.metrics.add_many(
            make_snapshot(
                run.id,
                t0 + timedelta(seconds=second),
                histograms=tuple(HistogramDelta(k, v) for k, v in changes.items()) if has else (),
            )
            for second, has, changes in rows
        )
        start = None if start_s is None else t0 + timedelta(seconds=start_s)
        end = None if end_s is None else t0 + timedelta(seconds=end_s)
        orch = lm.Orchestrator(storage, lm.ClusterRegistry({}), monitor=False)
        key = endpoint or "Aggregated"
        stored = storage.metrics.snapshots(run.id, end=end)
        got = orch.percentile_series(
            run.id, endpoint=endpoint, fraction=fraction, window=window, start=start, end=end
        )
        assert got == _brute_percentile_series(stored, key, fraction, window, start)
        in_window = [s for s in stored if start is None or s.timestamp >= start]
        assert orch.percentiles(run.id, endpoint=endpoint, start=start, end=end) == (
            h.as_percentiles(h.merge(s.histogram(key) or {} for s in in_window))
        )
