"""Mount loadmanager's REST API in your own FastAPI service, behind bearer tokens.

The service keeps its own routes; loadmanager's live under /loadtests. Run it with
uvicorn (pip install fastapi uvicorn 'loadmanager[http]'):

    uvicorn examples.mount_in_fastapi:app --host 127.0.0.1 --port 8080
    curl -H 'Authorization: Bearer team-a-token' http://127.0.0.1:8080/loadtests/v1/load-tests
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI

import loadmanager as lm
from loadmanager.http import Principal, bearer_tokens, create_app

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


app.mount(
    "/loadtests",
    create_app(
        orchestrator,
        authenticate=bearer_tokens(
            {
                os.environ.get("TEAM_A_TOKEN", "team-a-token"): Principal(
                    "team-a@example.com", {"tenant-a"}
                ),
            }
        ),
    ),
)
