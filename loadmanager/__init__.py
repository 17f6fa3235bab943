"""loadmanager: a managed, multi-tenant control plane for Locust, as a library.

Everything a host needs is importable from here::

    import loadmanager as lm

    with lm.connect("sqlite:///loadmanager.db") as storage:
        orch = lm.Orchestrator(storage=storage, clusters=lm.ClusterRegistry({}))

Importing this package performs no I/O and loads no optional dependency
(pymongo, locust, pandas, matplotlib, starlette).
"""

import importlib as _importlib
import typing as _typing

from .clock import Clock, IdFactory, SystemClock, new_id, utc_now
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
    ProvisioningError,
    RepositoryUnavailableError,
    StaleVersionError,
    ValidationError,
    WaitTimeoutError,
)
from .filters import LoadTestFilter, RunFilter
from .locustfiles import Locustfile, LocustfileDirectory, LocustfileSource, ResolvedLocustfile
from .metrics import (
    EndpointStats,
    EndpointSummary,
    Failure,
    MetricSnapshot,
    Percentiles,
    RunSummary,
    SeriesBucket,
    Stat,
    WorkerHealth,
)
from .models import (
    Audit,
    Baseline,
    BaselineFigure,
    ClusterHandle,
    LoadTest,
    LoadTestRun,
    LoadTestSpec,
    RunOverrides,
    RunParameters,
    Threshold,
)
from .repositories import (
    LoadTestRepository,
    LoadTestRunRepository,
    LocustfileRepository,
    MetricsRepository,
    MonitorClaim,
    Storage,
)
from .status import TRANSITIONS, MasterState, RunStatus
from .storage import connect
from .verdicts import CriterionResult, Outcome, Verdict

# What needs httpx and tenacity (the Locust client, the Orchestrator, the HTTP
# API) loads on first use: `import loadmanager` stays cheap for hosts that only
# use the models and storage (bench/bench_import_time.py measures it).
_LAZY = {
    # The converters (cattrs) load on first use too.
    "from_dict": "loadmanager._serialization",
    "from_json": "loadmanager._serialization",
    "to_dict": "loadmanager._serialization",
    "to_json": "loadmanager._serialization",
    "ClusterConfig": "loadmanager.clusters",
    "ClusterProvider": "loadmanager.provisioning",
    "HeldCluster": "loadmanager.provisioning",
    "KubernetesProvider": "loadmanager.providers.kubernetes",
    "KubernetesSettings": "loadmanager.providers.k8s_manifests",
    "LocalProvider": "loadmanager.providers.local",
    "ProvisionRequest": "loadmanager.provisioning",
    "ClusterRegistry": "loadmanager.clusters",
    "LocalCluster": "loadmanager.locust.local",
    "LocalClusterError": "loadmanager.locust.local",
    "LocustClient": "loadmanager.locust.client",
    "LocustMaster": "loadmanager.lifecycle",
    "LocustStats": "loadmanager.locust.stats",
    "MasterFigures": "loadmanager.locust.stats",
    "MasterPoll": "loadmanager.locust.stats",
    "SentPoll": "loadmanager.locust.client",
    "Orchestrator": "loadmanager.orchestrator",
    "http": "loadmanager.http",
    # Results for people: comparisons, trends, summaries, reports, plots, exports.
    "Comparison": "loadmanager.comparison",
    "EndpointComparison": "loadmanager.comparison",
    "FigureDelta": "loadmanager.comparison",
    "Tolerances": "loadmanager.comparison",
    "TrendPoint": "loadmanager.queries",
    "Summary": "loadmanager.summary",
    "exit_code": "loadmanager.summary",
    "print_summary": "loadmanager.summary",
    "summarize": "loadmanager.summary",
    "render_report": "loadmanager.report",
    "render_comparison_report": "loadmanager.report",
    "write_report": "loadmanager.report",
    "write_run_report": "loadmanager.report",
    "write_comparison_report": "loadmanager.report",
    "plot_run": "loadmanager.plotting",
    "plot_comparison": "loadmanager.plotting",
    "save_png": "loadmanager.plotting",
    "to_csv": "loadmanager.exports",
    "to_dataframe": "loadmanager.exports",
}

if _typing.TYPE_CHECKING:
    from . import http
    from ._serialization import from_dict, from_json, to_dict, to_json
    from .clusters import ClusterConfig, ClusterRegistry
    from .comparison import Comparison, EndpointComparison, FigureDelta, Tolerances
    from .exports import to_csv, to_dataframe
    from .lifecycle import LocustMaster
    from .locust.client import LocustClient, SentPoll
    from .locust.local import LocalCluster, LocalClusterError
    from .locust.stats import LocustStats, MasterFigures, MasterPoll
    from .orchestrator import Orchestrator
    from .plotting import plot_comparison, plot_run, save_png
    from .providers.k8s_manifests import KubernetesSettings
    from .providers.kubernetes import KubernetesProvider
    from .providers.local import LocalProvider
    from .provisioning import ClusterProvider, HeldCluster, ProvisionRequest
    from .queries import TrendPoint
    from .report import (
        render_comparison_report,
        render_report,
        write_comparison_report,
        write_report,
        write_run_report,
    )
    from .summary import Summary, exit_code, print_summary, summarize


def __getattr__(name: str) -> _typing.Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'loadmanager' has no attribute {name!r}")
    module = _importlib.import_module(module_name)
    value = module if name == "http" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0.dev0"

__all__ = [
    "ActiveRunError",
    "Audit",
    "Baseline",
    "BaselineFigure",
    "Clock",
    "ClusterBusyError",
    "ClusterConfig",
    "ClusterHandle",
    "ClusterProvider",
    "ClusterRegistry",
    "Comparison",
    "ConflictError",
    "CriterionResult",
    "DuplicateError",
    "EndpointComparison",
    "EndpointStats",
    "EndpointSummary",
    "Failure",
    "FieldError",
    "FigureDelta",
    "HeldCluster",
    "IdFactory",
    "InvalidTransitionError",
    "KubernetesProvider",
    "KubernetesSettings",
    "LoadManagerError",
    "LoadTest",
    "LoadTestFilter",
    "LoadTestRepository",
    "LoadTestRun",
    "LoadTestRunRepository",
    "LoadTestSpec",
    "LocalCluster",
    "LocalClusterError",
    "LocalProvider",
    "LocustClient",
    "LocustConnectionError",
    "LocustError",
    "LocustHTTPError",
    "LocustMaster",
    "LocustRejectedError",
    "LocustResponseError",
    "LocustStats",
    "LocustTimeoutError",
    "Locustfile",
    "LocustfileDirectory",
    "LocustfileRepository",
    "LocustfileSource",
    "MasterFigures",
    "MasterPoll",
    "MasterState",
    "MetricSnapshot",
    "MetricsRepository",
    "MonitorClaim",
    "NotFoundError",
    "Orchestrator",
    "Outcome",
    "Percentiles",
    "PermissionDeniedError",
    "ProvisionRequest",
    "ProvisioningError",
    "RepositoryUnavailableError",
    "ResolvedLocustfile",
    "RunFilter",
    "RunOverrides",
    "RunParameters",
    "RunStatus",
    "RunSummary",
    "SentPoll",
    "SeriesBucket",
    "StaleVersionError",
    "Stat",
    "Storage",
    "Summary",
    "SystemClock",
    "TRANSITIONS",
    "Threshold",
    "Tolerances",
    "TrendPoint",
    "ValidationError",
    "Verdict",
    "WaitTimeoutError",
    "WorkerHealth",
    "__version__",
    "connect",
    "exit_code",
    "from_dict",
    "from_json",
    "http",
    "new_id",
    "plot_comparison",
    "plot_run",
    "print_summary",
    "render_comparison_report",
    "render_report",
    "save_png",
    "summarize",
    "to_csv",
    "to_dataframe",
    "to_dict",
    "to_json",
    "utc_now",
    "write_comparison_report",
    "write_report",
    "write_run_report",
]
