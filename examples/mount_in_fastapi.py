"""Mount loadmanager's REST API and its dashboard in your own FastAPI service.

The service keeps its own routes; loadmanager's API lives under /loadtests
(bearer tokens, for scripts and CI) and its dashboard under /dashboard (for
people, signed in with the host's session cookie; here a stand-in login). Run it
with uvicorn (pip install fastapi uvicorn 'loadmanager[dashboard]'):

    uvicorn examples.mount_in_fastapi:app --host 127.0.0.1 --port 8080
    curl -H 'Authorization: Bearer team-a-token' http://127.0.0.1:8080/loadtests/v1/load-tests
    open http://127.0.0.1:8080/login  # then /dashboard/
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

import loadmanager as lm
from loadmanager.http import ApiRequest, Principal, bearer_tokens, create_app, create_dashboard

storage = lm.connect(os.environ.get("LOADMANAGER_DB", "sqlite:///loadmanager.db"))
orchestrator = lm.Orchestrator(
    storage=storage,
    clusters=lm.ClusterRegistry(
        {"cluster-1": os.environ.get("LOCUST_MASTER", "http://127.0.0.1:8089")}
    ),
)


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    orchestrator.close()  # the host created them, so the host closes them
    storage.close()


app = FastAPI(title="my service", lifespan=lifespan)


@app.get("/health")
def health() -> dict[str, str]:
    """The host service's own route, beside the mounted API."""
    return {"status": "ok"}


TEAM_A = Principal("team-a@example.com", {"tenant-a"})
tokens = bearer_tokens({os.environ.get("TEAM_A_TOKEN", "team-a-token"): TEAM_A})
# A stand-in for the host's own sign-in: session id -> principal. A real host
# looks the session up in its session store and maps the user to tenants.
SESSIONS = {os.environ.get("TEAM_A_SESSION", "team-a-session"): TEAM_A}


def people_or_scripts(request: ApiRequest) -> Principal | None:
    """The host's one hook for both mounts: a bearer token, or a session cookie."""
    found = tokens(request)
    if found is not None:
        return found
    for part in request.headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "session":
            return SESSIONS.get(value)
    return None


@app.get("/login")
def login() -> RedirectResponse:
    """The stand-in sign-in: sets the session cookie and opens the dashboard."""
    response = RedirectResponse("/dashboard/", status_code=303)
    response.set_cookie("session", next(iter(SESSIONS)), httponly=True, samesite="strict")
    return response


app.mount("/loadtests", create_app(orchestrator, authenticate=people_or_scripts))
# secure_cookies=False only because this example serves plain HTTP on localhost.
app.mount(
    "/dashboard",
    create_dashboard(orchestrator, authenticate=people_or_scripts, secure_cookies=False),
)
