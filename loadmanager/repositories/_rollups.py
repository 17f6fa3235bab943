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

__all__ = ["WHOLE_RUN", "endpoint_scope", "row_scope"]

WHOLE_RUN = ""
"""The scope of the whole run's figures."""


def endpoint_scope(key: str) -> str:
    """The scope a series of the endpoint ``key`` reads."""
    return f"@{key.strip()}"


def row_scope(method: str, name: str) -> str:
    """The scope an endpoint row rolls up into (both rows a key matches share it)."""
    return f"@{method} {name}" if method else f"@{name}"
