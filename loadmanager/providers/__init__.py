"""Cluster providers: per-run Locust clusters on this host or on Kubernetes."""

from __future__ import annotations

from .local import LocalProvider

__all__ = ["LocalProvider"]
