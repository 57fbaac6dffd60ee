"""The enforcer: peer identity + request authentication + engine, for one policy set.

Enforcement points (the gRPC interceptors, the ext_authz server, the CLI) turn their request
into an :class:`AccessRequest` and call :meth:`Enforcer.check`. The result carries the
decision, and for a denial the typed error whose ``kind`` selects the status code
(:mod:`citadel.authz.grpc_status`). Every check is counted and every denial logged with its
detail here, once.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from citadel.authz.decision import Decision
from citadel.authz.engine import AuthzEngine, EngineOptions
from citadel.authz.errors import (
    AuthenticationError,
    AuthzError,
    ForeignTrustDomainError,
)
from citadel.authz.jwks_factory import JwksSourceFactory
from citadel.authz.jwt_verifier import VerifiedJwt
from citadel.authz.metrics import record_decision
from citadel.authz.policy import Action, PolicySet
from citadel.authz.principals import establish_peer
from citadel.authz.request import IpAddress, RequestContext
from citadel.authz.request_auth import RequestAuthenticator
from citadel.identity.clock import Clock
from citadel.identity.spiffe_id import TrustDomain

__all__ = [
    "AccessRequest",
    "AccessResult",
    "CallAuthorizer",
    "Enforcer",
    "EnforcerOptions",
    "log_result",
    "reject",
]

_log = logging.getLogger(__name__)
_NO_HEADERS: Mapping[str, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class AccessRequest:
    """A request as an enforcement point sees it, before authentication.

    Attributes:
        peer_principal: the peer's SPIFFE ID as the transport reported it, or None.
        peer_certificate: the verified peer leaf (PEM); when set the principal comes from
            its URI SAN and must equal ``peer_principal`` if that is set too.
        headers: lowercase names to all values, in arrival order (metadata for gRPC).
        destination: the protected workload's SPIFFE ID, when known.
        local: the caller came over a Unix socket (used by the method table).
    """

    peer_principal: str | None = None
    peer_certificate: bytes | None = None
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _NO_HEADERS)
    grpc_method: str | None = None
    method: str | None = None
    path: str | None = None
    host: str | None = None
    port: int | None = None
    source_ip: str | None = None
    destination: str | None = None
    local: bool = False


@dataclass(frozen=True, kw_only=True)
class AccessResult:
    """The outcome of :meth:`Enforcer.check`.

    Attributes:
        decision: always set; for authentication failures ``reason`` is the error kind.
        error: the typed error of a denial (None when allowed).
        principal: the peer's SPIFFE ID once established (None: anonymous or rejected).
        token: the verified JWT, if the request carried a valid one.
        response_headers: claim-to-header output to add upstream (allowed requests only).
        strip_headers: header names the client must not be able to set (claim outputs).
    """

    decision: Decision
    error: AuthzError | None = None
    principal: str | None = None
    token: VerifiedJwt | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    strip_headers: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision.allowed


class CallAuthorizer(Protocol):
    """What enforcement points need: the enforcer, a policy store or a method table."""

    def check(self, request: AccessRequest) -> AccessResult: ...


@dataclass(frozen=True, kw_only=True)
class EnforcerOptions:
    """``trust_domains``: peers outside them are denied (None accepts any trust domain)."""

    default_action: Action = Action.DENY
    trust_domains: frozenset[TrustDomain] | None = None

    def engine_options(self) -> EngineOptions:
        return EngineOptions(default_action=self.default_action)


def log_result(request: AccessRequest, result: AccessResult) -> None:
    """Log a denial with its detail (principals and method only; never tokens or PEMs)."""
    if result.allowed or not _log.isEnabledFor(logging.INFO):
        return
    _log.info(
        "authz denied: reason=%s peer=%s request_principal=%s target=%s %s detail=%s",
        result.decision.reason,
        result.principal or request.peer_principal or "-",
        result.token.request_principal if result.token else "-",
        request.grpc_method or f"{request.method or '-'} {request.path or '-'}",
        f"destination={request.destination}" if request.destination else "",
        result.error.message if result.error else result.decision.explain(),
    )


def reject(request: AccessRequest, error: AuthzError) -> AccessResult:
    """A denial decided before any authorizer ran (e.g. an unreadable peer identity).

    It is counted and logged like every other decision.
    """
    result = _denied(error)
    record_decision(False, error.kind)
    log_result(request, result)
    return result


def _ip_or_none(text: str | None) -> IpAddress | None:
    """An unparsable source address is treated as unknown (it then matches no ipBlocks)."""
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _denied(error: AuthzError, principal: str | None = None) -> AccessResult:
    return AccessResult(
        decision=Decision(allowed=False, reason=error.kind, detail=error.message),
        error=error,
        principal=principal,
    )


class Enforcer:
    """Checks requests against one loaded :class:`PolicySet`. Immutable and thread-safe."""

    def __init__(
        self,
        policies: PolicySet,
        *,
        clock: Clock,
        options: EnforcerOptions | None = None,
        jwks_factory: JwksSourceFactory | None = None,
    ) -> None:
        self._options = options or EnforcerOptions()
        self._policies = policies
        self._engine = AuthzEngine(policies.authorization, self._options.engine_options())
        self._authenticator = RequestAuthenticator(
            policies.request_authentication,
            clock=clock,
            jwks_factory=jwks_factory or JwksSourceFactory(clock=clock),
        )

    @property
    def policies(self) -> PolicySet:
        return self._policies

    @property
    def engine(self) -> AuthzEngine:
        return self._engine

    def check(self, request: AccessRequest) -> AccessResult:
        """Authenticate and authorize one request. Never raises for request content."""
        result = self._evaluate(request)
        record_decision(result.allowed, result.decision.reason)
        log_result(request, result)
        return result

    def _evaluate(self, request: AccessRequest) -> AccessResult:
        strip = self._authenticator.output_header_names(request.destination)
        try:
            principal = establish_peer(
                request.peer_principal, request.peer_certificate, self._options.trust_domains
            )
        except (AuthenticationError, ForeignTrustDomainError) as exc:
            return _denied(exc)
        try:
            identity = self._authenticator.authenticate(request.headers, request.destination)
        except AuthenticationError as exc:
            return _denied(exc, principal)
        token = identity.token if identity else None
        ctx = RequestContext.create(
            principal=principal,
            request_principal=token.request_principal if token else None,
            claims=token.claims if token else None,
            audiences=token.audiences if token else (),
            grpc_method=request.grpc_method,
            method=request.method,
            path=request.path,
            host=request.host,
            port=request.port,
            source_ip=_ip_or_none(request.source_ip),
            headers=request.headers,
            destination=request.destination,
        )
        decision = self._engine.decide(ctx)
        if not decision.allowed:
            return AccessResult(
                decision=decision,
                error=decision.to_error(),
                principal=principal,
                token=token,
                strip_headers=strip,
            )
        return AccessResult(
            decision=decision,
            principal=principal,
            token=token,
            response_headers=identity.output_headers if identity else (),
            strip_headers=strip,
        )
