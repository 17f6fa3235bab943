"""What to look for when listing load tests and runs.

Every field left at ``None`` does not filter. Results come in a stable order:
oldest first by creation time, then by id, so that paging with ``limit`` never
skips or repeats an object that was there all along.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import attrs

from . import _constraints as c
from .errors import ValidationError
from .status import RunStatus

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ROLLUP_LEVELS_MS",
    "LoadTestFilter",
    "RunFilter",
    "SeriesWindow",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

_LIMIT = c.rule(
    lambda v: (
        None
        if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_LIMIT
        else f"must be a whole number from 1 to {MAX_LIMIT}"
    )
)


def _texts(
    field: str, *, lone_string: bool
) -> Callable[[Iterable[Any] | None], tuple[Any, ...] | None]:
    """A converter to an optional tuple of strings, refusing what is not a collection.

    ``lone_string``: a bare string means a one-item list (a tag); otherwise it is
    refused, because iterating it would split it into characters (tenant ids).
    """

    def convert(value: Iterable[Any] | None) -> tuple[Any, ...] | None:
        if value is None:
            return None
        if isinstance(value, str):
            if lone_string:
                return (value,)
            raise ValidationError.single(field, "must be a list of strings, not one string")
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise ValidationError.single(field, "must be a list of strings")
        return tuple(value)

    return convert


def _tenant_ids(value: Iterable[Any] | None) -> tuple[Any, ...] | None:
    return _texts("tenants", lone_string=False)(value)


def _tags(value: Iterable[Any] | None) -> tuple[Any, ...] | None:
    return _texts("tags", lone_string=True)(value)


def _statuses(value: Iterable[Any] | None) -> tuple[RunStatus, ...] | None:
    items = _texts("statuses", lone_string=True)(value)
    if items is None:
        return None
    try:
        return tuple(RunStatus(s) for s in items)
    except (ValueError, TypeError):
        allowed = ", ".join(s.value for s in RunStatus)
        raise ValidationError.single("statuses", f"must each be one of {allowed}") from None


def _is_text(value: Any) -> str | None:
    # Filters are compared literally in every backend; only strings get there.
    return c.unicode_problem(value) if isinstance(value, str) else "must be a string"


_TEXT = c.optional(c.rule(_is_text))
_TEXTS = c.optional(c.each(_is_text, max_items=1000))


@attrs.frozen(kw_only=True)
class LoadTestFilter:
    """Which load tests to list.

    Attributes:
        tenant_id: Only this tenant's tests.
        tenant_ids: Only tests of one of these tenants (tenant scoping).
        env_id: Only this environment's tests.
        tags: Only tests carrying *all* of these tags.
        name_contains: Only tests whose name contains this text (case-sensitive,
            taken literally: no wildcards or patterns).
        created_by: Only tests created by this actor.
        limit: At most this many tests.
    """

    tenant_id: str | None = attrs.field(default=None, validator=_TEXT)
    tenant_ids: tuple[str, ...] | None = attrs.field(
        default=None, converter=_tenant_ids, validator=_TEXTS
    )
    env_id: str | None = attrs.field(default=None, validator=_TEXT)
    tags: tuple[str, ...] | None = attrs.field(default=None, converter=_tags, validator=_TEXTS)
    name_contains: str | None = attrs.field(default=None, validator=_TEXT)
    created_by: str | None = attrs.field(default=None, validator=_TEXT)
    limit: int = attrs.field(default=DEFAULT_LIMIT, validator=_LIMIT)


@attrs.frozen(kw_only=True)
class RunFilter:
    """Which runs to list.

    Attributes:
        load_test_id: Only runs of this load test.
        tenant_id: Only this tenant's runs.
        tenant_ids: Only runs of one of these tenants (tenant scoping).
        env_id: Only this environment's runs.
        locust_cluster_id: Only runs on this cluster.
        statuses: Only runs in one of these statuses.
        started_after: Only runs started at or after this time.
        started_before: Only runs started before this time.
        limit: At most this many runs.
    """

    load_test_id: str | None = attrs.field(default=None, validator=_TEXT)
    tenant_id: str | None = attrs.field(default=None, validator=_TEXT)
    tenant_ids: tuple[str, ...] | None = attrs.field(
        default=None, converter=_tenant_ids, validator=_TEXTS
    )
    env_id: str | None = attrs.field(default=None, validator=_TEXT)
    locust_cluster_id: str | None = attrs.field(default=None, validator=_TEXT)
    statuses: tuple[RunStatus, ...] | None = attrs.field(default=None, converter=_statuses)
    started_after: datetime | None = attrs.field(default=None, validator=c.optional(c.TIME))
    started_before: datetime | None = attrs.field(default=None, validator=c.optional(c.TIME))
    limit: int = attrs.field(default=DEFAULT_LIMIT, validator=_LIMIT)


ROLLUP_LEVELS_MS = (10_000, 60_000, 600_000)
"""The widths (10 s, 1 min, 10 min) at which backends keep figures rolled up.

A series whose buckets are at least 10 s wide is laid on the coarsest level no
wider than its buckets, so a backend answers it from rolled-up cells instead of
every snapshot, and its cost grows with the buckets asked for, not with the
snapshots stored (RRDtool and Graphite lay their archives out the same way).
"""


@attrs.frozen
class SeriesWindow:
    """How a series of at most ``buckets`` equal buckets is laid over ``[start, end)``.

    All backends bucket the same way, on epoch milliseconds: bucket ``i`` covers
    ``[start + i*width, start + (i+1)*width)``. Without an explicit window the
    run's first and last snapshot bound it.

    When ``span / buckets`` is at least the finest rollup level, the layout is
    aligned to the coarsest level ``level_ms`` no wider than that: the window
    widens outwards to whole level cells and each bucket is a whole number of
    cells. Buckets then hold whole cells, which is what makes rolled-up figures
    exact; a short window keeps the exact layout (``level_ms == 0``).
    """

    start_ms: int
    end_ms: int
    buckets: int
    level_ms: int = 0

    @classmethod
    def laid_out(cls, start_ms: int, end_ms: int, buckets: int) -> SeriesWindow:
        """The layout for ``[start_ms, end_ms)`` in at most ``buckets`` buckets."""
        width = max(1, -(-(end_ms - start_ms) // buckets))
        fitting = [level for level in ROLLUP_LEVELS_MS if level <= width]
        if not fitting:
            return cls(start_ms, end_ms, buckets)
        level = fitting[-1]
        start = start_ms // level * level
        end = -(-end_ms // level) * level
        return cls(start, end, buckets, level)

    @property
    def width_ms(self) -> int:
        """Bucket width in milliseconds, at least 1 (a whole number of levels)."""
        span = self.end_ms - self.start_ms
        if self.level_ms:
            return -(-span // (self.buckets * self.level_ms)) * self.level_ms
        return max(1, -(-span // self.buckets))

    def index(self, at_ms: int) -> int:
        """The bucket an instant falls into."""
        return (at_ms - self.start_ms) // self.width_ms
