"""Choose a storage backend by URL."""

from __future__ import annotations

from typing import Any

from ._constraints import unicode_problem
from ._suggest import did_you_mean
from .errors import FieldError, ValidationError
from .repositories._protocols import Storage

__all__ = ["ACCEPTED_URLS", "connect"]

ACCEPTED_URLS = (
    "memory://",
    "sqlite://  (a private in-memory SQLite database)",
    "sqlite:///relative/path.db",
    "sqlite:////absolute/path.db",
    "mongodb://host:port/dbname  (needs loadmanager[mongo])",
)


def _refuse(url: object, why: str) -> ValidationError:
    forms = "; ".join(ACCEPTED_URLS)
    return ValidationError.single("url", f"{why} (got {url!r}); accepted forms: {forms}")


def _mongo_part(url: str) -> str:
    """Which part of a MongoDB URL the driver refused, as well as it can be told."""
    from urllib.parse import urlsplit  # on first use: 4 ms of import loadmanager

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "url.port"
    if parts.netloc.count("@") > 1 or any(c in (parts.password or "") for c in "@:/"):
        return "url.credentials"
    return "url.database" if parts.path.strip("/") else "url"


def _driver_refused(url: str, part: str, exc: Exception) -> ValidationError:
    return ValidationError([FieldError(part, f"{exc} (in {url!r})")])


def connect(url: str, **options: Any) -> Storage:
    """Open the storage backend named by ``url``.

    Args:
        url: ``memory://``, ``sqlite://`` (in memory), ``sqlite:///file.db``
            (relative to the working directory), ``sqlite:////abs/file.db``, or
            ``mongodb://host:port/dbname``.
        **options: Passed to the backend's constructor.

    Returns:
        A :class:`~loadmanager.repositories.Storage`; close it with ``close()`` or
        use it as a context manager.

    Raises:
        ValidationError: the URL is not one of the accepted forms (also a ValueError).
        RepositoryUnavailableError: the backend cannot be opened.
    """
    if not isinstance(url, str):
        raise _refuse(url, "the storage URL must be a string")
    problem = unicode_problem(url)
    if problem is not None or "\x00" in url:
        raise _refuse(url, f"the storage URL {problem or 'must not contain a NUL character'}")
    scheme, sep, rest = url.partition("://")
    if not sep and url.startswith("sqlite:"):
        path = url[len("sqlite:") :].lstrip("/")
        raise _refuse(
            url, f"a SQLite URL is sqlite:///path (three slashes): did you mean 'sqlite:///{path}'?"
        )
    if not sep:
        raise _refuse(url, "the storage URL has no scheme")
    if scheme == "memory":
        if rest:
            raise _refuse(url, "memory:// takes no path")
        from .repositories.memory import MemoryStorage

        return MemoryStorage(**options)
    if scheme == "sqlite":
        from .repositories.sqlite import SqliteStorage

        if rest == "" or rest == "/:memory:":
            return SqliteStorage(":memory:", **options)
        if not rest.startswith("/") or rest == "/":
            raise _refuse(url, "a SQLite URL is sqlite:///path (three slashes)")
        return SqliteStorage(rest[1:], **options)
    if scheme in ("mongodb", "mongodb+srv"):
        from .repositories.mongo import MongoStorage

        try:
            return MongoStorage(url, **options)
        except ValueError as exc:  # pymongo's own URL checks
            raise _driver_refused(url, _mongo_part(url), exc) from exc
    known = ("memory", "sqlite", "mongodb", "mongodb+srv")
    raise _refuse(url, f"unknown storage scheme {scheme!r}{did_you_mean(scheme, known)}")
