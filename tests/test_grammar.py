"""The criterion grammar: round trips, positions in errors, nothing but ValidationError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.grammar import parse, render
from loadmanager.testing.strategies import thresholds


@given(thresholds())
def test_parse_of_render_is_the_identity_on_objects(threshold: lm.Threshold) -> None:
    assert parse(render(threshold)) == threshold


@given(thresholds())
def test_render_of_parse_is_the_identity_on_canonical_strings(threshold: lm.Threshold) -> None:
    canonical = render(threshold)
    assert render(parse(canonical)) == canonical


@given(thresholds())
def test_the_object_form_round_trips_through_json(threshold: lm.Threshold) -> None:
    assert lm.from_dict(lm.Threshold, lm.to_dict(threshold)) == threshold


@settings(max_examples=1000)
@given(
    st.text(max_size=60)
    | st.builds(
        " ".join,
        st.lists(
            st.sampled_from(
                ["GET /x:", "p95", "error_rate", "<", "<=", "!=", "300ms", "1%", "baseline",
                 "*", "+", "1.1", "for", "over", "10s", "1m30s", ",", "abort", ":", "x"]
            ),
            max_size=9,
        ),
    )
)  # fmt: skip
def test_any_string_gives_a_criterion_or_a_validation_error(text: str) -> None:
    try:
        result = parse(text)
    except lm.ValidationError as exc:
        errors = exc.errors
    else:
        assert isinstance(result, lm.Threshold)
        return
    assert errors


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("p95 < 300", 300),
        ("p95 < 300ms", 300),
        ("p95 < 1.5s", 1500),
        ("error_rate < 1%", 0.01),
        ("error_rate < 0.01", 0.01),
        ("rps >= 100", 100),
    ],
)
def test_units_give_canonical_limits(text: str, limit: float) -> None:
    assert parse(text).limit() == pytest.approx(limit)


def test_relative_limits_need_the_baseline_figure() -> None:
    assert parse("p95 <= baseline * 1.2").limit(100.0) == pytest.approx(120)
    assert parse("p95 <= baseline + 50ms").limit(100.0) == pytest.approx(150)
    assert parse("p95 <= baseline + 0.5s").limit(100.0) == pytest.approx(600)
    assert parse("p95 <= baseline * 1.2").limit(None) is None


def test_a_windowed_criterion_with_abort() -> None:
    t = parse("GET /api/items: error_rate < 50% for 4s, abort")
    assert (t.scope, t.metric, t.window, t.window_mode, t.abort_on_fail) == (
        "GET /api/items", "error_rate", 4.0, "for", True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p95 ~ 300", "at position 5: expected an operator"),
        ("p42 < 300", "at position 1: expected a metric"),
        ("p95 < fast", "at position 7: expected a number"),
        ("p95 < 3 during 10s", "at position 9: expected 'for DURATION'"),
        ("p95 < 3 for ten", "at position 13: expected a duration"),
        ("p95 < 3ms, abort", "needs a window"),
        ("p99 < 1 for 10s", "cannot be judged over a window"),
        ("rps < 5ms", "rps is not a time"),
    ],
)
def test_errors_say_where_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(lm.ValidationError) as info:
        parse(text)
    assert message in str(info.value)


def test_a_load_test_takes_strings_and_objects_and_points_at_the_bad_one() -> None:
    body = {
        "name": "t", "tenantId": "t", "envId": "e", "locustClusterId": "c",
        "targetUrl": "http://x", "locustfile": "f.py", "defaultUsers": 1, "defaultSpawnRate": 1,
        "thresholds": [
            "p95 < 300ms",
            {"metric": "error_rate", "op": "<", "value": 1, "unit": "%"},
            "p95 <<< 3",
            {"metric": "p95", "op": "<", "value": 1, "window": 10},
        ],
    }  # fmt: skip
    with pytest.raises(lm.ValidationError) as info:
        lm.from_dict(lm.LoadTestSpec, body)
    found = {e.path: e.message for e in info.value.errors}
    assert set(found) == {"thresholds[2]", "thresholds[3].windowMode"}
    assert "position" in found["thresholds[2]"]
    body["thresholds"] = body["thresholds"][:2]  # type: ignore[index]
    spec = lm.from_dict(lm.LoadTestSpec, body)
    assert [render(t) for t in spec.thresholds] == ["p95 < 300ms", "error_rate < 1%"]
