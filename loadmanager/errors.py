"""The whole error tree of loadmanager.

Every error the library raises on purpose derives from :class:`LoadManagerError`,
so a host can catch them all in one place. Where the meaning matches a builtin,
the builtin is mixed in (``except LookupError`` also catches a missing object)::

    LoadManagerError
    ├── ValidationError (ValueError)          bad input; .errors lists every bad field
    ├── NotFoundError (LookupError)           no such object (or not yours to see)
    ├── PermissionDeniedError (PermissionError) a tenant the caller may not write to
    ├── DuplicateError                        an object with that id already exists
    ├── ConflictError                         the write would break an invariant
    │   ├── StaleVersionError                 compare-and-set lost: someone wrote first
    │   ├── ActiveRunError                    the load test still has an active run
    │   └── ClusterBusyError                  the cluster already runs another test
    ├── InvalidTransitionError                a run status change the table refuses
    ├── RepositoryUnavailableError            the storage backend cannot be reached
    ├── WaitTimeoutError (TimeoutError)       wait() gave up before the run ended
    ├── ProvisioningError                     a provider could not make a run's cluster
    └── LocustError                           talking to a Locust master went wrong
        ├── LocustConnectionError             no answer at the transport level
        │   └── LocustTimeoutError            ... because it took too long
        ├── LocustHTTPError                   an HTTP status other than 2xx
        ├── LocustRejectedError               HTTP 200 with {"success": false}
        └── LocustResponseError               a body that is not what Locust sends

Misusing the API itself (a closed client or storage) raises :class:`RuntimeError`,
outside this tree, because it is a bug in the calling code, not a condition to handle.

This module imports nothing else from loadmanager so that every layer can use it.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = [
    "ActiveRunError",
    "ClusterBusyError",
    "ConflictError",
    "DuplicateError",
    "FieldError",
    "InvalidTransitionError",
    "LoadManagerError",
    "LocustConnectionError",
    "LocustError",
    "LocustHTTPError",
    "LocustRejectedError",
    "LocustResponseError",
    "LocustTimeoutError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProvisioningError",
    "RepositoryUnavailableError",
    "StaleVersionError",
    "ValidationError",
    "WaitTimeoutError",
]


class LoadManagerError(Exception):
    """Root of every error loadmanager raises on purpose."""


@attrs.frozen
class FieldError:
    """One problem with one field of some input.

    Attributes:
        path: Where the bad value sits, in the wire (camelCase) names, such as
            ``defaultUsers`` or ``tags[2]``; empty for the document as a whole.
        message: What is wrong, phrased to follow the path (``must be >= 1``).
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(LoadManagerError, ValueError):
    """Input that does not describe a valid object.

    Attributes:
        errors: Every problem found, not only the first one, in document order.
    """

    def __init__(self, errors: Iterable[FieldError], *, subject: str = "input") -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.subject = subject
        listed = "; ".join(str(e) for e in self.errors) or "invalid"
        super().__init__(f"invalid {subject}: {listed}")

    @classmethod
    def single(cls, path: str, message: str, *, subject: str = "input") -> ValidationError:
        """Build the error for a single bad field."""
        return cls([FieldError(path, message)], subject=subject)

    @property
    def paths(self) -> tuple[str, ...]:
        """The paths of the bad fields, for quick checks in tests and handlers."""
        return tuple(e.path for e in self.errors)


class NotFoundError(LoadManagerError, LookupError):
    """No object of that kind with that id, or none the caller may see.

    Tenant scoping answers with this error too, so that the existence of another
    tenant's object is never revealed.
    """

    def __init__(self, kind: str, object_id: str) -> None:
        self.kind = kind
        self.object_id = object_id
        super().__init__(f"{kind} {object_id!r} not found")


class PermissionDeniedError(LoadManagerError, PermissionError):
    """The caller may act only for some tenants, and this is not one of them.

    Raised when a body names such a tenant; reading another tenant's object
    raises NotFoundError instead, so its existence is not revealed.
    """

    def __init__(self, tenant_id: str, message: str | None = None) -> None:
        self.tenant_id = tenant_id
        super().__init__(message or f"not allowed to act for tenant {tenant_id!r}")


class DuplicateError(LoadManagerError):
    """An object with that id already exists."""

    def __init__(self, kind: str, object_id: str) -> None:
        self.kind = kind
        self.object_id = object_id
        super().__init__(f"{kind} {object_id!r} already exists")


class ConflictError(LoadManagerError):
    """The write conflicts with the current state of the stored data."""


class StaleVersionError(ConflictError):
    """A compare-and-set update lost: the stored version is not the one expected.

    Attributes:
        kind: The kind of object (``"LoadTest"``, ``"LoadTestRun"``).
        object_id: Its id.
        expected_version: The version the writer based its change on.
        actual_version: The version stored now, when known.
    """

    def __init__(
        self,
        kind: str,
        object_id: str,
        expected_version: int,
        actual_version: int | None = None,
    ) -> None:
        self.kind = kind
        self.object_id = object_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        found = "" if actual_version is None else f", found {actual_version}"
        super().__init__(
            f"{kind} {object_id!r} was changed by someone else "
            f"(expected version {expected_version}{found})"
        )


class ActiveRunError(ConflictError):
    """The load test cannot be deleted while one of its runs is active."""

    def __init__(self, load_test_id: str, run_id: str | None) -> None:
        self.load_test_id = load_test_id
        self.run_id = run_id
        super().__init__(
            f"load test {load_test_id!r} has an active run ({run_id or 'unknown'}); "
            "stop it before deleting the test"
        )


class ClusterBusyError(ConflictError):
    """A Locust master runs one test at a time, and this one is taken.

    Attributes:
        cluster_id: The ``locustClusterId`` that was asked for.
        active_run_id: The run holding the cluster, when it could be read.
    """

    def __init__(self, cluster_id: str, active_run_id: str | None) -> None:
        self.cluster_id = cluster_id
        self.active_run_id = active_run_id
        holder = f" by run {active_run_id!r}" if active_run_id else ""
        what_to_do = (
            f"wait for it (orch.wait({active_run_id!r})), "
            f"stop it (orch.stop_run({active_run_id!r})), "
            if active_run_id
            else "wait for its active run to end, stop it, "
        )
        super().__init__(
            f"cluster {cluster_id!r} is busy{holder}; {what_to_do}"
            "or give the test a cluster of its own (a provider makes one per run)"
        )


class InvalidTransitionError(LoadManagerError):
    """A run status change that the transition table does not allow."""

    def __init__(self, run_id: str, from_status: str, to_status: str) -> None:
        self.run_id = run_id
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(f"run {run_id!r} cannot go from {from_status} to {to_status}")


class RepositoryUnavailableError(LoadManagerError):
    """The storage backend cannot be reached or refused to work."""


class WaitTimeoutError(LoadManagerError, TimeoutError):
    """``wait()`` gave up before the run ended; the run itself goes on.

    Attributes:
        run_id: The run waited for.
        status: Its status when the wait ended.
    """

    def __init__(self, run_id: str, status: str, timeout: float) -> None:
        self.run_id = run_id
        self.status = status
        self.timeout = timeout
        super().__init__(
            f"run {run_id!r} still {status} after wait(timeout={timeout:g}); the run goes on: "
            "wait again with a longer timeout, or stop it"
        )


class ProvisioningError(LoadManagerError):
    """A provider could not make a run's cluster; the run is recorded ``failed``.

    Attributes:
        log_tail: The last lines the cluster wrote, when there are any.
        run_id: The run that failed (set by the lifecycle).
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        self.run_id: str | None = None
        super().__init__(f"{message}\n--- log (tail) ---\n{log_tail}" if log_tail else message)


class LocustError(LoadManagerError):
    """Talking to a Locust master went wrong.

    Attributes:
        url: The URL that was asked, when there was one.
        run_id: The run this call served, when an Orchestrator made it.
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        self.run_id: str | None = None
        super().__init__(message)


class LocustConnectionError(LocustError):
    """The master could not be reached (refused, reset, DNS, TLS...)."""


class LocustTimeoutError(LocustConnectionError):
    """The master did not answer in time."""


class LocustHTTPError(LocustError):
    """The master answered with a status other than 2xx.

    Attributes:
        status_code: The HTTP status.
        body: The start of the response body, for diagnosis.
    """

    def __init__(self, status_code: int, body: str, *, url: str | None = None) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(f"Locust answered HTTP {status_code} for {url}: {body[:200]}", url=url)


class LocustRejectedError(LocustError):
    """The master refused the request with ``{"success": false, "message": ...}``.

    Attributes:
        message: Locust's own explanation, verbatim.
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.message = message
        super().__init__(f"Locust refused the request: {message}", url=url)


class LocustResponseError(LocustError):
    """The master answered with a body that is not what Locust sends.

    Attributes:
        body: The raw body, so the mismatch can be diagnosed.
    """

    def __init__(self, message: str, body: str, *, url: str | None = None) -> None:
        self.body = body
        super().__init__(message, url=url)
