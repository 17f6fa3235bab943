"""Who is calling: the host's authentication hook, and ready-made ones.

The host supplies ``authenticate(request) -> Principal | None``; ``None`` (or an
:class:`AuthenticationError`) answers 401. The actor written into audits and the
tenants the caller may see come from the principal, never from a request body.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

import attrs

from .._constraints import checked_tenants
from ..errors import LoadManagerError

if TYPE_CHECKING:
    from ._api import ApiRequest

__all__ = [
    "AuthenticationError",
    "Authenticate",
    "Principal",
    "allow_anonymous",
    "bearer_tokens",
]


def _tenants(value: Collection[str] | None) -> frozenset[str] | None:
    return checked_tenants(value)


@attrs.frozen
class Principal:
    """An authenticated caller.

    Attributes:
        actor: The identity written into audit fields.
        tenants: The tenants it may see and change; ``None`` means all. A
            collection of ids (a set, a list); one bare string is refused with
            a ValidationError, since it would be read as its characters.
    """

    actor: str
    tenants: frozenset[str] | None = attrs.field(default=None, converter=_tenants)


class AuthenticationError(LoadManagerError):
    """The request carries no valid credentials (answered 401)."""


Authenticate = Callable[["ApiRequest"], Principal | None]
"""The host's hook: the principal behind a request, or None."""


def bearer_tokens(tokens: Mapping[str, Principal]) -> Authenticate:
    """An ``authenticate`` hook for static bearer tokens (scripts, tests, small hosts).

    Tokens are compared in constant time, and every token is compared on every
    request, so timing reveals neither a token nor how many there are.
    """
    known = [(token.encode(), principal) for token, principal in tokens.items()]

    def authenticate(request: ApiRequest) -> Principal | None:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        offered = credentials.strip().encode()
        found = None
        for token, principal in known:
            if hmac.compare_digest(token, offered):
                found = principal
        return found

    return authenticate


def allow_anonymous(request: ApiRequest) -> Principal:
    """A hook that lets everyone in as ``anonymous`` with every tenant.

    Only for local experiments: ``create_app`` refuses to start without a hook,
    so this must be passed on purpose.
    """
    return Principal("anonymous", None)
