"""Request authentication: find the JWT in the request headers and verify it.

* No applicable RequestAuthentication policy: tokens are not looked at (anonymous).
* No token in any configured header: anonymous, unless an applicable policy says
  ``required: true`` (then :class:`MissingTokenError`).
* A token that fails verification is rejected even when no authorization policy needs it.
* Two tokens (a header repeated, Envoy's comma-merged header, or different tokens in two
  configured headers) are rejected as ambiguous: a proxy and the backend could otherwise
  disagree about which one was checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from citadel.authz.errors import (
    AmbiguousTokenError,
    MissingTokenError,
    TokenError,
    TokenIssuerError,
    TokenMalformedError,
)
from citadel.authz.jwks_factory import JwksSourceFactory
from citadel.authz.jwt_verifier import JwtVerifier, JwtVerifierConfig, VerifiedJwt, peek_issuer
from citadel.authz.matchers import StringMatcher
from citadel.authz.policy import HeaderLocation, JwtRule, RequestAuthentication
from citadel.identity.clock import Clock

__all__ = ["RequestAuthenticator", "RequestIdentity"]

Headers = Mapping[str, Sequence[str]]


@dataclass(frozen=True, kw_only=True)
class RequestIdentity:
    """A verified token and the headers its rule asks to emit (claim to header)."""

    token: VerifiedJwt
    output_headers: tuple[tuple[str, str], ...] = ()

    @property
    def request_principal(self) -> str:
        return self.token.request_principal


@dataclass(frozen=True)
class _CompiledJwtRule:
    rule: JwtRule
    verifier: JwtVerifier


@dataclass(frozen=True)
class _CompiledPolicy:
    policy: RequestAuthentication
    targets: StringMatcher | None
    rules: tuple[_CompiledJwtRule, ...]

    def applies_to(self, destination: str | None) -> bool:
        if self.targets is None:
            return True
        return destination is not None and self.targets.matches(destination)


def _header_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        text = str(value)
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
            return None
        return text
    return None


def _extract(location: HeaderLocation, headers: Headers) -> str | None:
    values = headers.get(location.name, ())
    if len(values) > 1:
        raise AmbiguousTokenError(f"header {location.name!r} is repeated")
    if not values:
        return None
    value = values[0]
    prefix = location.prefix
    if prefix:
        if value[: len(prefix)].lower() != prefix.lower():
            return None
        value = value[len(prefix) :]
    token = value.strip()
    if "," in token:
        raise AmbiguousTokenError(f"header {location.name!r} carries more than one value")
    if not token:
        raise TokenMalformedError(f"header {location.name!r} carries an empty token")
    return token


class RequestAuthenticator:
    """Applies the RequestAuthentication policies of one policy set."""

    def __init__(
        self,
        policies: Sequence[RequestAuthentication],
        *,
        clock: Clock,
        jwks_factory: JwksSourceFactory,
    ) -> None:
        compiled = []
        for policy in policies:
            rules = tuple(
                _CompiledJwtRule(
                    rule,
                    JwtVerifier(
                        JwtVerifierConfig(
                            issuer=rule.issuer,
                            audiences=frozenset(rule.audiences),
                            leeway=rule.leeway,
                            max_token_bytes=rule.max_token_bytes,
                        ),
                        jwks=jwks_factory.source(rule.jwks),
                        clock=clock,
                    ),
                )
                for rule in policy.jwt_rules
            )
            targets = StringMatcher.compile(policy.targets) if policy.targets else None
            compiled.append(_CompiledPolicy(policy, targets, rules))
        self._policies = tuple(compiled)
        self._output_names: dict[str | None, tuple[str, ...]] = {}

    def output_header_names(self, destination: str | None) -> tuple[str, ...]:
        """Every header a rule may emit for ``destination`` (callers strip client copies)."""
        found = self._output_names.get(destination)
        if found is not None:
            return found
        names = {
            out.header
            for p in self._policies
            if p.applies_to(destination)
            for r in p.rules
            for out in r.rule.output_claim_to_headers
        }
        found = tuple(sorted(names))
        if len(self._output_names) >= 4096:
            self._output_names.clear()
        self._output_names[destination] = found
        return found

    def authenticate(self, headers: Headers, destination: str | None) -> RequestIdentity | None:
        """Verify the request's token, if any.

        Args:
            headers: lowercase header names to all their values, in arrival order.
            destination: the protected workload's SPIFFE ID (selects targeted policies).

        Returns:
            The verified identity, or None for an anonymous request.

        Raises:
            TokenError: the token is invalid, ambiguous or from an unknown issuer.
            MissingTokenError: no token, and an applicable policy requires one.
            JwksUnavailableError: the issuer's keys could not be obtained.
        """
        applicable = [p for p in self._policies if p.applies_to(destination)]
        if not applicable:
            return None
        rules = [r for p in applicable for r in p.rules]
        found: dict[str, list[HeaderLocation]] = {}
        for location in dict.fromkeys(loc for r in rules for loc in r.rule.from_headers):
            token = _extract(location, headers)
            if token is not None:
                found.setdefault(token, []).append(location)
        if len(found) > 1:
            raise AmbiguousTokenError("the request carries more than one token")
        if not found:
            if any(p.policy.required for p in applicable):
                raise MissingTokenError("a token is required")
            return None
        ((token, locations),) = found.items()
        largest = max(r.rule.max_token_bytes for r in rules)
        issuer = peek_issuer(token, largest)
        candidates = [
            r
            for r in rules
            if r.rule.issuer == issuer and any(loc in r.rule.from_headers for loc in locations)
        ]
        if not candidates:
            raise TokenIssuerError(f"token issuer {issuer!r} is not trusted here")
        first_error: TokenError | None = None
        for candidate in candidates:
            try:
                verified = candidate.verifier.verify(token)
            except TokenError as exc:
                first_error = first_error or exc
                continue
            return RequestIdentity(
                token=verified, output_headers=self._outputs(candidate, verified)
            )
        assert first_error is not None
        raise first_error

    @staticmethod
    def _outputs(rule: _CompiledJwtRule, token: VerifiedJwt) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        for mapping in rule.rule.output_claim_to_headers:
            text = _header_text(token.claims.get(mapping.claim))
            if text is not None:
                out.append((mapping.header, text))
        return tuple(out)
