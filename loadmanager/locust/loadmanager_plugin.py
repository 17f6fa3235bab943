"""loadmanager's Locust plugin: what the master knows and its web API does not say.

Standalone on purpose (it imports nothing from loadmanager), so a master image
needs only this file. Load it next to your locustfile with Locust's
comma-separated ``-f``::

    locust -f locustfile.py,loadmanager_plugin.py --master

It adds one route to the master's web UI, ``GET /loadmanager/v1/figures``,
answering JSON with, per endpoint and aggregated, the cumulative response-time
histogram in Locust's own rounded buckets (``"buckets": [12, 110], "counts":
[40, 3]``: 40 requests took 12 ms after rounding), the request and failure
counts; the
errors table; each worker's state, users and CPU; the SHA-256 of every
locustfile the master loaded (this file excluded); and under ``stats``, what
``GET /stats/requests`` answers, computed at that moment (not from its 2 s
cache), so a poll needs one request, not two. On a worker it does nothing.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from typing import Any

from locust import events

FORMAT = 2
"""2: histograms as two arrays of numbers (1 had an object keyed by bucket text,
which the reader turned back into numbers one bucket at a time)."""
ROUTE = "/loadmanager/v1/figures"
_HERE = os.path.abspath(__file__)


def _locustfiles(environment: Any) -> dict[str, str]:
    options = getattr(environment, "parsed_options", None)
    names: Any = getattr(environment, "parsed_locustfiles", None) or getattr(
        options, "locustfile", None
    )
    if isinstance(names, str):
        names = names.split(",")
    hashes: dict[str, str] = {}
    for name in names or ():
        path = os.path.abspath(str(name).strip())
        if path == _HERE or os.path.basename(path) == os.path.basename(_HERE):
            continue
        try:
            with open(path, "rb") as handle:
                hashes[os.path.basename(path)] = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            continue
    return hashes


def _entry(entry: Any) -> dict[str, Any]:
    counted = sorted((k, v) for k, v in entry.response_times.items() if v)
    return {
        "method": entry.method or "",
        "name": entry.name,
        "numRequests": entry.num_requests,
        "numFailures": entry.num_failures,
        "numNoneRequests": getattr(entry, "num_none_requests", 0),
        "buckets": [k for k, _ in counted],
        "counts": [v for _, v in counted],
    }


def figures(environment: Any) -> dict[str, Any]:
    """The document the route answers (also usable in tests without a web server)."""
    runner = environment.runner
    stats = runner.stats
    workers = []
    for node_id, node in sorted(getattr(runner, "clients", {}).items()):
        workers.append(  # in Locust's own field names, as /stats/requests has them
            {
                "id": node_id,
                "state": str(node.state),
                "user_count": node.user_count,
                "cpu_usage": node.cpu_usage,
                "memory_usage": getattr(node, "memory_usage", 0),
            }
        )
    return {
        "format": FORMAT,
        "state": str(runner.state),
        "entries": [_entry(e) for _, e in sorted(stats.entries.items())],
        "total": _entry(stats.total),
        "errors": [
            {
                "method": e.method or "",
                "name": e.name,
                "error": str(e.error),
                "occurrences": e.occurrences,
            }
            for e in stats.errors.values()
        ],
        "workers": workers,
        "locustfiles": _locustfiles(environment),
    }


def _on_init(environment: Any, **_kwargs: Any) -> None:
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:  # a worker, or a headless master: nothing to serve
        return
    guard = getattr(web_ui, "auth_required_if_enabled", lambda view: view)

    def loadmanager_figures() -> Any:
        from flask import jsonify

        document = figures(environment)
        # Locust's own view, so the figures are its very answer: rebuilding
        # them here would drift from Locust's as it changes. Unwrapped past
        # its 2 s cache (and its login check: this route has its own), so the
        # answer is of this moment, like the histograms beside it; through
        # the cache, a read of these figures just before a reset made the
        # next run's first polls show the last run's figures. A Locust that
        # names the view otherwise gets the figures alone, and loadmanager
        # asks /stats/requests for the rest.
        view = web_ui.app.view_functions.get("locust.request_stats")
        if view is not None:
            document["stats"] = inspect.unwrap(view)().get_json()
        return jsonify(document)

    web_ui.app.add_url_rule(ROUTE, "loadmanager_figures", guard(loadmanager_figures))


events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
