"""Which identities a caller may obtain: its own, or — for trusted node agents — others
inside the SPIFFE ID prefixes granted to that agent. Everything else is denied."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.spiffe_id import SpiffeId
from citadel.server.authn.base import Caller
from citadel.server.errors import ImpersonationDeniedError, InvalidRequestError

__all__ = ["ImpersonationPolicy", "is_within", "parse_prefix"]


def parse_prefix(text: str) -> SpiffeId:
    """``spiffe://td/ns/foo`` (a trailing ``/`` is allowed) as a prefix ID.

    Raises:
        InvalidSpiffeIdError: not a SPIFFE ID.
    """
    return SpiffeId.parse(text.rstrip("/"))


def is_within(identity: SpiffeId, prefix: SpiffeId) -> bool:
    """True when ``identity`` equals ``prefix`` or lies below it, segment by segment
    (``/ns/foo`` covers ``/ns/foo/sa/x`` but not ``/ns/foobar``)."""
    if identity.trust_domain != prefix.trust_domain:
        return False
    wanted = prefix.segments()
    return identity.segments()[: len(wanted)] == wanted


class ImpersonationPolicy:
    """Grants node agents (by SPIFFE ID) the right to request identities under prefixes."""

    def __init__(self, grants: Mapping[SpiffeId, Iterable[SpiffeId]] | None = None) -> None:
        self._grants = {agent: tuple(prefixes) for agent, prefixes in (grants or {}).items()}

    @property
    def trusted_agents(self) -> frozenset[SpiffeId]:
        return frozenset(self._grants)

    def target_identity(self, caller: Caller, requested: str | None) -> SpiffeId:
        """The identity to certify for ``caller`` asking for ``requested`` (None = itself).

        Raises:
            ImpersonationDeniedError: the caller is not a trusted agent, or the identity is
                outside the prefixes granted to it.
            InvalidRequestError: the requested identity is not a SPIFFE ID (only reported to
                trusted agents).
        """
        if requested is None or requested == str(caller.identity):
            return caller.identity
        prefixes = self._grants.get(caller.identity)
        if prefixes is None:
            raise ImpersonationDeniedError(
                f"{caller.identity} is not a trusted node agent and may not impersonate"
            )
        try:
            target = SpiffeId.parse(requested)
        except InvalidSpiffeIdError as exc:
            raise InvalidRequestError(
                f"ImpersonatedIdentity is not a SPIFFE ID: {exc.message}"
            ) from exc
        if target.is_trust_domain_id or not any(is_within(target, p) for p in prefixes):
            raise ImpersonationDeniedError(f"node agent {caller.identity} may not obtain {target}")
        return target
