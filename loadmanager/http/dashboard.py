"""A live dashboard that hosts mount beside the REST routes, as Celery users mount Flower.

``create_dashboard(orch, authenticate=...)`` gives one ASGI app (``pip install
'loadmanager[dashboard]'``: Starlette and Jinja2) that serves

- server-rendered pages: the load tests, one test, one run (live), two runs
  compared;
- the JSON API under ``api/``, the same :class:`~loadmanager.http.Api` that
  ``create_app`` serves, which the pages' few scripts call to start, stop and
  set a baseline, and to redraw a live run every poll interval;
- its assets under ``static/``, from the package: uPlot, the chart code and
  one stylesheet. Nothing comes from a CDN, so it works on an air-gapped
  network.

Why one app with its own ``api/`` rather than pages that call the host's API
mount: the pages then never need to know where the host put the API, and the
dashboard's writes pass one CSRF check that bearer-token API clients do not
need. Both use the host's one ``authenticate`` hook, and the same tenant
isolation: a foreign id is a 404 on a page exactly as in the API.

CSRF: a host that authenticates browsers with a cookie is exposed to other
sites submitting requests with it. Every unsafe request to ``api/`` must carry
an ``X-CSRF-Token`` header equal to the ``lm_csrf`` cookie the pages set (a
double-submit token, SameSite=Strict); the API already refuses form and text
bodies.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from ..charts import asset, spec_json
from ..errors import LoadManagerError, NotFoundError, ValidationError
from ..orchestrator import Orchestrator
from . import _pages
from ._api import ApiRequest
from .auth import Authenticate, AuthenticationError, Principal

__all__ = ["CSRF_COOKIE", "CSRF_HEADER", "create_dashboard"]

CSRF_COOKIE = "lm_csrf"
CSRF_HEADER = "x-csrf-token"
_STATIC = {
    "uPlot.iife.min.js": ("uplot/uPlot.iife.min.js", "text/javascript"),
    "uPlot.min.css": ("uplot/uPlot.min.css", "text/css"),
    "charts.js": ("charts.js", "text/javascript"),
    "dashboard.js": ("dashboard.js", "text/javascript"),
    "dashboard.css": ("dashboard.css", "text/css"),
}
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _templates() -> Any:
    try:
        import jinja2
        import markupsafe
    except ImportError as exc:  # pragma: no cover - the extra brings it
        raise ImportError(
            "the dashboard needs jinja2: pip install 'loadmanager[dashboard]'"
        ) from exc
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("loadmanager.http", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    # spec_json escapes <, > and & itself, so its text is safe inside <script>.
    env.filters["charts_json"] = lambda charts: markupsafe.Markup(spec_json(charts))  # noqa: S704
    return env


def create_dashboard(
    orchestrator: Orchestrator,
    *,
    authenticate: Authenticate | None = None,
    title: str = "loadmanager",
    secure_cookies: bool = True,
) -> Any:
    """The dashboard as one ASGI app; mount it under any prefix of your service.

    Args:
        orchestrator: The host's Orchestrator.
        authenticate: The host's hook, the same one given to ``create_app``;
            it sees the request's headers (cookies included). Required: pass
            ``loadmanager.http.allow_anonymous`` explicitly to open it up.
        title: Shown in the page header and titles.
        secure_cookies: Mark the CSRF cookie ``Secure`` (HTTPS only). Turn off
            only to serve plain HTTP on localhost.

    Raises:
        ValueError: no ``authenticate`` hook was given.
    """
    if authenticate is None:
        raise ValueError(
            "create_dashboard needs an authenticate hook; pass"
            " authenticate=loadmanager.http.allow_anonymous to serve without authentication"
            " on purpose"
        )
    try:
        from starlette.concurrency import run_in_threadpool
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
        from starlette.routing import Mount, Route, Router
    except ImportError as exc:
        raise ImportError(
            "the dashboard needs starlette: pip install 'loadmanager[dashboard]'"
        ) from exc

    from .starlette import create_app

    templates = _templates()
    api = create_app(orchestrator, authenticate=authenticate)
    hook = authenticate

    def principal_of(request: Request) -> Principal | None:
        probe = ApiRequest(
            method=request.method,
            path=request.url.path,
            query={k: request.query_params.getlist(k) for k in request.query_params},
            headers={k.lower(): v for k, v in request.headers.items()},
            body=b"",
        )
        try:
            return hook(probe)
        except AuthenticationError:
            return None

    def base_url(request: Request) -> str:
        root: str = request.scope.get("root_path", "")
        return root.rstrip("/") + "/"

    def page(request: Request, name: str, http_status: int = 200, **context: Any) -> Response:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        body = templates.get_template(name).render(
            title=title, base=base_url(request), csrf=token, **context
        )
        response = HTMLResponse(body, status_code=http_status)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
            "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(
                CSRF_COOKIE,
                token,
                httponly=True,
                samesite="strict",
                secure=secure_cookies,
                path=base_url(request),
            )
        return response

    def error_page(request: Request, status: int, heading: str, detail: str) -> Response:
        return page(request, "error.html", status, heading=heading, detail=detail)

    async def guarded(request: Request, build: Any, template: str) -> Response:
        who = principal_of(request)
        if who is None:
            return error_page(request, 401, "Sign in first", "This page needs an identity.")
        try:
            context = await run_in_threadpool(build, who.tenants)
        except NotFoundError:
            # A foreign id is "not found", never "forbidden": it says nothing about others.
            return error_page(request, 404, "Not found", "No such load test or run here.")
        except ValidationError as exc:
            return error_page(request, 422, "Not valid", str(exc).splitlines()[0])
        except LoadManagerError as exc:
            return error_page(request, 503, "Unavailable", str(exc).splitlines()[0])
        return page(request, template, who=who, **context)

    async def tests(request: Request) -> Response:
        filters = {k: request.query_params.get(k, "") for k in ("tenant", "env", "tags", "name")}
        return await guarded(
            request, lambda t: _pages.tests_page(orchestrator, t, filters), "tests.html"
        )

    async def test(request: Request) -> Response:
        test_id = request.path_params["test_id"]
        return await guarded(
            request, lambda t: _pages.test_page(orchestrator, t, test_id), "test.html"
        )

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return await guarded(
            request, lambda t: _pages.run_page(orchestrator, t, run_id), "run.html"
        )

    async def live(request: Request) -> Response:
        who = principal_of(request)
        if who is None:
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        run_id = request.path_params["run_id"]
        try:
            context = await run_in_threadpool(_pages.run_live, orchestrator, who.tenants, run_id)
        except NotFoundError:
            return JSONResponse({"detail": "not found"}, status_code=404)
        panels = templates.get_template("_run_panels.html").render(
            base=base_url(request), **context
        )
        return JSONResponse(
            {
                "status": context["status"],
                "reason": context["reason"],
                "active": context["active"],
                "stoppable": context["stoppable"],
                "verdict": context["summary"].verdict,
                "facts": [list(pair) for pair in context["summary"].facts],
                "charts": context["charts"],
                "panels": panels,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def compare(request: Request) -> Response:
        run_id = request.query_params.get("run", "")
        baseline_id = request.query_params.get("baseline", "")
        if not run_id or not baseline_id:
            return error_page(request, 422, "Two runs", "Pick a run and a baseline to compare.")
        return await guarded(
            request,
            lambda t: _pages.compare_page(orchestrator, t, run_id, baseline_id),
            "compare.html",
        )

    async def static(request: Request) -> Response:
        found = _STATIC.get(request.path_params["name"])
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        name, media_type = found
        return Response(
            asset(name), media_type=media_type, headers={"Cache-Control": "max-age=3600"}
        )

    async def checked_api(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in _SAFE:
            request = Request(scope)
            cookie = request.cookies.get(CSRF_COOKIE, "")
            header = request.headers.get(CSRF_HEADER, "")
            if not cookie or not hmac.compare_digest(cookie.encode(), header.encode()):
                response = JSONResponse(
                    {
                        "type": "about:blank",
                        "title": "CSRF token missing or wrong",
                        "status": 403,
                        "detail": f"send the {CSRF_COOKIE} cookie's value in {CSRF_HEADER}",
                    },
                    status_code=403,
                    media_type="application/problem+json",
                )
                await response(scope, receive, send)
                return
        await api(scope, receive, send)

    async def home(request: Request) -> Response:
        return RedirectResponse(base_url(request) + "tests", status_code=307)

    return Router(
        routes=[
            Route("/", home),
            Route("/tests", tests),
            Route("/tests/{test_id}", test),
            Route("/runs/{run_id}", run),
            Route("/runs/{run_id}/live", live),
            Route("/compare", compare),
            Route("/static/{name}", static),
            Mount("/api", app=checked_api),
        ]
    )
