"""What rolled-up series cells are keyed by, for the backends that store them.

A cell is one ``level`` wide slice of epoch time (cell ``k`` covers
``[k*level, (k+1)*level)``, levels in
:data:`~loadmanager.filters.ROLLUP_LEVELS_MS`) for one run and one *scope*:
:data:`WHOLE_RUN`, or ``"@"`` and an endpoint's ``"METHOD name"`` key (its name
alone when it has no method). Both rows a series of that key matches (see
:func:`~loadmanager.repositories._series.endpoint_matches`) roll up into the
same scope, and the ``@`` keeps a row with an empty name apart from the whole
run. A cell holds only mergeable figures, the sample count and, per series
figure, the count of values, their sum, minimum and maximum, so merging cells
gives exactly the figures of the snapshots behind them (averages up to the
order of summation).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..metrics import MetricSnapshot

__all__ = ["WHOLE_RUN", "endpoint_scope", "row_scope", "scoped_figures"]

WHOLE_RUN = ""
"""The scope of the whole run's figures."""


def endpoint_scope(key: str) -> str:
    """The scope a series of the endpoint ``key`` reads."""
    return f"@{key.strip()}"


def row_scope(method: str, name: str) -> str:
    """The scope an endpoint row rolls up into (both rows a key matches share it)."""
    return f"@{method} {name}" if method else f"@{name}"


def scoped_figures(snap: MetricSnapshot) -> Iterator[tuple[str, tuple[float | None, ...]]]:
    """What a snapshot adds to its cells: ``(scope, figures)`` in SERIES_FIELDS order.

    The whole run's figures, then each endpoint row's, which carry the
    snapshot's user count beside the row's own rates and response times. Of
    two rows one key matches (``("GET", "/a")`` and ``("", "GET /a")``), the
    first counts, as it does in a series of the snapshots themselves.
    """
    users = snap.user_count
    yield (
        WHOLE_RUN,
        (users, snap.current_rps, snap.current_fail_per_sec, snap.current_p50, snap.current_p95),
    )
    seen = set()
    for row in snap.endpoints:
        scope = row_scope(row.method, row.name)
        if scope in seen:
            continue
        seen.add(scope)
        yield (
            scope,
            (
                users,
                row.current_rps,
                row.current_fail_per_sec,
                row.median_response_time,
                row.p95_response_time,
            ),
        )
