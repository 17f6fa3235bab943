"""Locust's wire format: building requests and parsing answers, with no I/O.

The only place that knows Locust's JSON and CSV field names. Kept free of HTTP so
that an async client could share it. Unknown fields are ignored, so newer Locust
versions that add fields keep working; missing or mistyped required fields raise
LocustResponseError with the raw body.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .._constraints import all_whole, is_finite_number, is_whole
from ..errors import LocustRejectedError, LocustResponseError
from ..metrics import EndpointSummary, Percentiles
from ..status import MasterState
from .stats import (
    EndpointHistogram,
    LocustErrorRow,
    LocustExceptionRow,
    LocustRow,
    LocustStats,
    MasterFigures,
    SwarmResult,
    WorkerInfo,
)

__all__ = [
    "CSV_PERCENTILES",
    "parse_exceptions",
    "parse_failures_csv",
    "parse_figures",
    "parse_json",
    "parse_requests_csv",
    "parse_stats",
    "parse_swarm",
    "parse_worker_count",
    "swarm_form",
]

# Column titles of /stats/requests/csv and the Percentiles field each fills.
CSV_PERCENTILES: Mapping[str, str] = {
    "50%": "p50",
    "66%": "p66",
    "75%": "p75",
    "80%": "p80",
    "90%": "p90",
    "95%": "p95",
    "98%": "p98",
    "99%": "p99",
    "99.9%": "p99_9",
    "99.99%": "p99_99",
    "100%": "p100",
}


class _Bad(Exception):  # noqa: N818 - internal signal, always re-raised as LocustResponseError
    pass


def swarm_form(
    users: int,
    spawn_rate: float,
    *,
    host: str | None = None,
    run_time: str | None = None,
    user_classes: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """The form fields of ``POST /swarm``; repeated keys for list options."""
    form: list[tuple[str, str]] = [
        ("user_count", str(users)),
        ("spawn_rate", repr(float(spawn_rate))),
    ]
    if host is not None:
        form.append(("host", host))
    if run_time is not None:
        form.append(("run_time", run_time))
    for name in user_classes or ():
        form.append(("user_classes", name))
    for tag in tags or ():
        form.append(("tags", tag))
    for key, value in (options or {}).items():
        values: Iterable[Any] = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            form.append((key, text))
    return form


def parse_json(body: str, url: str) -> Any:
    """JSON, or LocustResponseError carrying the body."""
    try:
        return _json_loads()(body)
    except ValueError:
        raise LocustResponseError(
            f"Locust answered with non-JSON from {url}", body, url=url
        ) from None


@functools.cache
def _json_loads() -> Callable[[str], Any]:
    """orjson's parser when the ``fast`` extra is installed (a quarter of the
    cost on a poll's answer), the standard library's otherwise.

    They read every answer alike but one no master sends: orjson reads an
    integer past 64 bits as a float, where Python's parser keeps an int.
    """
    try:
        import orjson
    except ImportError:
        return json.loads

    def loads(text: str) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            # What orjson refuses and Python's parser takes (NaN, which
            # Flask writes for a float NaN; lone surrogates) is read as
            # before; what neither takes raises here.
            return json.loads(text)

    return loads


def _object(value: Any) -> Mapping[str, Any]:
    if type(value) is dict:  # what the parsers give: skips the ABC's slow check
        return value
    if not isinstance(value, Mapping):
        raise _Bad("expected an object")
    return value


def _num(doc: Mapping[str, Any], key: str, default: float | None = None) -> float:
    value = doc.get(key, default)
    if value is None and default is not None:
        value = default
    # One test for the common case (a /stats/requests row holds a dozen):
    # is_finite_number's three calls were a fifth of parsing an answer.
    if (type(value) is float or type(value) is int) and -math.inf < value < math.inf:
        return float(value)
    if not is_finite_number(value):
        raise _Bad(f"{key!r} should be a number")
    return float(value)


def _opt_num(doc: Mapping[str, Any], key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    return _num(doc, key)


def _int(doc: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = doc.get(key, default)
    if type(value) is int:
        return value
    if not is_whole(value):
        raise _Bad(f"{key!r} should be a whole number")
    return value


def _str(doc: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise _Bad(f"{key!r} should be a string")
    return value


def _row(raw: Any) -> LocustRow:
    doc = _object(raw)
    return LocustRow(
        method=_str(doc, "method", "") if doc.get("method") is not None else "",
        name=_str(doc, "name"),
        num_requests=_int(doc, "num_requests"),
        num_failures=_int(doc, "num_failures"),
        avg_response_time=_num(doc, "avg_response_time", 0.0),
        min_response_time=_num(doc, "min_response_time", 0.0),
        max_response_time=_num(doc, "max_response_time", 0.0),
        median_response_time=_num(doc, "median_response_time", 0.0),
        p95_response_time=_opt_num(doc, "response_time_percentile_0.95"),
        p99_response_time=_opt_num(doc, "response_time_percentile_0.99"),
        current_rps=_num(doc, "current_rps", 0.0),
        current_fail_per_sec=_num(doc, "current_fail_per_sec", 0.0),
        total_rps=_num(doc, "total_rps", 0.0),
        total_fail_per_sec=_num(doc, "total_fail_per_sec", 0.0),
        avg_content_length=_num(doc, "avg_content_length", 0.0),
    )


def _worker(raw: Any) -> WorkerInfo:
    doc = _object(raw)
    return WorkerInfo(
        id=str(doc.get("id", "")),
        state=_str(doc, "state", ""),
        user_count=_int(doc, "user_count", 0),
        cpu_usage=_num(doc, "cpu_usage", 0.0),
        memory_usage=_num(doc, "memory_usage", 0.0),
    )


def _error(raw: Any) -> LocustErrorRow:
    doc = _object(raw)
    return LocustErrorRow(
        method=str(doc.get("method") or ""),
        name=str(doc.get("name") or ""),
        error=str(doc.get("error") or ""),
        occurrences=_int(doc, "occurrences", 0),
    )


PLUGIN_FORMATS = (1, 2)
"""The plugin answers this reads: older plugins' formats stay readable."""


def _histogram_row(raw: Any, arrays: bool) -> EndpointHistogram:
    doc = _object(raw)
    histogram = _arrays(doc) if arrays else _keyed(doc)
    return EndpointHistogram(
        method=str(doc.get("method") or ""),
        name=_str(doc, "name"),
        num_requests=_int(doc, "numRequests"),
        num_failures=_int(doc, "numFailures"),
        histogram=histogram,
    )


def _arrays(doc: Mapping[str, Any]) -> dict[int, int]:
    """Plugin format 2: ``"buckets": [12, 110], "counts": [40, 3]``.

    Tested a whole histogram at a time, in C: format 1's test and int() per
    bucket was most of reading an answer, and real histograms hold hundreds.
    """
    buckets, counts = doc.get("buckets", []), doc.get("counts", [])
    if type(buckets) is not list or type(counts) is not list or len(buckets) != len(counts):
        raise _Bad("'buckets' and 'counts' should be lists of one length")
    if not all_whole(buckets, counts):
        raise _Bad("histogram buckets and counts should be whole numbers")
    histogram = dict(zip(buckets, counts, strict=True))
    if len(histogram) != len(buckets) or (buckets and min(min(buckets), min(counts)) < 0):
        raise _Bad("histogram buckets should be distinct, and none below zero")
    return histogram


def _keyed(doc: Mapping[str, Any]) -> dict[int, int]:
    """Plugin format 1: ``"histogram": {"12": 40, "110": 3}``."""
    buckets = doc.get("histogram", {})
    if not isinstance(buckets, dict):
        raise _Bad("'histogram' should be an object")
    histogram: dict[int, int] = {}
    for bucket, count in buckets.items():
        if not str(bucket).isdigit() or not isinstance(count, int) or count < 0:
            raise _Bad(f"bad histogram bucket {bucket!r}: {count!r}")
        histogram[int(bucket)] = count
    return histogram


def parse_figures(body: str, url: str) -> MasterFigures:
    """The plugin's ``/loadmanager/v1/figures`` answer."""
    return parse_plugin(body, url)[0]


def parse_plugin(body: str, url: str) -> tuple[MasterFigures, LocustStats | None]:
    """The plugin's answer, and the ``/stats/requests`` figures it carries.

    The second is ``None`` for a plugin from before it carried them.
    """
    raw = parse_json(body, url)
    try:
        doc = _object(raw)
        form = doc.get("format")
        if form not in PLUGIN_FORMATS or type(form) is not int:
            raise _Bad(f"unknown plugin format {form!r}")
        arrays = form == 2
        files = doc.get("locustfiles", {})
        if not isinstance(files, dict):
            raise _Bad("'locustfiles' should be an object")
        figures = MasterFigures(
            state=_str(doc, "state", ""),
            endpoints=tuple(_histogram_row(e, arrays) for e in _list(doc, "entries")),
            aggregated=_histogram_row(doc.get("total"), arrays),
            errors=tuple(_error(e) for e in _list(doc, "errors")),
            workers=tuple(_worker(w) for w in _list(doc, "workers")),
            locustfiles={str(k): str(v) for k, v in files.items()},
        )
        stats = None if doc.get("stats") is None else _stats(doc["stats"])
    except (_Bad, ValueError, TypeError) as exc:
        raise LocustResponseError(f"unexpected plugin answer: {exc}", body, url=url) from None
    return figures, stats


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise _Bad(f"{key!r} should be a list")
    return value


# Locust's runner states (locust/runners.py), the only place they are spelled.
_STATES = {
    "ready": MasterState.READY,
    "spawning": MasterState.SPAWNING,
    "running": MasterState.RUNNING,
    "stopping": MasterState.STOPPING,
    "stopped": MasterState.STOPPED,
    "cleanup": MasterState.CLEANUP,
    "missing": MasterState.MISSING,
}


def parse_stats(body: str, url: str) -> LocustStats:
    """``GET /stats/requests``."""
    try:
        return _stats(parse_json(body, url))
    except _Bad as exc:
        raise LocustResponseError(
            f"unexpected /stats/requests body: {exc}", body, url=url
        ) from None


def _stats(raw: Any) -> LocustStats:
    doc = _object(raw)
    rows = [_row(r) for r in _list(doc, "stats")]
    aggregated = rows.pop() if rows and rows[-1].name == "Aggregated" else None
    percentiles = _object(doc.get("current_response_time_percentiles") or {})
    return LocustStats(
        state=_STATES.get(_str(doc, "state"), MasterState.UNKNOWN),
        user_count=_int(doc, "user_count", 0),
        worker_count=_int(doc, "worker_count", 0),
        workers=tuple(_worker(w) for w in _list(doc, "workers")),
        total_rps=_num(doc, "total_rps", 0.0),
        total_fail_per_sec=_num(doc, "total_fail_per_sec", 0.0),
        current_rps=_num(doc, "current_rps", 0.0),
        current_fail_per_sec=_num(doc, "current_fail_per_sec", 0.0),
        fail_ratio=_num(doc, "fail_ratio", 0.0),
        current_p50=_opt_num(percentiles, "response_time_percentile_0.5"),
        current_p95=_opt_num(percentiles, "response_time_percentile_0.95"),
        endpoints=tuple(rows),
        aggregated=aggregated,
        errors=tuple(_error(e) for e in _list(doc, "errors")),
    )


def _csv_float(value: str) -> float | None:
    if value in ("", "N/A"):
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def parse_requests_csv(body: str, url: str) -> tuple[EndpointSummary, ...]:
    """``GET /stats/requests/csv``: every endpoint, then the ``Aggregated`` row."""
    try:
        reader = csv.DictReader(io.StringIO(body))
        columns = reader.fieldnames or []
        needed = {"Type", "Name", "Request Count", "Failure Count"}
        if not needed <= set(columns):
            raise _Bad(f"missing columns {sorted(needed - set(columns))}")
        rows = []
        for line in reader:
            count = int(line["Request Count"])
            failures = int(line["Failure Count"])
            if count < 0 or failures < 0:
                raise _Bad("negative count")

            def num(column: str, line: dict[str, str] = line) -> float | None:
                return _csv_float(line.get(column) or "")

            pct = Percentiles(**{field: num(col) for col, field in CSV_PERCENTILES.items()})
            rows.append(
                EndpointSummary(
                    method=line["Type"] or "",
                    name=line["Name"] or "",
                    num_requests=count,
                    num_failures=failures,
                    avg_response_time=num("Average Response Time") if count else None,
                    min_response_time=num("Min Response Time") if count else None,
                    max_response_time=num("Max Response Time") if count else None,
                    median_response_time=num("Median Response Time") if count else None,
                    avg_content_length=num("Average Content Size") if count else None,
                    requests_per_sec=num("Requests/s") or 0.0,
                    failures_per_sec=num("Failures/s") or 0.0,
                    percentiles=pct,
                )
            )
        return tuple(rows)
    except (_Bad, ValueError, KeyError, TypeError, csv.Error) as exc:
        raise LocustResponseError(
            f"unexpected /stats/requests/csv body: {exc}", body, url=url
        ) from None


def parse_failures_csv(body: str, url: str) -> tuple[LocustErrorRow, ...]:
    """``GET /stats/failures/csv``."""
    try:
        reader = csv.DictReader(io.StringIO(body))
        return tuple(
            LocustErrorRow(
                method=line["Method"] or "",
                name=line["Name"] or "",
                error=line["Error"] or "",
                occurrences=int(line["Occurrences"]),
            )
            for line in reader
        )
    except (ValueError, KeyError, TypeError, csv.Error) as exc:
        raise LocustResponseError(
            f"unexpected /stats/failures/csv body: {exc}", body, url=url
        ) from None


def parse_exceptions(body: str, url: str) -> tuple[LocustExceptionRow, ...]:
    """``GET /exceptions``."""
    try:
        doc = _object(parse_json(body, url))
        return tuple(
            LocustExceptionRow(
                count=_int(_object(e), "count", 0),
                message=str(_object(e).get("msg", "")),
                traceback=str(_object(e).get("traceback", "")),
                nodes=str(_object(e).get("nodes", "")),
            )
            for e in _list(doc, "exceptions")
        )
    except _Bad as exc:
        raise LocustResponseError(f"unexpected /exceptions body: {exc}", body, url=url) from None


def parse_worker_count(body: str, url: str) -> int:
    """``GET /worker-count``."""
    try:
        return _int(_object(parse_json(body, url)), "worker_count")
    except _Bad as exc:
        raise LocustResponseError(f"unexpected /worker-count body: {exc}", body, url=url) from None


def parse_swarm(body: str, url: str) -> SwarmResult:
    """``POST /swarm``; ``success: false`` becomes LocustRejectedError."""
    try:
        doc = _object(parse_json(body, url))
        if doc.get("success") is not True:
            raise LocustRejectedError(str(doc.get("message") or "no reason given"), url=url)
        run_time = doc.get("run_time")
        classes = doc.get("user_classes") or []
        return SwarmResult(
            message=str(doc.get("message", "")),
            host=None if doc.get("host") is None else str(doc["host"]),
            run_time_seconds=int(run_time) if isinstance(run_time, (int, float)) else None,
            user_classes=tuple(str(c) for c in classes) if isinstance(classes, list) else (),
        )
    except _Bad as exc:
        raise LocustResponseError(f"unexpected /swarm body: {exc}", body, url=url) from None


def parse_ok(body: str, url: str) -> None:
    """``POST /stop``: ``{"success": true}``, or LocustRejectedError."""
    try:
        doc = _object(parse_json(body, url))
    except _Bad:
        raise LocustResponseError("unexpected /stop body", body, url=url) from None
    if doc.get("success") is False:
        raise LocustRejectedError(str(doc.get("message") or "no reason given"), url=url)
