"""The seed's REST routes over an Orchestrator, with no web framework in sight.

A host's framework turns its request into an :class:`ApiRequest`, calls
:meth:`Api.handle`, and writes the :class:`ApiResponse` back; the Starlette app in
:mod:`loadmanager.http.starlette` is one such adapter. Handlers are thin: parse,
call the Orchestrator with the principal's actor and tenants, map the result.
Every error leaves through :func:`problem`, as RFC 9457 problem details.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import attrs

from .._serialization import from_dict, to_dict
from ..errors import (
    ActiveRunError,
    ClusterBusyError,
    ConflictError,
    DuplicateError,
    InvalidTransitionError,
    LoadManagerError,
    LocustError,
    NotFoundError,
    PermissionDeniedError,
    ProvisioningError,
    RepositoryUnavailableError,
    StaleVersionError,
    ValidationError,
)
from ..filters import DEFAULT_LIMIT, MAX_LIMIT
from ..locustfiles import Locustfile
from ..orchestrator import Orchestrator
from .auth import Authenticate, AuthenticationError, Principal

__all__ = ["MAX_BODY", "Api", "ApiRequest", "ApiResponse", "problem"]

log = logging.getLogger("loadmanager")

MAX_BODY = 1024 * 1024
"""Request bodies above 1 MiB are refused with 413."""

PROBLEM = "application/problem+json"

MAX_DEPTH = 32
"""JSON bodies nesting deeper than this are refused (no valid body nests past 4)."""


def _depth(document: Any) -> int:
    """How deeply a parsed JSON document nests, without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def _json_content(request: ApiRequest) -> bool:
    """Whether a state-changing request's body is declared as JSON.

    A request without a body and without a Content-Type passes (a bare POST to
    stop a run). Browsers send forms and text/plain across sites without a
    preflight, so any other declared type is refused, body or not.
    """
    declared = request.headers.get("content-type")
    if declared is None:
        return not request.body.strip()
    kind = declared.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


@attrs.frozen
class ApiRequest:
    """A request, as any framework can describe it.

    Attributes:
        headers: Lower-case names.
        query: Every value of every query parameter, in order.
    """

    method: str
    path: str
    query: Mapping[str, Sequence[str]] = attrs.field(factory=dict)
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""


@attrs.frozen
class ApiResponse:
    """A response: status, a JSON-able body (or ``None``) and headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    media_type: str = "application/json"

    def encode(self) -> bytes:
        """The body as bytes (empty for no body)."""
        return b"" if self.body is None else json.dumps(self.body, separators=(",", ":")).encode()


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ApiResponse:
    """An RFC 9457 problem details response."""
    body = {"type": kind, "title": title, "status": status, "detail": detail, **extra}
    return ApiResponse(status, body, dict(headers or {}), PROBLEM)


class _PreconditionFailedError(LoadManagerError):
    """If-Match named a version that is no longer current (HTTP-only: 412)."""


def _from_error(exc: Exception) -> ApiResponse:
    """The one place that maps the error tree to HTTP."""
    base = "https://loadmanager.invalid/problems/"
    if isinstance(exc, _PreconditionFailedError):
        return problem(412, "Precondition failed", str(exc), kind=base + "precondition")
    if isinstance(exc, ValidationError):
        errors = [{"path": e.path, "message": e.message} for e in exc.errors]
        return problem(422, "Invalid input", str(exc), kind=base + "validation", errors=errors)
    if isinstance(exc, NotFoundError):
        return problem(404, "Not found", str(exc), kind=base + "not-found")
    if isinstance(exc, PermissionDeniedError):
        return problem(403, "Forbidden", str(exc), kind=base + "forbidden")
    if isinstance(exc, ClusterBusyError):
        return problem(
            409, "Cluster busy", str(exc), kind=base + "cluster-busy",
            clusterId=exc.cluster_id, activeRunId=exc.active_run_id,
        )  # fmt: skip
    if isinstance(exc, ActiveRunError):
        return problem(409, "Active run", str(exc), kind=base + "active-run", runId=exc.run_id)
    if isinstance(exc, (StaleVersionError, DuplicateError, ConflictError)):
        return problem(409, "Conflict", str(exc), kind=base + "conflict")
    if isinstance(exc, InvalidTransitionError):
        return problem(409, "Invalid transition", str(exc), kind=base + "invalid-transition")
    if isinstance(exc, RepositoryUnavailableError):
        return problem(503, "Storage unavailable", "the storage backend is unavailable",
                       kind=base + "unavailable")  # fmt: skip
    if isinstance(exc, LocustError):
        detail = getattr(exc, "message", None) or "the Locust master could not be reached"
        return problem(502, "Locust error", detail, kind=base + "locust", runId=exc.run_id)
    if isinstance(exc, ProvisioningError):
        detail = str(exc).split("\n", 1)[0] + " (the run's failureReason has the log)"
        return problem(502, "No cluster", detail, kind=base + "provisioning", runId=exc.run_id)
    if isinstance(exc, AuthenticationError):
        return _unauthorized()
    log.exception("unexpected error in the HTTP API", exc_info=exc)
    return problem(500, "Internal error", "an unexpected error occurred; see the host's logs")


def _unauthorized() -> ApiResponse:
    return problem(
        401, "Unauthorized", "valid credentials are required",
        headers={"WWW-Authenticate": 'Bearer realm="loadmanager"'},
    )  # fmt: skip


@contextmanager
def _precondition(expected: int | None) -> Iterator[None]:
    """A stale version is 412 when the client named one (If-Match), else 409."""
    try:
        yield
    except StaleVersionError as exc:
        if expected is not None:
            raise _PreconditionFailedError(str(exc)) from exc
        raise


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"v{version}"'}


_IF_MATCH = re.compile(r'^\s*(?:W/)?"v(\d{1,18})"\s*$')


class Api:
    """Routes requests to the Orchestrator on behalf of authenticated principals.

    Args:
        orchestrator: The host's Orchestrator.
        authenticate: The host's hook; see :mod:`loadmanager.http.auth`.
        max_body: Largest accepted request body in bytes.
        locustfile_routes: Serve ``/v1/locustfiles`` (off by default: code that
            runs on the load generators).
    """

    def __init__(
        self,
        orchestrator: Orchestrator,
        authenticate: Authenticate,
        *,
        max_body: int = MAX_BODY,
        locustfile_routes: bool = False,
    ) -> None:
        self.orch = orchestrator
        self.authenticate = authenticate
        self.max_body = max_body
        self.locustfile_routes = locustfile_routes
        t = r"(?P<test>[^/]+)"
        r = r"(?P<run>[^/]+)"
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., ApiResponse]]] = [
            ("POST", re.compile(r"^/v1/load-tests/?$"), self.create_test),
            ("GET", re.compile(r"^/v1/load-tests/?$"), self.list_tests),
            ("GET", re.compile(rf"^/v1/load-tests/{t}$"), self.get_test),
            ("PUT", re.compile(rf"^/v1/load-tests/{t}$"), self.update_test),
            ("DELETE", re.compile(rf"^/v1/load-tests/{t}$"), self.delete_test),
            ("POST", re.compile(rf"^/v1/load-tests/{t}/runs/?$"), self.start_run),
            ("GET", re.compile(rf"^/v1/load-tests/{t}/runs/?$"), self.list_test_runs),
            ("GET", re.compile(rf"^/v1/load-tests/{t}/trend$"), self.trend),
            ("PUT", re.compile(rf"^/v1/load-tests/{t}/baseline$"), self.set_baseline),
            ("GET", re.compile(r"^/v1/runs/?$"), self.list_runs),
            ("GET", re.compile(rf"^/v1/runs/{r}$"), self.get_run),
            ("POST", re.compile(rf"^/v1/runs/{r}/stop$"), self.stop_run),
            ("GET", re.compile(rf"^/v1/runs/{r}/metrics$"), self.series),
            ("GET", re.compile(rf"^/v1/runs/{r}/metrics/endpoints$"), self.endpoints),
            ("GET", re.compile(rf"^/v1/runs/{r}/metrics/summary$"), self.summary),
            ("GET", re.compile(rf"^/v1/runs/{r}/metrics/comparison$"), self.comparison),
        ]
        if locustfile_routes:
            f = r"(?P<name>.+)"
            self._routes += [
                ("GET", re.compile(r"^/v1/locustfiles/?$"), self.list_locustfiles),
                ("PUT", re.compile(rf"^/v1/locustfiles/{f}$"), self.put_locustfile),
                ("GET", re.compile(rf"^/v1/locustfiles/{f}$"), self.get_locustfile),
                ("DELETE", re.compile(rf"^/v1/locustfiles/{f}$"), self.delete_locustfile),
            ]

    # -- dispatch -------------------------------------------------------------

    def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer one request; never raises."""
        try:
            if request.method == "GET" and request.path == "/openapi.json":
                from ._openapi import openapi_document

                return ApiResponse(200, openapi_document(self.locustfile_routes))
            allowed = [m for m, pattern, _ in self._routes if pattern.match(request.path)]
            if not allowed:
                return problem(404, "Not found", f"no route {request.path!r}")
            principal = self.authenticate(request)
            if principal is None:
                return _unauthorized()
            for method, pattern, handler in self._routes:
                match = pattern.match(request.path)
                if match and method == request.method:
                    if len(request.body) > self.max_body:
                        return problem(
                            413, "Payload too large", f"bodies are limited to {self.max_body} bytes"
                        )
                    if method != "GET" and not _json_content(request):
                        return problem(
                            415,
                            "Unsupported media type",
                            "send the body as application/json; forms and plain text are "
                            "refused so that no other site can submit them",
                        )
                    return handler(request, principal, **match.groupdict())
            return problem(
                405, "Method not allowed", f"{request.method} is not allowed here",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - every failure leaves as a problem document
            return _from_error(exc)

    # -- parsing ----------------------------------------------------------------

    @staticmethod
    def _json(request: ApiRequest, *, optional: bool = False) -> Any:
        if not request.body.strip():
            if optional:
                return {}
            raise ValidationError.single("", "a JSON body is required")
        try:
            document = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise ValidationError.single("", "the body is not valid JSON") from None
        except RecursionError:
            document = None  # nested past Python's limit: refused below
        if document is None or _depth(document) > MAX_DEPTH:
            raise ValidationError.single("", f"the body nests deeper than {MAX_DEPTH} levels")
        return document

    @staticmethod
    def _one(request: ApiRequest, name: str) -> str | None:
        values = request.query.get(name)
        return values[-1] if values else None

    def _int(self, request: ApiRequest, name: str, default: int, low: int, high: int) -> int:
        text = self._one(request, name)
        if text is None:
            return default
        if not re.fullmatch(r"\d{1,9}", text) or not low <= int(text) <= high:
            raise ValidationError.single(name, f"must be a whole number from {low} to {high}")
        return int(text)

    def _time(self, request: ApiRequest, name: str) -> datetime | None:
        text = self._one(request, name)
        if text is None:
            return None
        try:
            return from_dict(_TimeBox, {"at": text}).at
        except ValidationError as exc:
            raise ValidationError.single(name, exc.errors[0].message) from None

    def _page(self, request: ApiRequest) -> tuple[int, int]:
        limit = self._int(request, "limit", DEFAULT_LIMIT, 1, 1000)
        cursor = self._one(request, "cursor")
        offset = 0
        if cursor is not None:
            try:
                offset = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
            except (ValueError, UnicodeDecodeError):
                raise ValidationError.single(
                    "cursor", "is not a cursor this API gave out"
                ) from None
            if not 0 <= offset < MAX_LIMIT:
                raise ValidationError.single("cursor", "is not a cursor this API gave out")
        return offset, limit

    @staticmethod
    def _paged(items: Sequence[Any], offset: int, limit: int) -> ApiResponse:
        # Pages are offsets into the stable (createdAt, id) order; the repository
        # is asked for one more item than the page to know whether one follows.
        page = items[offset : offset + limit]
        more = len(items) > offset + limit and offset + limit < MAX_LIMIT
        cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode().rstrip("=")
        return ApiResponse(
            200, {"items": to_dict(list(page)), "nextCursor": cursor if more else None}
        )

    def _if_match(self, request: ApiRequest) -> int | None:
        header = request.headers.get("if-match")
        if header is None or header.strip() == "*":
            return None
        match = _IF_MATCH.match(header)
        if match is None:
            raise _PreconditionFailedError("If-Match must be an ETag this API gave out")
        return int(match.group(1))

    # -- load tests ---------------------------------------------------------------

    def create_test(self, request: ApiRequest, who: Principal) -> ApiResponse:
        test = self.orch.create_load_test(self._json(request), actor=who.actor, tenants=who.tenants)
        headers = {**_etag(test.version), "Location": f"/v1/load-tests/{test.id}"}
        return ApiResponse(201, to_dict(test), headers)

    def list_tests(self, request: ApiRequest, who: Principal) -> ApiResponse:
        offset, limit = self._page(request)
        tests = self.orch.list_load_tests(
            tenant_id=self._one(request, "tenantId"),
            env_id=self._one(request, "envId"),
            tags=list(request.query["tags"]) if "tags" in request.query else None,
            name_contains=self._one(request, "name"),
            created_by=self._one(request, "createdBy"),
            limit=min(offset + limit + 1, MAX_LIMIT),
            tenants=who.tenants,
        )
        return self._paged(tests, offset, limit)

    def get_test(self, request: ApiRequest, who: Principal, test: str) -> ApiResponse:
        found = self.orch.get_load_test(test, tenants=who.tenants)
        return ApiResponse(200, to_dict(found), _etag(found.version))

    def update_test(self, request: ApiRequest, who: Principal, test: str) -> ApiResponse:
        expected = self._if_match(request)
        with _precondition(expected):
            updated = self.orch.update_load_test(
                test, self._json(request), actor=who.actor, expected_version=expected,
                tenants=who.tenants,
            )  # fmt: skip
        return ApiResponse(200, to_dict(updated), _etag(updated.version))

    def delete_test(self, request: ApiRequest, who: Principal, test: str) -> ApiResponse:
        expected = self._if_match(request)
        with _precondition(expected):
            self.orch.delete_load_test(
                test, actor=who.actor, expected_version=expected, tenants=who.tenants
            )
        return ApiResponse(204)

    def trend(self, request: ApiRequest, who: Principal, test: str) -> ApiResponse:
        points = self.orch.trend(
            test,
            started_after=self._time(request, "startedAfter"),
            started_before=self._time(request, "startedBefore"),
            limit=self._int(request, "limit", DEFAULT_LIMIT, 1, 1000),
            tenants=who.tenants,
        )
        return ApiResponse(200, {"items": to_dict(points)})

    # -- runs -------------------------------------------------------------------

    def set_baseline(self, request: ApiRequest, who: Principal, test: str) -> ApiResponse:
        expected = self._if_match(request)
        body = self._json(request)
        if not isinstance(body, dict) or set(body) != {"runId"}:
            raise ValidationError.single("", 'must be {"runId": "<run id>"} or {"runId": null}')
        run_id = body["runId"]
        if run_id is not None and not isinstance(run_id, str):
            raise ValidationError.single("runId", "must be a run id or null")
        with _precondition(expected):
            current = self.orch.get_load_test(test, tenants=who.tenants)
            if expected is not None and current.version != expected:
                raise StaleVersionError("LoadTest", test, expected, current.version)
            updated = self.orch.set_baseline(test, run_id, actor=who.actor, tenants=who.tenants)
        return ApiResponse(200, to_dict(updated), _etag(updated.version))

    def start_run(self, request: ApiRequest, who: Principal, test: str) -> ApiResponse:
        run = self.orch.start_run(
            test, self._json(request, optional=True), actor=who.actor, tenants=who.tenants
        )
        return ApiResponse(
            201, to_dict(run), {**_etag(run.version), "Location": f"/v1/runs/{run.id}"}
        )

    def _list_runs(
        self, request: ApiRequest, who: Principal, load_test_id: str | None
    ) -> ApiResponse:
        offset, limit = self._page(request)
        runs = self.orch.list_runs(
            load_test_id=load_test_id or self._one(request, "loadTestId"),
            tenant_id=self._one(request, "tenantId"),
            env_id=self._one(request, "envId"),
            locust_cluster_id=self._one(request, "locustClusterId"),
            statuses=list(request.query["status"]) if "status" in request.query else None,
            started_after=self._time(request, "startedAfter"),
            started_before=self._time(request, "startedBefore"),
            limit=min(offset + limit + 1, MAX_LIMIT),
            tenants=who.tenants,
        )
        return self._paged(runs, offset, limit)

    def list_test_runs(self, request: ApiRequest, who: Principal, test: str) -> ApiResponse:
        self.orch.get_load_test(test, tenants=who.tenants)  # 404 for missing or foreign
        return self._list_runs(request, who, test)

    def list_runs(self, request: ApiRequest, who: Principal) -> ApiResponse:
        return self._list_runs(request, who, None)

    def get_run(self, request: ApiRequest, who: Principal, run: str) -> ApiResponse:
        found = self.orch.get_run(run, tenants=who.tenants)
        return ApiResponse(200, to_dict(found), _etag(found.version))

    def stop_run(self, request: ApiRequest, who: Principal, run: str) -> ApiResponse:
        stopped = self.orch.stop_run(run, actor=who.actor, tenants=who.tenants)
        return ApiResponse(200, to_dict(stopped), _etag(stopped.version))

    # -- metrics ------------------------------------------------------------------

    def series(self, request: ApiRequest, who: Principal, run: str) -> ApiResponse:
        buckets = self.orch.series(
            run,
            self._int(request, "buckets", 100, 1, 10_000),
            endpoint=self._one(request, "endpoint"),
            start=self._time(request, "start"),
            end=self._time(request, "end"),
            tenants=who.tenants,
        )
        return ApiResponse(200, {"loadTestRunId": run, "buckets": to_dict(buckets)})

    def endpoints(self, request: ApiRequest, who: Principal, run: str) -> ApiResponse:
        rows = self.orch.endpoint_stats(run, tenants=who.tenants)
        return ApiResponse(200, {"loadTestRunId": run, "endpoints": to_dict(list(rows))})

    def summary(self, request: ApiRequest, who: Principal, run: str) -> ApiResponse:
        found = self.orch.get_run(run, tenants=who.tenants)
        return ApiResponse(
            200,
            {
                "loadTestRunId": run,
                "status": found.status.value,
                "summary": to_dict(found.summary),
                "verdict": to_dict(found.verdict),
            },
        )

    # -- locustfiles (only when enabled) --------------------------------------------

    def _tenant(self, request: ApiRequest) -> str:
        tenant = self._one(request, "tenantId")
        if not tenant:
            raise ValidationError.single("tenantId", "is required: the tenant owning the file")
        return tenant

    def list_locustfiles(self, request: ApiRequest, who: Principal) -> ApiResponse:
        found = self.orch.list_locustfiles(tenant_id=self._tenant(request), tenants=who.tenants)
        return ApiResponse(200, {"items": [_locustfile_json(f, content=False) for f in found]})

    def put_locustfile(self, request: ApiRequest, who: Principal, name: str) -> ApiResponse:
        body = self._json(request)
        if not isinstance(body, dict) or set(body) - {"content"} or "content" not in body:
            raise ValidationError.single("", 'must be {"content": "<the locustfile>"}')
        stored = self.orch.put_locustfile(
            name, body["content"], tenant_id=self._tenant(request), actor=who.actor,
            tenants=who.tenants,
        )  # fmt: skip
        return ApiResponse(201, _locustfile_json(stored, content=False))

    def get_locustfile(self, request: ApiRequest, who: Principal, name: str) -> ApiResponse:
        version = self._one(request, "version")
        if version is not None and not version.isdigit():
            raise ValidationError.single("version", "must be a whole number")
        found = self.orch.get_locustfile(
            name,
            tenant_id=self._tenant(request),
            version=None if version is None else int(version),
            tenants=who.tenants,
        )
        return ApiResponse(200, _locustfile_json(found, content=True))

    def delete_locustfile(self, request: ApiRequest, who: Principal, name: str) -> ApiResponse:
        self.orch.delete_locustfile(
            name, tenant_id=self._tenant(request), actor=who.actor, tenants=who.tenants
        )
        return ApiResponse(204)

    def comparison(self, request: ApiRequest, who: Principal, run: str) -> ApiResponse:
        baseline = self._one(request, "baseline")
        if not baseline:
            raise ValidationError.single(
                "baseline", "is required: the id of the run to compare with"
            )
        result = self.orch.compare(run, baseline, tenants=who.tenants)
        return ApiResponse(200, to_dict(result))


def _locustfile_json(locustfile: Locustfile, *, content: bool) -> dict[str, Any]:
    doc: dict[str, Any] = to_dict(locustfile)
    if not content:
        doc.pop("content", None)
    return {**doc, "sha256": locustfile.sha256, "size": locustfile.size}


@attrs.frozen
class _TimeBox:
    at: datetime
