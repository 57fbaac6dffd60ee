"""One-time join tokens: consumed (atomically, in the store) on first use."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from citadel.identity.clock import Clock
from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.server.authn.base import Caller
from citadel.server.authn.bearer import JOIN_TOKEN_PREFIX, bearer_token
from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError
from citadel.server.join_tokens import (
    JOIN_TOKEN_METADATA_KEY,
    hash_join_token,
    is_well_formed_join_token,
)
from citadel.store.errors import TokenRejectedError

__all__ = ["JoinTokenAuthenticator", "JoinTokenStore"]


class JoinTokenStore(Protocol):
    def consume_join_token(self, token_hash: str, now: datetime) -> str: ...


class JoinTokenAuthenticator:
    name = "join_token"

    def __init__(self, *, store: JoinTokenStore, trust_domain: TrustDomain, clock: Clock) -> None:
        self._store = store
        self._trust_domain = trust_domain
        self._clock = clock

    def _reject(self, message: str) -> CredentialRejectedError:
        return CredentialRejectedError(message, authenticator=self.name)

    def _presented(self, call: CallContext) -> str | None:
        bearer = bearer_token(call, authenticator=self.name)
        from_bearer = (
            bearer[len(JOIN_TOKEN_PREFIX) :]
            if bearer is not None and bearer.startswith(JOIN_TOKEN_PREFIX)
            else None
        )
        dedicated = call.values(JOIN_TOKEN_METADATA_KEY)
        if len(dedicated) > 1 or (dedicated and from_bearer is not None):
            raise self._reject("more than one join token in the call")
        return dedicated[0].strip() if dedicated else from_bearer

    def authenticate(self, call: CallContext) -> Caller | None:
        token = self._presented(call)
        if token is None:
            return None
        if not is_well_formed_join_token(token):
            raise self._reject("join token is malformed")
        token_hash = hash_join_token(token)
        try:
            spiffe_id = self._store.consume_join_token(token_hash, self._clock.now())
        except TokenRejectedError as exc:
            raise self._reject(
                f"join token {token_hash[:12]}… is unknown, used or expired"
            ) from exc
        try:
            identity = SpiffeId.parse(spiffe_id)
        except InvalidSpiffeIdError as exc:
            raise self._reject("join token names an invalid SPIFFE ID") from exc
        if identity.trust_domain != self._trust_domain or identity.is_trust_domain_id:
            raise self._reject(f"join token names {identity}, outside our trust domain")
        return Caller(identity=identity, kind="join_token", detail=f"token={token_hash[:12]}")
