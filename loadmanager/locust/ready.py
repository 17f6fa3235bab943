"""Waiting for a Locust master to have its workers: one loop for every cluster maker."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

__all__ = ["wait_for_workers"]


def wait_for_workers(
    url: str,
    workers: int,
    timeout: float,
    *,
    interval: float = 0.2,
    alive: Callable[[], None] = lambda: None,
) -> str | None:
    """Poll the master's ``/worker-count`` until ``workers`` are connected.

    Args:
        url: The master's web API address.
        workers: How many workers must be connected.
        timeout: Seconds to wait at most.
        interval: Seconds between two looks.
        alive: Called before each look; raises when the cluster died meanwhile.

    Returns:
        ``None`` once ready, else what was last seen (for the error message).
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(timeout=min(5.0, max(timeout, 0.1))) as http:
        while time.monotonic() < deadline:
            alive()
            try:
                count = http.get(f"{url}/worker-count").json()["worker_count"]
                if count >= workers:
                    return None
                last = f"{count} of {workers} workers connected"
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                last = f"master not answering: {exc}"
            time.sleep(interval)
    return last
