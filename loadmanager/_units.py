"""Figures as a person reads them: each metric in its own unit.

Data keeps canonical units (milliseconds, ratios from 0 to 1); everything shown
to a person goes through :func:`show`, so an error rate reads ``1.46 %`` in the
summary, the report, a comparison and a notebook alike.
"""

from __future__ import annotations

import math

__all__ = ["change", "show", "unit"]

_RATES = frozenset({"rps", "fail_rps", "current_rps", "current_fail_per_sec"})
_RATIOS = frozenset({"error_rate"})
_COUNTS = frozenset({"requests", "failures", "users", "user_count"})


def unit(metric: str) -> str:
    """``ms``, ``%``, ``/s`` or ``""`` (a count) for a metric name."""
    if metric in _RATIOS:
        return "%"
    if metric in _RATES:
        return "/s"
    if metric in _COUNTS:
        return ""
    return "ms"


def _number(value: float, digits: int) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def show(metric: str, value: float | None) -> str:
    """``1.46 %``, ``312 ms``, ``68.9/s``, ``1,204``; ``-`` for no figure."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    kind = unit(metric)
    # Fixed decimals per unit, so a column of figures lines up and 51 ms never
    # sits beside 51.0 ms.
    if kind == "%":
        return f"{100.0 * value:,.2f} %"
    if kind == "/s":
        return f"{value:,.1f}/s"
    if kind == "ms":
        return f"{value:,.{1 if abs(value) < 10 else 0}f} ms"
    return _number(value, 1)


def change(metric: str, before: float | None, after: float | None) -> str:
    """How a figure moved: ``+0.64 pp`` for ratios (points, not percent of a
    tiny number), ``+12.5 %`` for the rest; ``-`` when either side is missing."""
    if before is None or after is None:
        return "-"
    if unit(metric) == "%":
        return f"{100.0 * (after - before):+.2f} pp"
    if before == 0:
        return "new" if after else "0 %"
    return f"{100.0 * (after - before) / before:+.1f} %"
