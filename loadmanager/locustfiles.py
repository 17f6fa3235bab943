"""Locustfiles: where a load test's ``locustfile`` name finds the code that runs.

A name resolves, in order, to the content stored for the test's tenant
(:meth:`Orchestrator.put_locustfile`, versioned), then to a file in each
:class:`LocustfileDirectory` the Orchestrator was given. What resolved is pinned
onto the run: its SHA-256 and, for stored content, its version, so what ran is
known exactly even after the file changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import attrs

from . import _constraints as c
from .errors import ValidationError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "MAX_LOCUSTFILE_BYTES",
    "Locustfile",
    "LocustfileDirectory",
    "LocustfileSource",
    "ResolvedLocustfile",
    "sha256_of",
]

MAX_LOCUSTFILE_BYTES = 1_000_000
"""The largest locustfile taken (1 MB of UTF-8): code, not data."""


def sha256_of(content: str) -> str:
    """The hex SHA-256 of a locustfile's UTF-8 bytes, as recorded on runs."""
    import hashlib  # on first use: 4 ms of import loadmanager (OpenSSL's bindings)

    # surrogatepass: the hash is taken before validation refuses such content.
    return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()


def _code(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be non-empty text"
    if len(value.encode("utf-8", errors="surrogatepass")) > MAX_LOCUSTFILE_BYTES:
        return f"must be at most {MAX_LOCUSTFILE_BYTES:,} bytes"
    if "\x00" in value:
        return "must not contain NUL characters"
    return c.unicode_problem(value)


CODE = c.rule(_code)


@attrs.frozen
class Locustfile:
    """One stored version of a locustfile, owned by a tenant.

    Each put of a name makes a new version (1, 2, ...); runs record the
    version they ran, and older versions stay readable until the name is deleted.
    """

    name: str = attrs.field(validator=c.LOCUSTFILE)
    tenant_id: str = attrs.field(validator=c.IDENT)
    content: str = attrs.field(validator=CODE, repr=False)
    version: int = attrs.field(default=1, validator=c.VERSION)
    created_at: datetime | None = attrs.field(default=None, validator=c.optional(c.TIME))
    created_by: str | None = attrs.field(default=None, validator=c.optional(c.ACTOR))
    sha256: str = attrs.field(init=False)

    @sha256.default
    def _hash(self) -> str:
        # Defaults are computed before validators run: content that is not
        # text gets no hash here, and the validator then refuses it cleanly.
        return sha256_of(self.content) if isinstance(self.content, str) else ""

    @property
    def size(self) -> int:
        """The content's length in UTF-8 bytes."""
        return len(self.content.encode("utf-8"))


@attrs.frozen
class ResolvedLocustfile:
    """What a locustfile name resolved to, at the moment it resolved.

    Attributes:
        name: The name the load test gives.
        content: The code.
        sha256: Its hash, recorded on the run.
        version: The stored version, or ``None`` for a file from a directory.
        origin: Where it came from, for messages (``"stored"``, or the file's path).
    """

    name: str
    content: str = attrs.field(repr=False)
    version: int | None
    origin: str
    sha256: str = attrs.field(init=False)

    @sha256.default
    def _hash(self) -> str:
        return sha256_of(self.content)

    @classmethod
    def stored(cls, locustfile: Locustfile) -> ResolvedLocustfile:
        """The resolution of a stored version."""
        return cls(locustfile.name, locustfile.content, locustfile.version, "stored")


class LocustfileSource(Protocol):
    """Somewhere locustfile names resolve to content (a directory, say)."""

    def resolve(self, name: str, tenant_id: str) -> ResolvedLocustfile | None:
        """The content of ``name`` for ``tenant_id``'s tests, or ``None`` if not here."""
        ...


class LocustfileDirectory:
    """Locustfiles read from a directory: a test's ``locustfile`` is a path inside it.

    Every tenant sees the same files; a name can never reach outside the
    directory (no ``..``, no absolute path, no symbolic link pointing out).

    Args:
        path: The directory.
    """

    def __init__(self, path: str | Path) -> None:
        from pathlib import (
            Path,
        )  # on first use: it and urllib.parse were 4 ms of import loadmanager

        self.path = Path(path).resolve()
        if not self.path.is_dir():
            raise ValueError(f"{self.path} is not a directory")

    def resolve(self, name: str, tenant_id: str) -> ResolvedLocustfile | None:
        """The file's content, or ``None`` if the directory has no such file.

        Raises:
            ValidationError: at ``locustfile``: the file is too big or not UTF-8.
        """
        if c.relative_path(name) is not None:
            return None
        candidate = (self.path / name).resolve()
        if not candidate.is_relative_to(self.path) or not candidate.is_file():
            return None
        if candidate.stat().st_size > MAX_LOCUSTFILE_BYTES:
            raise ValidationError.single(
                "locustfile", f"{name!r} is larger than {MAX_LOCUSTFILE_BYTES:,} bytes"
            )
        try:
            content = candidate.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValidationError.single("locustfile", f"{name!r} is not UTF-8 text") from None
        return ResolvedLocustfile(name, content, None, str(candidate))

    def __repr__(self) -> str:
        return f"LocustfileDirectory({str(self.path)!r})"
