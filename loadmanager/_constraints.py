"""Field rules shared by the models' validators and the input converter.

Each rule is an attrs validator. It raises :class:`ValidationError` whose paths
start with the attribute's wire name, so the converter can place them under the
right parent when it structures nested input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from itertools import chain
from typing import Any, TypeGuard

import attrs

from ._naming import camel
from .errors import FieldError, ValidationError

_WHOLE = frozenset({int})
_ROWS = frozenset({list, tuple})


def all_whole(*columns: Iterable[Any]) -> bool:
    """Whether every value of ``columns`` is an ``int`` (not a bool: a count is
    no flag), tested a column at a time in C, not value by value in Python:
    histograms hold hundreds of buckets."""
    return all(set(map(type, column)) <= _WHOLE for column in columns)


def whole_rows(value: Any, width: int) -> tuple[tuple[int, ...], ...] | None:
    """``value`` as tuples when it is rows (lists or tuples) of ``width`` whole
    numbers, tested as :func:`all_whole` does; ``None`` when it is anything else."""
    if (
        type(value) in _ROWS
        and set(map(type, value)) <= _ROWS
        and set(map(len, value)) <= {width}
        and all_whole(chain.from_iterable(value))
    ):
        return tuple(map(tuple, value))
    return None


Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def is_whole(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool`` (``True`` is an int to Python, not to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """A number that is neither infinite nor NaN."""
    return is_number(value) and math.isfinite(value)


def as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    """The attrs converter of every collection field: models hold tuples.

    Typed loosely on purpose: the attrs mypy plugin cannot bind a generic
    converter, and the field's own annotation keeps the element type.
    """
    return tuple(value)


MAX_NAME = 200
MAX_DESCRIPTION = 10_000
MAX_TAGS = 50
MAX_TAG = 64
MAX_USERS = 1_000_000
MAX_URL = 2048
MAX_LOCUSTFILE = 512
MAX_ACTOR = 256
MAX_USER_CLASSES = 50
MAX_WORKERS = 1000

_IDENT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_OBJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fail(attribute: attrs.Attribute[Any], message: str, suffix: str = "") -> ValidationError:
    return ValidationError([FieldError(camel(attribute.name) + suffix, message)])


def rule(check: Callable[[Any], str | None]) -> Validator:
    """Turn ``check(value) -> problem or None`` into an attrs validator."""

    def validate(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        problem = check(value)
        if problem is not None:
            raise _fail(attribute, problem)

    return validate


def optional(validator: Validator) -> Validator:
    """Apply ``validator`` unless the value is ``None``."""

    def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            validator(inst, attribute, value)

    return validate


def each(check: Callable[[Any], str | None], *, max_items: int) -> Validator:
    """Validate a tuple item by item, reporting every bad item by index."""

    def validate(_inst: Any, attribute: attrs.Attribute[Any], value: Sequence[Any]) -> None:
        problems: list[FieldError] = []
        if len(value) > max_items:
            problems.append(FieldError(camel(attribute.name), f"at most {max_items} items"))
        for index, item in enumerate(value):
            problem = check(item)
            if problem is not None:
                problems.append(FieldError(f"{camel(attribute.name)}[{index}]", problem))
        if problems:
            raise ValidationError(problems)

    return validate


def text(*, max_len: int, required: bool = True) -> Callable[[Any], str | None]:
    """A string of bounded length, non-blank when required, with no control characters."""

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        if required and not value.strip():
            return "must not be empty"
        if len(value) > max_len:
            return f"must be at most {max_len} characters"
        return unicode_problem(value)

    return check


def unicode_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as UTF-8 (a lone surrogate), or ``None``.

    JSON may carry ``"\\ud800"``, and Python keeps it; SQLite and BSON cannot
    encode it, so every backend refuses it the same way, before any write.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    return None


def single_line(*, max_len: int) -> Callable[[Any], str | None]:
    """Like :func:`text`, and no control characters either (names, tags, actors)."""
    base = text(max_len=max_len)

    def check(value: Any) -> str | None:
        problem = base(value)
        if problem is None and _CONTROL.search(value):
            return "must not contain control characters"
        return problem

    return check


def identifier(value: Any) -> str | None:
    """Tenant, environment and cluster ids: ``[A-Za-z0-9._-]{1,64}``."""
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        return "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"
    return None


def object_id(value: Any) -> str | None:
    """Ids the library generates, or that a caller passes to look one up."""
    if not isinstance(value, str) or not _OBJECT_ID.fullmatch(value):
        return "must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'"
    return None


def user_class(value: Any) -> str | None:
    """A Locust user class name, which must be a Python identifier."""
    if not isinstance(value, str) or not _CLASS_NAME.fullmatch(value):
        return "must be a Python class name"
    return None


def http_url(value: Any) -> str | None:
    """An absolute http(s) URL with a host."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    if _CONTROL.search(value) or " " in value:
        return "must not contain spaces or control characters"
    if unicode_problem(value):
        return unicode_problem(value)
    from urllib.parse import urlsplit  # on first use: 3 ms of import loadmanager

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port, which is the check
    except ValueError:
        return "must be a valid http(s) URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must name a host"
    return None


def relative_path(value: Any) -> str | None:
    """A locustfile: a relative path inside the cluster's working directory."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty relative path"
    if len(value) > MAX_LOCUSTFILE:
        return f"must be at most {MAX_LOCUSTFILE} characters"
    if _CONTROL.search(value) or "\\" in value:
        return "must not contain control characters or backslashes"
    if unicode_problem(value):
        return unicode_problem(value)
    if value.startswith("/") or re.match(r"[A-Za-z]:", value):
        return "must be a relative path"
    if ".." in value.split("/"):
        return "must not contain '..'"
    return None


def sha256_hex(value: Any) -> str | None:
    """A SHA-256 as 64 lowercase hex digits."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        return "must be a SHA-256 in 64 lowercase hex digits"
    return None


def worker_count(value: Any) -> str | None:
    """A number of Locust workers: a whole number from 1 to 1,000."""
    if not is_whole(value):
        return "must be a whole number"
    if not 1 <= value <= MAX_WORKERS:
        return f"must be from 1 to {MAX_WORKERS}"
    return None


def user_count(value: Any) -> str | None:
    """A number of Locust users: a whole number from 1 to 1,000,000."""
    if not is_whole(value):
        return "must be a whole number"
    if value < 1:
        return "must be >= 1"
    if value > MAX_USERS:
        return f"must be <= {MAX_USERS}"
    return None


def positive_rate(value: Any) -> str | None:
    """A spawn rate: a finite number above zero."""
    problem = finite(value)
    if problem is not None:
        return problem
    if value <= 0:
        return "must be > 0"
    if value > MAX_USERS:
        return f"must be <= {MAX_USERS}"
    return None


def finite(value: Any) -> str | None:
    """Any finite number."""
    if not is_number(value):
        return "must be a number"
    if not math.isfinite(value):
        return "must be finite"
    return None


def non_negative(value: Any) -> str | None:
    """A finite number that is zero or more (counts, rates, times)."""
    problem = finite(value)
    if problem is None and value < 0:
        return "must be >= 0"
    return problem


def positive_int(value: Any) -> str | None:
    """A whole number from 1 up (versions)."""
    if not is_whole(value) or value < 1:
        return "must be a whole number >= 1"
    return None


def non_negative_int(value: Any) -> str | None:
    """A whole number from 0 up (counts)."""
    if not is_whole(value) or value < 0:
        return "must be a whole number >= 0"
    return None


def aware(value: Any) -> str | None:
    """A datetime that knows its time zone."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        return "must be a time with a time zone"
    return None


def duration(value: Any) -> str | None:
    """A Locust run time such as ``30s``, ``5m`` or ``1h20m``, from 1 s to 31 days."""
    if not isinstance(value, str):
        return "must be a string"
    seconds = parse_duration(value)
    if seconds is None:
        return "must be a duration such as '30s', '5m' or '1h20m'"
    if seconds < 1:
        return "must be at least 1s"
    if seconds > 31 * 86_400:
        return "must be at most 31 days"
    return None


def seconds_as_duration(value: Any) -> Any:
    """A whole number of seconds as Locust's duration text (``90`` → ``"90s"``).

    Locust's ``-t 90`` means 90 seconds; anything else passes through for the
    validator to judge.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return f"{value}s"
    return value


def parse_duration(value: str) -> int | None:
    """Seconds in a Locust duration string, or ``None`` if it is not one."""
    match = _DURATION.fullmatch(value.strip()) if value.strip() else None
    if match is None:
        return None
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return int(timedelta(hours=hours, minutes=minutes, seconds=seconds).total_seconds())


def one_of(*allowed: str) -> Callable[[Any], str | None]:
    """A string from a fixed set."""

    def check(value: Any) -> str | None:
        if value not in allowed:
            return "must be one of " + ", ".join(repr(a) for a in allowed)
        return None

    return check


NAME = rule(single_line(max_len=MAX_NAME))
DESCRIPTION = rule(text(max_len=MAX_DESCRIPTION, required=False))
TAGS = each(single_line(max_len=MAX_TAG), max_items=MAX_TAGS)
IDENT = rule(identifier)
OBJECT_ID = rule(object_id)
URL = rule(http_url)
LOCUSTFILE = rule(relative_path)
USERS = rule(user_count)
WORKERS = rule(worker_count)
SHA256 = rule(sha256_hex)
SPAWN_RATE = rule(positive_rate)
RUN_TIME = rule(duration)
_ACTOR_CHECK = single_line(max_len=MAX_ACTOR)
ACTOR = rule(_ACTOR_CHECK)
VERSION = rule(positive_int)


def _count(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is int and value >= 0:  # type, not isinstance: True is no count
        return
    raise _fail(attribute, non_negative_int(value) or "must be a whole number >= 0")


def _measure(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    # The common case in one test: a snapshot holds dozens of these, and the
    # Monitor builds hundreds of snapshots a second.
    if (type(value) is float or type(value) is int) and 0 <= value < math.inf:
        return
    raise _fail(attribute, non_negative(value) or "must be >= 0")


def _optional_measure(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _measure(inst, attribute, value)


COUNT: Validator = _count
"""A whole number from 0 up (the validator of ``non_negative_int``, inlined)."""
MEASURE: Validator = _measure
"""A finite number from 0 up (the validator of ``non_negative``, inlined)."""
OPTIONAL_MEASURE: Validator = _optional_measure
FINITE = rule(finite)
TIME = rule(aware)
USER_CLASSES = each(user_class, max_items=MAX_USER_CLASSES)
REASON = rule(text(max_len=MAX_DESCRIPTION))


def checked_actor(value: object) -> str:
    """The caller's identity as an ``actor`` argument, by the rule audits store."""
    problem = _ACTOR_CHECK(value)
    if problem is not None:
        raise ValidationError.single("actor", problem)
    assert isinstance(value, str)
    return value


def check_claimed_creator(claimed: str | None, actor: str) -> None:
    """Refuse a body whose ``createdBy`` is not the caller.

    The seed's example bodies carry ``createdBy``; the identity that counts is
    the caller's ``actor``, so a body may repeat it but never replace it.
    """
    if claimed is not None and claimed != actor:
        raise ValidationError.single(
            "createdBy", "must be left out or equal the caller's identity; it is never trusted"
        )


def checked_tenants(value: object) -> frozenset[str] | None:
    """The tenants a caller may act for, as a set; ``None`` means every tenant.

    A bare string is refused: it is a collection of characters to Python, and
    taking ``"tenant-a"`` as ``{"t", "e", "n", "a", "-"}`` would open other
    tenants' data to the caller.
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise ValidationError.single(
            "tenants", "must be a collection of tenant ids (such as a set), not one string"
        )
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
        isinstance(t, str) for t in value
    ):
        raise ValidationError.single("tenants", "must be a collection of tenant id strings")
    return frozenset(value)
