"""The OpenAPI 3.1 document of the HTTP API, generated from the models.

Schemas come from the same attrs classes (and the same flattening of ``audit``
and run ``parameters``) that the converter writes, so the document cannot drift
from what the API sends.
"""

from __future__ import annotations

import enum
import functools
import types
from datetime import datetime
from typing import Any, Union, get_args, get_origin

import attrs

from .._naming import camel
from .._serialization import FLATTENED
from ..comparison import Comparison
from ..metrics import EndpointStats, EndpointSummary, SeriesBucket
from ..models import LoadTest, LoadTestRun, LoadTestSpec, RunOverrides, Threshold
from ..queries import TrendPoint

__all__ = ["openapi_document"]

GRAMMAR = "[ENDPOINT:] METRIC OP VALUE [for|over DURATION] [, abort]"


def _ref(cls: type) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of_type(self, t: Any) -> dict[str, Any]:
        origin = get_origin(t)
        if origin in (Union, types.UnionType):
            options = [a for a in get_args(t) if a is not type(None)]
            inner = (
                self.of_type(options[0])
                if len(options) == 1
                else {"anyOf": [self.of_type(o) for o in options]}
            )
            return {"anyOf": [inner, {"type": "null"}]}
        if origin is tuple:
            return {"type": "array", "items": self.of_type(get_args(t)[0])}
        if t is Threshold:
            self.add(Threshold, name="ThresholdObject")
            return {
                "oneOf": [
                    {
                        "type": "string",
                        "description": "[ENDPOINT:] METRIC OP VALUE [for|over D] [, abort]",
                    },
                    {"$ref": "#/components/schemas/ThresholdObject"},
                ]
            }
        if attrs.has(t):
            self.add(t)
            return _ref(t)
        if isinstance(t, type) and issubclass(t, enum.Enum):
            return {"type": "string", "enum": [m.value for m in t]}
        if t is datetime:
            return {"type": "string", "format": "date-time"}
        if t is bool:
            return {"type": "boolean"}
        if t is int:
            return {"type": "integer"}
        if t is float:
            return {"type": "number"}
        if t is str:
            return {"type": "string"}
        return {}

    def fields(self, cls: type) -> tuple[dict[str, Any], list[str]]:
        attrs.resolve_types(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for a in attrs.fields(cls):
            if a.name in FLATTENED.get(cls, ()):
                inner, inner_required = self.fields(a.type)
                properties |= inner
                required += inner_required
                continue
            properties[camel(a.name)] = self.of_type(a.type)
            required.append(camel(a.name))
        return properties, required

    def add(self, cls: type, *, name: str | None = None, request: bool = False) -> dict[str, Any]:
        key = name or cls.__name__
        if key in self.components:
            return {"$ref": f"#/components/schemas/{key}"}
        self.components[key] = {}  # reserve: classes may refer to themselves
        properties, required = self.fields(cls)
        if request:
            # A request body needs only the fields without defaults.
            defaults = {camel(a.name) for a in attrs.fields(cls) if a.default is not attrs.NOTHING}
            required = [r for r in required if r not in defaults]
        self.components[key] = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": not request,
        }
        return {"$ref": f"#/components/schemas/{key}"}


_PROBLEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                "required": ["path", "message"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": item},
            "nextCursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["items", "nextCursor"],
    }


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(
    name: str, schema: dict[str, Any], *, many: bool = False, required: bool = False
) -> dict[str, Any]:
    if many:
        return {
            "name": name,
            "in": "query",
            "required": required,
            "schema": {"type": "array", "items": schema},
            "style": "form",
            "explode": True,
        }
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _locustfile_paths(op: Any, body: Any) -> dict[str, Any]:
    text, version = {"type": "string"}, {"type": "integer", "minimum": 1}
    meta: dict[str, Any] = {
        "type": "object",
        "properties": {
            "name": text, "tenantId": text, "version": version,
            "sha256": text, "size": {"type": "integer"},
            "createdAt": {"type": ["string", "null"], "format": "date-time"},
            "createdBy": {"type": ["string", "null"]},
        },
        "required": ["name", "tenantId", "version", "sha256", "size"],
    }  # fmt: skip
    full = {**meta, "properties": {**meta["properties"], "content": text}}
    tenant = _query("tenantId", text, required=True)
    return {
        "/v1/locustfiles": {
            "get": op(
                "List a tenant's stored locustfiles (latest versions)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"items": {"type": "array", "items": meta}},
                            "required": ["items"],
                        }
                    )
                },
                parameters=[tenant],
            ),
        },
        "/v1/locustfiles/{name}": {
            "parameters": [_path("name"), tenant],
            "put": op(
                "Store the next version of a locustfile",
                {"201": _json(meta, "Stored")},
                requestBody=body(
                    {
                        "type": "object",
                        "properties": {"content": text},
                        "required": ["content"],
                        "additionalProperties": False,
                    }
                ),
            ),
            "get": op(
                "Read a stored locustfile (the latest version by default)",
                {"200": _json(full)},
                parameters=[_query("version", version)],
            ),
            "delete": op("Delete every version", {"204": {"description": "Deleted"}}),
        },
    }


@functools.lru_cache(maxsize=2)
def openapi_document(locustfiles: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document (cached; it depends only on the code).

    Args:
        locustfiles: Include the ``/v1/locustfiles`` routes (when the app serves them).
    """
    s = _Schemas()
    test, run = s.add(LoadTest), s.add(LoadTestRun)
    create = s.add(LoadTestSpec, name="LoadTestCreate", request=True)
    overrides = s.add(RunOverrides, name="RunStart", request=True)
    update = {"type": "object", "description": "Any subset of LoadTestCreate's fields."}
    comparison, trend = s.add(Comparison), s.add(TrendPoint)
    bucket, summary_row, live_row = (
        s.add(SeriesBucket),
        s.add(EndpointSummary),
        s.add(EndpointStats),
    )
    run_fields = attrs.fields_dict(LoadTestRun)
    summary = s.of_type(run_fields["summary"].type)
    verdict = s.of_type(run_fields["verdict"].type)
    s.components["Problem"] = _PROBLEM
    text = {"type": "string"}
    time = {"type": "string", "format": "date-time"}
    paging = [
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        _query("cursor", text),
    ]
    errors = {
        "default": {
            "description": "A problem (RFC 9457)",
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
    }
    etag_header = {"ETag": {"schema": {"type": "string"}}}
    if_match = {"name": "If-Match", "in": "header", "required": False, "schema": text}

    def op(summary_text: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {"summary": summary_text, "responses": {**responses, **errors}, **more}

    def body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    paths = {
        "/v1/load-tests": {
            "post": op(
                "Create a load test",
                {"201": {**_json(test, "Created"), "headers": etag_header}},
                requestBody=body(create),
            ),
            "get": op(
                "List load tests",
                {"200": _json(_page(test))},
                parameters=[
                    _query("tenantId", text),
                    _query("envId", text),
                    _query("tags", text, many=True),
                    _query("name", text),
                    _query("createdBy", text),
                    *paging,
                ],
            ),
        },
        "/v1/load-tests/{id}": {
            "parameters": [_path("id")],
            "get": op("Get a load test", {"200": {**_json(test), "headers": etag_header}}),
            "put": op(
                "Update a load test",
                {"200": {**_json(test), "headers": etag_header}},
                requestBody=body(update),
                parameters=[if_match],
            ),
            "delete": op(
                "Delete a load test with its runs",
                {"204": {"description": "Deleted"}},
                parameters=[if_match],
            ),
        },
        "/v1/load-tests/{id}/runs": {
            "parameters": [_path("id")],
            "post": op(
                "Start a run",
                {"201": _json(run, "Started")},
                requestBody={
                    "required": False,
                    "content": {"application/json": {"schema": overrides}},
                },
            ),
            "get": op(
                "List the runs of a load test",
                {"200": _json(_page(run))},
                parameters=[_query("status", {"type": "string"}, many=True), *paging],
            ),
        },
        "/v1/load-tests/{id}/baseline": {
            "parameters": [_path("id")],
            "put": op(
                "Set the run the test's relative criteria compare with (null: the default)",
                {"200": {**_json(test), "headers": etag_header}},
                requestBody=body(
                    {
                        "type": "object",
                        "properties": {"runId": {"type": ["string", "null"]}},
                        "required": ["runId"],
                        "additionalProperties": False,
                    }
                ),
                parameters=[if_match],
            ),
        },
        "/v1/load-tests/{id}/trend": {
            "parameters": [_path("id")],
            "get": op(
                "The load test's runs over time",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"items": {"type": "array", "items": trend}},
                            "required": ["items"],
                        }
                    )
                },
                parameters=[
                    _query("startedAfter", time),
                    _query("startedBefore", time),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
            ),
        },
        "/v1/runs": {
            "get": op(
                "List runs across load tests",
                {"200": _json(_page(run))},
                parameters=[
                    _query("loadTestId", text),
                    _query("tenantId", text),
                    _query("envId", text),
                    _query("locustClusterId", text),
                    _query("status", {"type": "string"}, many=True),
                    _query("startedAfter", time),
                    _query("startedBefore", time),
                    *paging,
                ],
            ),
        },
        "/v1/runs/{id}": {"parameters": [_path("id")], "get": op("Get a run", {"200": _json(run)})},
        "/v1/runs/{id}/stop": {
            "parameters": [_path("id")],
            "post": op("Stop a run", {"200": _json(run)}),
        },
        "/v1/runs/{id}/metrics": {
            "parameters": [_path("id")],
            "get": op(
                "A run's time series",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "loadTestRunId": text,
                                "buckets": {"type": "array", "items": bucket},
                            },
                            "required": ["loadTestRunId", "buckets"],
                        }
                    )
                },
                parameters=[
                    _query("buckets", {"type": "integer", "minimum": 1, "maximum": 10000}),
                    _query("endpoint", text),
                    _query("start", time),
                    _query("end", time),
                ],
            ),
        },
        "/v1/runs/{id}/metrics/endpoints": {
            "parameters": [_path("id")],
            "get": op(
                "Per-endpoint figures",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "loadTestRunId": text,
                                "endpoints": {
                                    "type": "array",
                                    "items": {"anyOf": [summary_row, live_row]},
                                },
                            },
                            "required": ["loadTestRunId", "endpoints"],
                        }
                    )
                },
            ),
        },
        "/v1/runs/{id}/metrics/summary": {
            "parameters": [_path("id")],
            "get": op(
                "Final summary and verdict",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "loadTestRunId": text,
                                "status": text,
                                "summary": summary,
                                "verdict": verdict,
                            },
                            "required": ["loadTestRunId", "status", "summary", "verdict"],
                        }
                    )
                },
            ),
        },
        "/v1/runs/{id}/metrics/comparison": {
            "parameters": [_path("id")],
            "get": op(
                "Compare with a baseline run",
                {"200": _json(comparison)},
                parameters=[_query("baseline", text, required=True)],
            ),
        },
    }
    if locustfiles:
        paths.update(_locustfile_paths(op, body))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "loadmanager",
            "version": "1",
            "description": "The seed's REST API over loadmanager.",
        },
        "paths": paths,
        "components": {
            "schemas": s.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
