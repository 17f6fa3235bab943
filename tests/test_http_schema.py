"""schemathesis against /openapi.json: no 500, and every response matches the schema.

The app runs in-process on the memory backend; its one cluster is a closed port,
so starting a run answers the documented 502 problem instead of loading anything.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import loadmanager as lm
from loadmanager.http import Principal, bearer_tokens, create_app
from loadmanager.testing import make_load_test, make_run, make_summary

_storage = lm.connect("memory://")
_orch = lm.Orchestrator(
    storage=_storage,
    clusters=lm.ClusterRegistry({"cluster-1": "http://127.0.0.1:9"}),
    monitor=False,
)
_test = _storage.load_tests.add(make_load_test(id="known-test", tenant_id="tenant-1"))
_storage.runs.add(
    make_run(_test, id="known-run", status=lm.RunStatus.FINISHED, summary=make_summary())
)
app = create_app(
    _orch,
    authenticate=bearer_tokens({"token": Principal("schema@example.com", None)}),
    locustfile_routes=True,  # the opt-in routes are held to the schema too
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_honours_its_own_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": "Bearer token"},
        checks=[
            not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
            status_code_conformance,
        ],
    )
