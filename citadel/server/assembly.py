"""Wiring: from a :class:`ServerConfig` and an open CA to the CSR service's parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509

from citadel.authz.jwks import JwksSource
from citadel.authz.jwks_file import FileJwks
from citadel.authz.jwks_url import UrlJwks
from citadel.authz.jwt_verifier import JwtVerifier, JwtVerifierConfig
from citadel.ca.issuer import Issuer
from citadel.identity.clock import Clock
from citadel.identity.pem import serial_hex
from citadel.identity.spiffe_id import TrustDomain
from citadel.k8s.client import build_configuration
from citadel.k8s.token_review import TokenReviewClient
from citadel.server.authn.base import Authenticator
from citadel.server.authn.chain import AuthenticatorChain
from citadel.server.authn.join_token import JoinTokenAuthenticator, JoinTokenStore
from citadel.server.authn.kube_jwt import KubernetesJwtAuthenticator
from citadel.server.authn.mtls import MtlsAuthenticator
from citadel.server.authn.oidc import OidcAuthenticator, PrefixedSubject, SpiffeSubject
from citadel.server.config import KubernetesAuthConfig, OidcAuthConfig, ServerConfig
from citadel.server.csr_service import CsrService
from citadel.server.impersonation import ImpersonationPolicy
from citadel.server.metrics import ServerMetrics
from citadel.server.rate_limit import BlockingThrottle, CsrRateLimiter
from citadel.store.errors import NotFoundError

__all__ = ["CsrServiceParts", "build_csr_service"]


class CertificateLookup(Protocol):
    def get_certificate(self, serial_hex: str) -> object: ...


class CaStore(JoinTokenStore, CertificateLookup, Protocol):
    """What the server needs from the repository."""


@dataclass
class CsrServiceParts:
    service: CsrService
    authenticators: AuthenticatorChain
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()


def _revocation_check(store: CertificateLookup) -> Callable[[x509.Certificate], bool]:
    def is_revoked(cert: x509.Certificate) -> bool:
        try:
            record = store.get_certificate(serial_hex(cert))
        except NotFoundError:
            return False
        return getattr(record, "revoked_at", None) is not None

    return is_revoked


def _kubernetes(
    config: KubernetesAuthConfig,
    trust_domain: TrustDomain,
    clock: Clock,
    metrics: ServerMetrics,
    concurrency: int,
) -> tuple[KubernetesJwtAuthenticator, TokenReviewClient]:
    throttle = BlockingThrottle(
        config.throttle_limit,
        max_wait=config.max_wait,
        on_throttled=metrics.record_token_review_throttled,
    )
    configuration = build_configuration(config.api)
    # One kept-alive connection per serving thread: a smaller pool (the client's default is
    # 5 per CPU) makes a mass start open and drop a connection (a TLS handshake) per review.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, concurrency)
    client = TokenReviewClient(configuration, timeout=config.timeout, throttle=throttle)
    authenticator = KubernetesJwtAuthenticator(
        reviewer=client,
        trust_domain=trust_domain,
        clock=clock,
        audiences=config.audiences,
        cluster_id=config.cluster_id,
        issuers=config.issuers,
        max_cache_ttl=config.max_cache_ttl,
        max_cache_entries=config.max_cache_entries,
    )
    return authenticator, client


def _oidc(config: OidcAuthConfig, trust_domain: TrustDomain, clock: Clock) -> OidcAuthenticator:
    jwks: JwksSource
    if config.jwks_file is not None:
        jwks = FileJwks(config.jwks_file)
    else:
        assert config.jwks_url is not None
        jwks = UrlJwks(
            config.jwks_url,
            clock=clock,
            refresh_interval=config.jwks_refresh,
            ca_file=str(config.jwks_ca_file) if config.jwks_ca_file else None,
        )
    verifier = JwtVerifier(
        JwtVerifierConfig(
            issuer=config.issuer,
            audiences=frozenset(config.audiences),
            leeway=config.leeway,
            algorithms=config.algorithms,
        ),
        jwks=jwks,
        clock=clock,
    )
    mapping = PrefixedSubject(config.subject_prefix) if config.subject_prefix else SpiffeSubject()
    return OidcAuthenticator(verifier=verifier, trust_domain=trust_domain, mapping=mapping)


def build_csr_service(
    config: ServerConfig,
    *,
    issuer: Issuer,
    store: CaStore,
    clock: Clock,
    metrics: ServerMetrics,
    worker_count: int = 1,
    is_revoked: Callable[[x509.Certificate], bool] | None = None,
) -> CsrServiceParts:
    """The authenticator chain (mTLS, Kubernetes, OIDC, join token — those configured, in
    that order), the impersonation policy, the rate limits and the CSR service.

    ``is_revoked`` is the mTLS renewal's revocation check (the CA lifecycle's in-memory
    index when the server runs one; by default a store lookup per call)."""
    trust_domain = issuer.trust_domain
    authenticators: list[Authenticator] = []
    closers: list[Callable[[], None]] = []
    if config.mtls_authentication:
        authenticators.append(
            MtlsAuthenticator(
                roots=lambda: issuer.trust_bundle().x509_authorities,
                trust_domain=trust_domain,
                clock=clock,
                is_revoked=is_revoked if is_revoked is not None else _revocation_check(store),
            )
        )
    if config.kubernetes is not None:
        kube, client = _kubernetes(
            config.kubernetes, trust_domain, clock, metrics, concurrency=config.threads
        )
        authenticators.append(kube)
        closers.append(client.close)
    if config.oidc is not None:
        authenticators.append(_oidc(config.oidc, trust_domain, clock))
    if config.join_tokens:
        authenticators.append(
            JoinTokenAuthenticator(store=store, trust_domain=trust_domain, clock=clock)
        )
    chain = AuthenticatorChain(authenticators)
    global_limit = config.global_limit
    if global_limit is not None and worker_count > 1:
        global_limit = global_limit.divided(worker_count)
    service = CsrService(
        authenticators=chain,
        issuer=issuer,
        impersonation=ImpersonationPolicy(config.agent_grants()),
        rate_limiter=CsrRateLimiter(
            global_limit=global_limit, identity_limit=config.identity_limit
        ),
    )
    return CsrServiceParts(service=service, authenticators=chain, closers=closers)
