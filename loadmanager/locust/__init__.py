"""Talking to Locust: :class:`LocustClient` over the web API, and
:class:`~loadmanager.locust.local.LocalCluster` for a master and workers on this
machine. Nothing here imports locust itself: importing it monkey-patches the
process with gevent, so local clusters run as subprocesses.
"""

from .client import LocustClient, SentPoll, default_retrying
from .stats import (
    LocustErrorRow,
    LocustExceptionRow,
    LocustRow,
    LocustStats,
    MasterFigures,
    MasterPoll,
    SwarmResult,
    WorkerInfo,
)

__all__ = [
    "LocustClient",
    "LocustErrorRow",
    "LocustExceptionRow",
    "LocustRow",
    "LocustStats",
    "MasterFigures",
    "MasterPoll",
    "SentPoll",
    "SwarmResult",
    "WorkerInfo",
    "default_retrying",
]
