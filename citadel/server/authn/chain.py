"""Try authenticators in order; the first success wins."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from citadel.authz.errors import AuthenticationError
from citadel.errors import CitadelError
from citadel.server.authn.base import Authenticator, Caller
from citadel.server.call_context import CallContext
from citadel.server.errors import NoCredentialError

__all__ = ["AuthenticatorChain"]

_log = logging.getLogger(__name__)


class AuthenticatorChain:
    """Runs every configured authenticator until one proves the caller.

    A refusal by one authenticator does not stop the others (a JWT refused by the
    TokenReview may still be a valid OIDC token). When none succeeds, the chain raises, in
    this order of preference: an infrastructure error (the caller may retry), the first
    refusal, or :class:`NoCredentialError`.
    """

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        if not authenticators:
            raise ValueError("at least one authenticator is required")
        self._authenticators = tuple(authenticators)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self._authenticators)

    def authenticate(self, call: CallContext) -> Caller:
        refusal: AuthenticationError | None = None
        outage: CitadelError | None = None
        for authenticator in self._authenticators:
            try:
                caller = authenticator.authenticate(call)
            except AuthenticationError as exc:
                _log.info(
                    "authenticator %s refused a credential from %s: %s",
                    authenticator.name,
                    call.peer,
                    exc.message,
                )
                refusal = refusal or exc
                continue
            except CitadelError as exc:
                _log.warning(
                    "authenticator %s could not check a credential (%s): %s",
                    authenticator.name,
                    exc.kind,
                    exc.message,
                )
                outage = outage or exc
                continue
            if caller is not None:
                return caller
        if outage is not None:
            raise outage
        if refusal is not None:
            raise refusal
        raise NoCredentialError("the call carries no credential")
