"""Kubernetes service-account JWTs, validated by the API server (TokenReview)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Protocol

from citadel.identity.clock import Clock
from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.k8s.token_review import TokenReviewResult
from citadel.server.authn.base import Caller
from citadel.server.authn.bearer import JOIN_TOKEN_PREFIX, bearer_token
from citadel.server.authn.expiring_cache import ExpiringLru
from citadel.server.authn.jwt_peek import peek_jwt
from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError

__all__ = [
    "DEFAULT_AUDIENCES",
    "KubernetesJwtAuthenticator",
    "TokenReviewer",
    "identity_from_service_account",
]

DEFAULT_AUDIENCES = ("istio-ca",)
_SA_PREFIX = "system:serviceaccount:"
CLUSTER_ID_HEADER = "clusterid"


class TokenReviewer(Protocol):
    def review(self, token: str, audiences: Sequence[str]) -> TokenReviewResult: ...


def identity_from_service_account(username: str, trust_domain: TrustDomain) -> SpiffeId:
    """``system:serviceaccount:<ns>:<sa>`` → ``spiffe://<td>/ns/<ns>/sa/<sa>``.

    Raises:
        ValueError: not a service account, or a namespace/name that is missing or not a
            valid SPIFFE path segment.
    """
    if not username.startswith(_SA_PREFIX):
        raise ValueError("the token's user is not a service account")
    parts = username[len(_SA_PREFIX) :].split(":")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError("the service account username lacks a namespace or a name")
    namespace, account = parts
    try:
        return trust_domain.spiffe_id(f"/ns/{namespace}/sa/{account}")
    except InvalidSpiffeIdError as exc:
        raise ValueError(f"service account name is not a valid path: {exc.message}") from exc


class KubernetesJwtAuthenticator:
    """Bearer JWT → TokenReview → service-account SPIFFE ID.

    Positive answers are cached (keyed by the token's SHA-256) until the token's ``exp``,
    at most ``max_cache_ttl``; negative answers are never cached.

    ``issuers``, when given, are the service-account token issuers of the cluster: a JWT
    whose (unverified) ``iss`` is another one is not this authenticator's credential and is
    left to the next authenticator (an OIDC token is never sent to the API server).
    """

    name = "k8s"

    def __init__(
        self,
        *,
        reviewer: TokenReviewer,
        trust_domain: TrustDomain,
        clock: Clock,
        audiences: Sequence[str] = DEFAULT_AUDIENCES,
        cluster_id: str | None = None,
        issuers: Collection[str] = (),
        max_cache_ttl: timedelta = timedelta(minutes=5),
        max_cache_entries: int = 4096,
    ) -> None:
        if not audiences:
            raise ValueError("at least one audience is required")
        self._reviewer = reviewer
        self._trust_domain = trust_domain
        self._clock = clock
        self._audiences = tuple(audiences)
        self._cluster_id = cluster_id
        self._issuers = frozenset(issuers)
        self._max_cache_ttl = max_cache_ttl
        self._cache: ExpiringLru[str, Caller] = ExpiringLru(
            max_entries=max_cache_entries, clock=clock
        )

    def _reject(self, message: str) -> CredentialRejectedError:
        return CredentialRejectedError(message, authenticator=self.name)

    def authenticate(self, call: CallContext) -> Caller | None:
        token = bearer_token(call, authenticator=self.name)
        if token is None or token.startswith(JOIN_TOKEN_PREFIX):
            return None
        try:
            unverified = peek_jwt(token)
        except ValueError as exc:
            if self._issuers:  # cannot be one of our issuers' tokens; let others judge it
                return None
            raise self._reject("bearer token is not a JWT") from exc
        if self._issuers and unverified.claims.get("iss") not in self._issuers:
            return None
        clusters = call.values(CLUSTER_ID_HEADER)
        if self._cluster_id is not None and clusters and clusters[-1] != self._cluster_id:
            raise self._reject(f"unknown cluster {clusters[-1][:64]!r}")
        key = hashlib.sha256(token.encode("utf-8")).hexdigest()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        result = self._reviewer.review(token, self._audiences)
        if not result.authenticated:
            reason = result.error[:200] if result.error else "not authenticated"
            raise self._reject(f"TokenReview refused the token: {reason}")
        if result.audiences and not set(result.audiences) & set(self._audiences):
            raise self._reject("TokenReview: the token is not valid for our audiences")
        try:
            identity = identity_from_service_account(result.username, self._trust_domain)
        except ValueError as exc:
            raise self._reject(f"TokenReview user {result.username[:128]!r}: {exc}") from exc
        caller = Caller(identity=identity, kind="k8s", detail=f"user={result.username[:128]}")
        now = self._clock.now()
        expires_at = now + self._max_cache_ttl
        token_exp = unverified.expires_at
        if token_exp is not None:
            expires_at = min(expires_at, token_exp)
        self._cache.put(key, caller, expires_at=expires_at)
        return caller
