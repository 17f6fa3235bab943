"""The seed's REST routes, for hosts that mount them in their own service.

``create_app(orchestrator, authenticate=...)`` gives a Starlette ASGI app
(``pip install 'loadmanager[http]'``); :class:`Api` is the framework-neutral core
that a Flask or Django host can wrap instead. Importing this package does not
import Starlette.
"""

from typing import Any

from ._api import MAX_BODY, Api, ApiRequest, ApiResponse, problem
from ._openapi import openapi_document
from .auth import AuthenticationError, Principal, allow_anonymous, bearer_tokens

__all__ = [
    "MAX_BODY",
    "Api",
    "ApiRequest",
    "ApiResponse",
    "AuthenticationError",
    "Principal",
    "allow_anonymous",
    "bearer_tokens",
    "create_app",
    "create_dashboard",
    "openapi_document",
    "problem",
]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`loadmanager.http.starlette.create_app` (imported on first use)."""
    from .starlette import create_app as create

    return create(*args, **kwargs)


def create_dashboard(*args: Any, **kwargs: Any) -> Any:
    """See :func:`loadmanager.http.dashboard.create_dashboard` (imported on first use)."""
    from .dashboard import create_dashboard as create

    return create(*args, **kwargs)
