"""Properties over arbitrary input: round trips, and nothing but ValidationError."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager.testing import strategies as lms
from loadmanager.testing.factories import make_load_test, make_run

MODELS: list[tuple[type, st.SearchStrategy[Any]]] = [
    (lm.LoadTest, lms.load_tests()),
    (lm.LoadTestSpec, lms.load_test_specs()),
    (lm.LoadTestRun, lms.load_test_runs()),
    (lm.RunOverrides, lms.run_overrides()),
    (lm.MetricSnapshot, lms.metric_snapshots()),
    (lm.RunSummary, lms.run_summaries()),
]


@given(st.sampled_from(MODELS).flatmap(lambda m: st.tuples(st.just(m[0]), m[1])))
def test_json_round_trip_is_the_identity(pair: tuple[type, Any]) -> None:
    cls, model = pair
    import json

    doc = json.loads(json.dumps(lm.to_dict(model)))
    assert lm.from_dict(cls, doc) == model


def _only_model_or_validation_error(cls: type, data: Any) -> None:
    try:
        result = lm.from_dict(cls, data)
    except lm.ValidationError as exc:
        errors = exc.errors
    else:
        assert isinstance(result, cls)
        return
    assert errors, "a ValidationError always says what is wrong"
    assert all(isinstance(e.message, str) and e.message for e in errors)


ENTRY_POINTS = [lm.LoadTestSpec, lm.RunOverrides, lm.LoadTest, lm.LoadTestRun, lm.MetricSnapshot]


@settings(max_examples=1000)
@given(st.sampled_from(ENTRY_POINTS), lms.json_values())
def test_arbitrary_json_gives_a_model_or_a_validation_error(cls: type, data: Any) -> None:
    _only_model_or_validation_error(cls, data)


_VALID_DOCS = {
    lm.LoadTestSpec: {
        k: v
        for k, v in lm.to_dict(make_load_test()).items()
        if k
        in {
            "name",
            "tenantId",
            "envId",
            "locustClusterId",
            "targetUrl",
            "locustfile",
            "defaultUsers",
            "defaultSpawnRate",
            "tags",
            "description",
            "defaultRunTime",
            "thresholds",
        }
    },
    lm.LoadTest: lm.to_dict(make_load_test()),
    lm.LoadTestRun: lm.to_dict(make_run(make_load_test())),
    lm.RunOverrides: {"targetUsers": 5, "spawnRate": 1, "runTime": "10s", "tags": ["a"]},
}


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(_VALID_DOCS, key=lambda c: c.__name__)).flatmap(
        lambda cls: st.tuples(st.just(cls), lms.near_documents(_VALID_DOCS[cls]))
    )
)
def test_almost_valid_documents_give_a_model_or_a_validation_error(pair: tuple[type, Any]) -> None:
    _only_model_or_validation_error(*pair)
