"""The authenticator interface and the proven caller it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from citadel.identity.spiffe_id import SpiffeId
from citadel.server.call_context import CallContext

__all__ = ["Authenticator", "Caller", "CallerKind"]

CallerKind = Literal["mtls", "k8s", "oidc", "join_token"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Caller:
    """An authenticated caller.

    Attributes:
        identity: the SPIFFE ID the credential proves.
        kind: which authenticator proved it.
        detail: a log-safe note about the credential (a serial, a username, a token-hash
            prefix), never the credential itself.
    """

    identity: SpiffeId
    kind: CallerKind
    detail: str = ""

    def describe(self) -> str:
        return f"{self.kind}:{self.identity}" + (f" ({self.detail})" if self.detail else "")


class Authenticator(Protocol):
    """Proves who is calling from one credential type.

    ``authenticate`` returns None when the call carries no credential of this type, a
    :class:`Caller` when the credential is valid, and raises
    :class:`~citadel.authz.errors.AuthenticationError` when a credential of this type is
    present but not acceptable. Infrastructure failures (an unreachable API server, a
    store that is down) raise their own typed errors.
    """

    @property
    def name(self) -> str: ...

    def authenticate(self, call: CallContext) -> Caller | None: ...
