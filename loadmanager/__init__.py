"""loadmanager: a managed, multi-tenant control plane for Locust, as a library.

Everything a host needs is importable from here::

    import loadmanager as lm

    with lm.connect("sqlite:///loadmanager.db") as storage:
        ...

Importing this package performs no I/O and loads no optional dependency
(pymongo, locust, pandas, matplotlib, starlette).
"""

from . import http
from ._serialization import from_json, to_json
from .clock import Clock, IdFactory, new_id, utc_now
from .clusters import ClusterConfig, ClusterRegistry
from .comparison import Comparison, EndpointComparison, FigureDelta, Tolerances
from .errors import (
    ActiveRunError,
    ClusterBusyError,
    ConflictError,
    DuplicateError,
    FieldError,
    InvalidTransitionError,
    LoadManagerError,
    LocustConnectionError,
    LocustError,
    LocustHTTPError,
    LocustRejectedError,
    LocustResponseError,
    LocustTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RepositoryUnavailableError,
    StaleVersionError,
    ValidationError,
    WaitTimeoutError,
)
from .exports import to_csv, to_dataframe
from .filters import LoadTestFilter, RunFilter
from .locust.client import LocustClient
from .locust.local import LocalCluster, LocalClusterError
from .locust.stats import LocustStats
from .metrics import (
    EndpointStats,
    EndpointSummary,
    MetricSnapshot,
    Percentiles,
    RunSummary,
    SeriesBucket,
    Stat,
)
from .models import (
    Audit,
    LoadTest,
    LoadTestRun,
    LoadTestSpec,
    RunOverrides,
    RunParameters,
    Threshold,
)
from .orchestrator import Orchestrator
from .plotting import plot_comparison, plot_run, save_png
from .queries import TrendPoint
from .report import render_report, write_report
from .repositories import LoadTestRepository, LoadTestRunRepository, MetricsRepository, Storage
from .status import TRANSITIONS, RunStatus
from .storage import connect
from .verdicts import CriterionResult, Outcome, Verdict

__version__ = "0.1.0.dev0"

__all__ = [
    "ActiveRunError",
    "Audit",
    "Clock",
    "ClusterBusyError",
    "ClusterConfig",
    "ClusterRegistry",
    "Comparison",
    "ConflictError",
    "CriterionResult",
    "DuplicateError",
    "EndpointComparison",
    "EndpointStats",
    "EndpointSummary",
    "FieldError",
    "FigureDelta",
    "IdFactory",
    "InvalidTransitionError",
    "LoadManagerError",
    "LoadTest",
    "LoadTestFilter",
    "LoadTestRepository",
    "LoadTestRun",
    "LoadTestRunRepository",
    "LoadTestSpec",
    "LocalCluster",
    "LocalClusterError",
    "LocustClient",
    "LocustConnectionError",
    "LocustError",
    "LocustHTTPError",
    "LocustRejectedError",
    "LocustResponseError",
    "LocustStats",
    "LocustTimeoutError",
    "MetricSnapshot",
    "MetricsRepository",
    "NotFoundError",
    "Orchestrator",
    "Outcome",
    "Percentiles",
    "PermissionDeniedError",
    "RepositoryUnavailableError",
    "RunFilter",
    "RunOverrides",
    "RunParameters",
    "RunStatus",
    "RunSummary",
    "SeriesBucket",
    "StaleVersionError",
    "Stat",
    "Storage",
    "TRANSITIONS",
    "Threshold",
    "Tolerances",
    "TrendPoint",
    "ValidationError",
    "Verdict",
    "WaitTimeoutError",
    "__version__",
    "connect",
    "from_json",
    "http",
    "new_id",
    "plot_comparison",
    "plot_run",
    "render_report",
    "save_png",
    "to_csv",
    "to_dataframe",
    "to_json",
    "utc_now",
    "write_report",
]
