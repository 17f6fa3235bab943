"""The seed's two curl examples, as written, against the app served by uvicorn."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_server import serve

import loadmanager as lm
from loadmanager.http import Principal, bearer_tokens, create_app
from loadmanager.testing.target import TargetServer

pytestmark = pytest.mark.slow
GENTLE = Path(__file__).parent / "locustfiles" / "gentle.py"
TOKEN = "YOUR_TOKEN"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, lm.Orchestrator, TargetServer]]:
    with (
        TargetServer() as target,
        lm.LocalCluster(GENTLE, workers=2, host=target.url) as cluster,
        lm.connect(f"sqlite:///{tmp_path / 'service.db'}") as storage,
        lm.Orchestrator(
            storage=storage,
            clusters=lm.ClusterRegistry({"cluster-1": cluster.url}),
            poll_interval=1.0,
        ) as orch,
    ):
        app = create_app(
            orch,
            authenticate=bearer_tokens({TOKEN: Principal("user@example.com", {"tenant-1"})}),
        )
        for base in serve(app):
            yield base, orch, target


def test_the_seeds_curl_walkthrough(service: tuple[str, lm.Orchestrator, TargetServer]) -> None:
    base, orch, target = service
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    # curl -X POST http://localhost:8080/v1/load-tests ... (the seed's body, as written,
    # except that the target is our local one: nothing leaves this machine)
    create = """{
    "name": "API Load Test",
    "description": "Tests API performance",
    "tags": ["api", "prod"],
    "tenantId": "tenant-1",
    "envId": "prod",
    "locustClusterId": "cluster-1",
    "targetUrl": "https://api.example.com",
    "locustfile": "loadtest.py",
    "defaultUsers": 100,
    "defaultSpawnRate": 10,
    "createdBy": "user@example.com"
  }""".replace("https://api.example.com", target.url)
    with httpx.Client(base_url=base, timeout=30) as http:
        created = http.post("/v1/load-tests", content=create, headers=headers)
        assert created.status_code == 201, created.text
        test_id = created.json()["id"]
        assert created.json()["createdBy"] == "user@example.com"
        # curl -X POST http://localhost:8080/v1/load-tests/{loadTestId}/runs ...
        start = """{
    "targetUsers": 200,
    "spawnRate": 20,
    "createdBy": "user@example.com"
  }"""
        started = http.post(f"/v1/load-tests/{test_id}/runs", content=start, headers=headers)
        assert started.status_code == 201, started.text
        run = started.json()
        assert (run["status"], run["targetUsers"], run["spawnRate"]) == ("running", 200, 20.0)
        listed = http.get(f"/v1/load-tests/{test_id}/runs", headers=headers).json()["items"]
        assert [r["id"] for r in listed] == [run["id"]]
        assert http.get("/v1/runs", headers=headers).json()["items"][0]["id"] == run["id"]
        time.sleep(4)  # 200 users at one request a second each: bounded, and brief
        stopped = http.post(f"/v1/runs/{run['id']}/stop", headers=headers)
        assert stopped.json()["status"] == "stopping"
        orch.wait(run["id"], timeout=60)
        final = http.get(f"/v1/runs/{run['id']}", headers=headers).json()
        assert final["status"] == "stopped"
        assert final["summary"]["aggregated"]["numRequests"] > 100
        summary = http.get(f"/v1/runs/{run['id']}/metrics/summary", headers=headers).json()
        assert summary["summary"] == final["summary"]
