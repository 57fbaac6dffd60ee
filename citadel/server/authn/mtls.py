"""mTLS: the identity is the single URI SAN of the client's verified certificate chain."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cryptography import x509

from citadel.identity.chain import verify_svid_chain
from citadel.identity.clock import Clock
from citadel.identity.errors import ChainVerificationError, InvalidCertificateError
from citadel.identity.pem import certificate_fingerprint, load_certificates_pem, serial_hex
from citadel.identity.spiffe_id import TrustDomain
from citadel.server.authn.base import Caller
from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError

__all__ = ["MtlsAuthenticator"]

RootsSource = Callable[[], Sequence[x509.Certificate]]
RevocationCheck = Callable[[x509.Certificate], bool]


class MtlsAuthenticator:
    """Re-verifies the TLS client chain against the CA's *current* roots and clock.

    The TLS layer already checked the chain against the roots it was configured with; this
    check adds the trust domain, the X509-SVID rules, the injected clock, a bundle that may
    have changed since, and (optionally) revocation.
    """

    name = "mtls"

    def __init__(
        self,
        *,
        roots: RootsSource,
        trust_domain: TrustDomain,
        clock: Clock,
        is_revoked: RevocationCheck | None = None,
    ) -> None:
        self._roots = roots
        self._trust_domain = trust_domain
        self._clock = clock
        self._is_revoked = is_revoked

    def authenticate(self, call: CallContext) -> Caller | None:
        if call.peer_certificate_pem is None:
            return None
        try:
            leaf = load_certificates_pem(call.peer_certificate_pem, what="client certificate")[0]
            others = [
                cert
                for pem in call.peer_chain_pem
                for cert in load_certificates_pem(pem, what="client chain")
            ]
        except InvalidCertificateError as exc:
            raise CredentialRejectedError(exc.message, authenticator=self.name) from exc
        leaf_fingerprint = certificate_fingerprint(leaf)
        intermediates = [c for c in others if certificate_fingerprint(c) != leaf_fingerprint]
        try:
            identity = verify_svid_chain(
                leaf,
                intermediates,
                list(self._roots()),
                at=self._clock.now(),
                trust_domain=self._trust_domain,
            )
        except ChainVerificationError as exc:
            raise CredentialRejectedError(
                f"client certificate serial {serial_hex(leaf)} rejected: {exc.message}",
                authenticator=self.name,
            ) from exc
        if self._is_revoked is not None and self._is_revoked(leaf):
            raise CredentialRejectedError(
                f"client certificate serial {serial_hex(leaf)} is revoked",
                authenticator=self.name,
            )
        return Caller(identity=identity, kind="mtls", detail=f"serial={serial_hex(leaf)}")
