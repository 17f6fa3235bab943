"""Storage ports and the backends that implement them.

The ports are :class:`LoadTestRepository`, :class:`LoadTestRunRepository`,
:class:`MetricsRepository`, :class:`LocustfileRepository` and :class:`Storage`
(all of them together). Backends
live in their own modules so that importing this package pulls in no driver:
``memory`` (reference), ``sqlite`` (embedded default) and ``mongo`` (pymongo).
"""

from ._protocols import (
    LoadTestRepository,
    LoadTestRunRepository,
    LocustfileRepository,
    MetricsRepository,
    MonitorClaim,
    Storage,
)

__all__ = [
    "LoadTestRepository",
    "LoadTestRunRepository",
    "LocustfileRepository",
    "MetricsRepository",
    "MonitorClaim",
    "Storage",
]
