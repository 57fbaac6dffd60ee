"""Caller authentication for the CSR API: one small class per credential type.

Every authenticator implements :class:`~citadel.server.authn.base.Authenticator`; the
:class:`~citadel.server.authn.chain.AuthenticatorChain` tries them in order.
"""

from __future__ import annotations

from citadel.server.authn.base import Authenticator, Caller, CallerKind
from citadel.server.authn.chain import AuthenticatorChain

__all__ = ["Authenticator", "AuthenticatorChain", "Caller", "CallerKind"]
