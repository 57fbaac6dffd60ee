"""OIDC JWTs checked offline against a JWKS (file or URL), with the authz layer's verifier.

The verified ``sub`` becomes an identity by one of two rules:

* :class:`SpiffeSubject` — ``sub`` already is a SPIFFE ID in our trust domain;
* :class:`PrefixedSubject` — ``sub`` is one path segment, placed under a fixed prefix:
  ``spiffe://<td>/<prefix>/<sub>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from citadel.authz.jwt_verifier import VerifiedJwt
from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.server.authn.base import Caller
from citadel.server.authn.bearer import JOIN_TOKEN_PREFIX, bearer_token
from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError

__all__ = [
    "OidcAuthenticator",
    "PrefixedSubject",
    "SpiffeSubject",
    "SubjectMapping",
    "TokenVerifier",
]


class TokenVerifier(Protocol):
    def verify(self, token: str) -> VerifiedJwt: ...


class SubjectMapping(Protocol):
    def identity(self, subject: str, trust_domain: TrustDomain) -> SpiffeId:
        """Raises: ValueError: the subject does not map to an identity."""
        ...


@dataclass(frozen=True, slots=True)
class SpiffeSubject:
    """``sub`` must be a workload SPIFFE ID of our trust domain."""

    def identity(self, subject: str, trust_domain: TrustDomain) -> SpiffeId:
        try:
            identity = SpiffeId.parse(subject)
        except InvalidSpiffeIdError as exc:
            raise ValueError(f"subject is not a SPIFFE ID: {exc.message}") from exc
        if identity.trust_domain != trust_domain:
            raise ValueError(f"subject {identity} is outside trust domain {trust_domain}")
        if identity.is_trust_domain_id:
            raise ValueError("subject SPIFFE ID has no path")
        return identity


@dataclass(frozen=True, slots=True)
class PrefixedSubject:
    """``sub`` is one path segment under ``prefix`` (``"oidc/users"`` → ``/oidc/users/<sub>``)."""

    prefix: str

    def __post_init__(self) -> None:
        prefix = self.prefix.strip("/")
        if not prefix:
            raise ValueError("the subject prefix must not be empty")
        TrustDomain("example.org").spiffe_id("/" + prefix)  # validates the segments
        object.__setattr__(self, "prefix", prefix)

    def identity(self, subject: str, trust_domain: TrustDomain) -> SpiffeId:
        if not subject or "/" in subject:
            raise ValueError("subject must be exactly one path segment")
        try:
            return trust_domain.spiffe_id(f"/{self.prefix}/{subject}")
        except InvalidSpiffeIdError as exc:
            raise ValueError(f"subject is not a valid path segment: {exc.message}") from exc


class OidcAuthenticator:
    """Bearer JWT from one OIDC issuer, verified offline (signature, iss, aud, exp, nbf, alg)."""

    name = "oidc"

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        trust_domain: TrustDomain,
        mapping: SubjectMapping,
    ) -> None:
        self._verifier = verifier
        self._trust_domain = trust_domain
        self._mapping = mapping

    def authenticate(self, call: CallContext) -> Caller | None:
        token = bearer_token(call, authenticator=self.name)
        if token is None or token.startswith(JOIN_TOKEN_PREFIX):
            return None
        verified = self._verifier.verify(token)
        try:
            identity = self._mapping.identity(verified.subject, self._trust_domain)
        except ValueError as exc:
            raise CredentialRejectedError(
                f"OIDC subject of {verified.issuer} does not map to an identity: {exc}",
                authenticator=self.name,
            ) from exc
        return Caller(
            identity=identity, kind="oidc", detail=f"iss={verified.issuer} kid={verified.key_id}"
        )
