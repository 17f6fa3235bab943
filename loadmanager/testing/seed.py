"""The seed document's two example request bodies, exactly as it writes them.

They are requirements: the library must accept both as they are. Functions return
fresh copies, so a test that changes one cannot change it for another.
"""

from __future__ import annotations

from typing import Any

__all__ = ["seed_load_test_body", "seed_run_body"]


def seed_load_test_body(**changes: Any) -> dict[str, Any]:
    """``POST /v1/load-tests`` from the seed's quick start, with ``changes`` applied."""
    body: dict[str, Any] = {
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
        "createdBy": "user@example.com",
    }
    body.update(changes)
    return body


def seed_run_body(**changes: Any) -> dict[str, Any]:
    """``POST /v1/load-tests/{id}/runs`` from the seed's quick start."""
    return {"targetUsers": 200, "spawnRate": 20, "createdBy": "user@example.com", **changes}
