"""The CSR API's decisions, free of gRPC: limit, authenticate, authorize, validate, issue.

Order of checks (the first failure is the answer):

1. the server-wide rate limit;
2. caller authentication (the authenticator chain);
3. the request fields (CSR size, lifetime, metadata);
4. which identity may be certified (own identity, or impersonation by a trusted agent);
5. the per-identity rate limit;
6. the strict CSR rules (signature, one URI SAN, no DNS/IP/e-mail/CN, no CA request);
7. the CSR's URI SAN must equal that identity;
8. issuance (the issuer re-checks the lifetime and records the issuance before returning).
"""

from __future__ import annotations

import logging
from typing import Protocol

from citadel.ca.issuer import IssuedChain, SignParams
from citadel.identity.csr import parse_csr, validate_workload_csr
from citadel.identity.keys import PublicKey
from citadel.server.authn.base import Caller
from citadel.server.authn.chain import AuthenticatorChain
from citadel.server.call_context import CallContext
from citadel.server.csr_request import CsrRequest
from citadel.server.errors import IdentityMismatchError
from citadel.server.impersonation import ImpersonationPolicy
from citadel.server.rate_limit import CsrRateLimiter

__all__ = ["CertificateIssuer", "CsrService"]

_log = logging.getLogger(__name__)
CLUSTER_ID_HEADER = "clusterid"
_MAX_AUDIT_VALUE = 256


class CertificateIssuer(Protocol):
    def issue(self, public_key: PublicKey, params: SignParams) -> IssuedChain: ...


def _audit_metadata(
    caller: Caller, call: CallContext, request: CsrRequest, impersonated: bool
) -> dict[str, str]:
    metadata = {"authn": caller.kind, "caller": str(caller.identity)}
    if impersonated:
        metadata["impersonated"] = "true"
    clusters = call.values(CLUSTER_ID_HEADER)
    if clusters:
        metadata["clusterid"] = clusters[-1]
    signer = request.cert_signer()
    if signer:
        metadata["cert_signer"] = signer
    return {key: value[:_MAX_AUDIT_VALUE] for key, value in metadata.items()}


class CsrService:
    def __init__(
        self,
        *,
        authenticators: AuthenticatorChain,
        issuer: CertificateIssuer,
        impersonation: ImpersonationPolicy,
        rate_limiter: CsrRateLimiter,
    ) -> None:
        self._authenticators = authenticators
        self._issuer = issuer
        self._impersonation = impersonation
        self._rate_limiter = rate_limiter

    def create_certificate(self, call: CallContext, request: CsrRequest) -> IssuedChain:
        """Decide and, when everything holds, issue.

        Raises:
            RateLimitedError, AuthenticationError, AccessDeniedError, InvalidRequestError,
            InvalidCsrError, TtlError: the request is refused (see :mod:`.status`).
            CaNotReadyError, StoreUnavailableError, K8sError...: the server cannot decide now.
        """
        self._rate_limiter.check_global()
        caller = self._authenticators.authenticate(call)
        csr_bytes = request.checked_csr()
        ttl = request.ttl()
        target = self._impersonation.target_identity(caller, request.impersonated_identity())
        self._rate_limiter.check_identity(str(target))
        info = validate_workload_csr(parse_csr(csr_bytes))
        if info.spiffe_id != target:
            raise IdentityMismatchError(
                f"CSR asks for {info.spiffe_id} but the caller may only obtain {target}"
            )
        params = SignParams(
            spiffe_id=target,
            ttl=ttl,
            requester=f"{caller.kind}:{caller.identity}"[:512],
            metadata=_audit_metadata(caller, call, request, target != caller.identity),
        )
        chain = self._issuer.issue(info.public_key, params)
        _log.debug("issued serial %s for %s to %s", chain.serial_hex, target, caller.describe())
        return chain
