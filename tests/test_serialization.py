"""The camelCase wire format and the validation of untrusted input."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import loadmanager as lm
from loadmanager._serialization import compact_json
from loadmanager.testing import make_load_test, make_run, make_snapshot, make_summary
from loadmanager.testing.seed import seed_load_test_body, seed_run_body

SEED_LOAD_TEST = seed_load_test_body()
SEED_RUN = seed_run_body()


def errors_of(cls: type, data: Any) -> dict[str, str]:
    with pytest.raises(lm.ValidationError) as info:
        lm.from_dict(cls, data)
    return {e.path: e.message for e in info.value.errors}


def test_the_seed_load_test_body_structures_as_written() -> None:
    spec = lm.from_dict(lm.LoadTestSpec, SEED_LOAD_TEST)
    assert spec.name == "API Load Test"
    assert spec.tags == ("api", "prod")
    assert spec.locust_cluster_id == "cluster-1"
    assert spec.default_users == 100
    assert spec.default_spawn_rate == 10.0
    assert spec.created_by == "user@example.com"


def test_the_seed_run_body_structures_as_written() -> None:
    overrides = lm.from_dict(lm.RunOverrides, SEED_RUN)
    params = overrides.resolve(make_load_test(default_users=5, default_run_time="1m"))
    assert (params.target_users, params.spawn_rate, params.run_time) == (200, 20.0, "1m")
    assert params.run_time_seconds == 60


def test_one_error_names_every_bad_field() -> None:
    body = {**SEED_LOAD_TEST, "defaultUsers": -5, "targetUrl": "ftp://x", "colour": "red"}
    with pytest.raises(lm.ValidationError) as info:
        lm.from_dict(lm.LoadTestSpec, body)
    found = {e.path: e.message for e in info.value.errors}
    assert found == {
        "defaultUsers": "must be >= 1",
        "targetUrl": "must be an http:// or https:// URL",
        "colour": "is not a known field",
    }
    assert "defaultUsers: must be >= 1" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "must not be empty"),
        ("name", "   ", "must not be empty"),
        ("name", "x" * 201, "must be at most 200 characters"),
        ("name", 5, "must be a string"),
        ("tenantId", "has space", "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"),
        ("envId", "x" * 65, "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"),
        ("defaultUsers", 0, "must be >= 1"),
        ("defaultUsers", 1_000_001, "must be <= 1000000"),
        ("defaultUsers", 1.5, "must be a whole number"),
        ("defaultUsers", True, "must be a whole number"),
        ("defaultUsers", "100", "must be a whole number"),
        ("defaultSpawnRate", 0, "must be > 0"),
        ("defaultSpawnRate", -1.5, "must be > 0"),
        ("defaultSpawnRate", math.inf, "must be finite"),
        ("targetUrl", "https://", "must name a host"),
        ("targetUrl", "http://h:99999", "must be a valid http(s) URL"),
        ("locustfile", "/etc/passwd", "must be a relative path"),
        ("locustfile", "a/../../b.py", "must not contain '..'"),
        ("locustfile", "C:x.py", "must be a relative path"),
        ("tags", "api", "must be a list"),
        ("tags", ["x"] * 51, "at most 50 items"),
        ("tags[1]", ["ok", ""], "must not be empty"),
        ("tags[0]", ["y" * 65], "must be at most 64 characters"),
        ("defaultRunTime", "30 seconds", "must be a duration such as '30s', '5m' or '1h20m'"),
        ("defaultRunTime", "0s", "must be at least 1s"),
    ],
)
def test_each_rule_has_a_clear_message(field: str, value: Any, message: str) -> None:
    key = field.split("[")[0]
    assert errors_of(lm.LoadTestSpec, {**SEED_LOAD_TEST, key: value}) == {field: message}


def test_missing_required_fields_are_listed() -> None:
    found = errors_of(lm.LoadTestSpec, {"name": "x"})
    assert set(found) == {
        "tenantId",
        "envId",
        "locustClusterId",
        "targetUrl",
        "locustfile",
        "defaultUsers",
        "defaultSpawnRate",
    }
    assert set(found.values()) == {"is required"}


@pytest.mark.parametrize("data", [None, [], "text", 5, [SEED_LOAD_TEST]])
def test_a_document_that_is_not_an_object_is_refused(data: Any) -> None:
    assert errors_of(lm.LoadTestSpec, data) == {"": "must be an object"}


def test_nested_errors_carry_the_full_path() -> None:
    body = {
        **SEED_LOAD_TEST,
        "thresholds": [{"metric": "p95", "op": "<", "value": 300}, {"metric": "p42", "op": "~"}],
    }
    assert errors_of(lm.LoadTestSpec, body) == {
        "thresholds[1].metric": ("must be one of " + ", ".join(repr(m) for m in lm.models.METRICS)),
        "thresholds[1].op": "must be one of '<', '<=', '>', '>=', '==', '!='",
        "thresholds[1].value": "is required",
    }


def test_a_load_test_document_is_flat_camel_case_json() -> None:
    test = make_load_test(id="abc", at=datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc))
    doc = lm.to_dict(test)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["id"] == "abc"
    assert doc["createdAt"] == "2025-01-02T03:04:05.678Z"
    assert doc["createdBy"] == doc["updatedBy"] == "user@example.com"
    assert {"tenantId", "envId", "locustClusterId", "defaultUsers", "defaultSpawnRate"} <= set(doc)
    assert "audit" not in doc
    assert lm.from_dict(lm.LoadTest, doc) == test


def test_a_run_document_carries_the_seed_names_at_the_top_level() -> None:
    run = make_run(make_load_test(), status=lm.RunStatus.FINISHED, summary=make_summary())
    doc = lm.to_dict(run)
    assert doc["loadTestId"] == run.load_test_id
    assert doc["targetUsers"] == run.parameters.target_users
    assert doc["spawnRate"] == run.parameters.spawn_rate
    assert doc["status"] == "finished"
    assert doc["summary"]["aggregated"]["percentiles"]["p999"] == 85
    assert lm.from_dict(lm.LoadTestRun, doc) == run


def test_a_snapshot_document_names_its_run_load_test_run_id() -> None:
    snap = make_snapshot("run-1", datetime(2025, 1, 1, tzinfo=timezone.utc))
    doc = lm.to_dict(snap)
    assert doc["loadTestRunId"] == "run-1"
    assert doc["endpoints"][0]["method"] == "GET"
    assert lm.from_dict(lm.MetricSnapshot, doc) == snap


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-02T03:04:05Z", datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        (
            "2025-01-02T05:04:05.123456+02:00",
            datetime(2025, 1, 2, 3, 4, 5, 123000, tzinfo=timezone.utc),
        ),
    ],
)
def test_times_are_read_as_utc_with_millisecond_precision(text: str, expected: datetime) -> None:
    doc = {**lm.to_dict(make_load_test()), "createdAt": text}
    assert lm.from_dict(lm.LoadTest, doc).audit.created_at == expected


def test_a_time_without_zone_is_refused() -> None:
    doc = {**lm.to_dict(make_load_test()), "createdAt": "2025-01-02T03:04:05"}
    assert errors_of(lm.LoadTest, doc) == {
        "createdAt": "must carry a time zone (end it with Z for UTC)"
    }


def test_an_unknown_status_is_refused_with_the_allowed_ones() -> None:
    doc = {**lm.to_dict(make_run(make_load_test())), "status": "exploded"}
    assert errors_of(lm.LoadTestRun, doc) == {
        "status": "must be one of pending, running, stopping, finished, stopped, failed"
    }


def test_building_a_model_in_python_validates_too() -> None:
    with pytest.raises(lm.ValidationError) as info:
        make_load_test(default_users=0)
    assert info.value.paths == ("defaultUsers",)


def test_an_unstructurer_leaves_out_the_fields_named_and_refuses_unknown_ones() -> None:
    """What SQLite writes beside its columns: the rest of a snapshot, which
    structures back with the omitted fields at their defaults."""
    from datetime import datetime, timezone

    from loadmanager._serialization import make_converter
    from loadmanager.metrics import MetricSnapshot
    from loadmanager.testing import make_snapshot

    converter = make_converter("iso")
    snap = make_snapshot("r", datetime(2025, 1, 1, tzinfo=timezone.utc), slot=3)
    assert snap.endpoints
    doc = converter.unstructurer(MetricSnapshot, omit=("endpoints", "slot"))(snap)
    assert "endpoints" not in doc
    assert "slot" not in doc
    assert {k: v for k, v in converter.unstructure(snap).items() if k in doc} == doc
    again = converter.structure(doc, MetricSnapshot)
    assert (again.endpoints, again.slot) == ((), None)
    with pytest.raises(ValueError, match="no field 'slots'"):
        converter.unstructurer(MetricSnapshot, omit=("slots",))


_DOCS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)  # past 64 bits orjson refuses: the fallback writes them
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),  # lone surrogates included, which orjson refuses too
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(_DOCS)
def test_compact_json_reads_back_as_the_standard_librarys_text(doc: Any) -> None:
    """SQLite stores snapshots' documents through it (orjson with the fast extra)."""
    assert json.loads(compact_json(doc)) == json.loads(json.dumps(doc, separators=(",", ":")))
