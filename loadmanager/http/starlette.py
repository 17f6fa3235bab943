"""The HTTP API as a Starlette ASGI app (``pip install 'loadmanager[http]'``).

A thin adapter: it turns a Starlette request into an ApiRequest, runs the
framework-neutral :class:`~loadmanager.http._api.Api` in a worker thread (the
Orchestrator is synchronous), and writes the ApiResponse back.
"""

from __future__ import annotations

from typing import Any

from ..orchestrator import Orchestrator
from ._api import MAX_BODY, Api, ApiRequest, problem
from .auth import Authenticate

__all__ = ["create_app"]


def _local_path(scope: Any) -> str:
    """The path below the mount point (hosts mount the app under a prefix)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def create_app(
    orchestrator: Orchestrator,
    *,
    authenticate: Authenticate | None = None,
    max_body: int = MAX_BODY,
    locustfile_routes: bool = False,
) -> Any:
    """An ASGI app serving the seed's routes; mount it in your own service.

    Args:
        orchestrator: The host's Orchestrator.
        authenticate: The host's hook, e.g. ``bearer_tokens({...})``. Required:
            pass ``loadmanager.http.allow_anonymous`` explicitly to open it up.
        max_body: Largest request body in bytes (1 MiB); larger ones get 413.
        locustfile_routes: Serve ``/v1/locustfiles`` (store, read, list, delete
            locustfiles). Off by default: a locustfile is code that runs on
            the load generators, so enabling this lets every principal with
            write access to a tenant run code there. See docs/security.md.

    Raises:
        ValueError: no ``authenticate`` hook was given.
    """
    if authenticate is None:
        raise ValueError(
            "create_app needs an authenticate hook; pass"
            " authenticate=loadmanager.http.allow_anonymous to serve without authentication"
            " on purpose"
        )
    try:
        from starlette.concurrency import run_in_threadpool
        from starlette.requests import Request
        from starlette.responses import Response
    except ImportError as exc:
        raise ImportError("the HTTP app needs starlette: pip install 'loadmanager[http]'") from exc

    api = Api(orchestrator, authenticate, max_body=max_body, locustfile_routes=locustfile_routes)

    async def read_body(request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                return None  # stop reading: never buffer more than the limit
            chunks.append(chunk)
        return b"".join(chunks)

    async def endpoint(request: Request) -> Response:
        body = await read_body(request)
        if body is None:
            answer = problem(413, "Payload too large", f"bodies are limited to {max_body} bytes")
        else:
            query: dict[str, list[str]] = {}
            for key, value in request.query_params.multi_items():
                query.setdefault(key, []).append(value)
            api_request = ApiRequest(
                method=request.method,
                path=_local_path(request.scope),
                query=query,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
            answer = await run_in_threadpool(api.handle, api_request)
        return Response(
            answer.encode(),
            status_code=answer.status,
            headers=dict(answer.headers),
            media_type=answer.media_type if answer.body is not None else None,
        )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # No router: the Api routes every path itself, so even paths a router
        # would not match (a newline, say) get a problem document, not plain text.
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    return app
