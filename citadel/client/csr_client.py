"""The CSR client: build a CSR for a key, ask the CA, check what comes back."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

import grpc
from cryptography import x509

from citadel._proto import istio_ca_pb2, istio_ca_pb2_grpc
from citadel.client.credentials import Credentials
from citadel.client.errors import (
    CsrRejectedError,
    InvalidResponseError,
    ServerUnreachableError,
)
from citadel.identity.chain import verify_svid_chain
from citadel.identity.clock import Clock, SystemClock
from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.errors import ChainVerificationError, InvalidCertificateError
from citadel.identity.keys import PrivateKey, public_keys_equal
from citadel.identity.pem import certificates_to_pem, load_certificates_pem, serial_hex
from citadel.identity.spiffe_id import SpiffeId

__all__ = ["CsrClient", "IssuedSvid"]

_UNREACHABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)


@dataclass(frozen=True, kw_only=True)
class IssuedSvid:
    """A verified answer: the leaf for our key, its intermediates and the CA's roots."""

    spiffe_id: SpiffeId
    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    roots: tuple[x509.Certificate, ...]

    @property
    def serial_hex(self) -> str:
        return serial_hex(self.leaf)

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc

    @property
    def chain_pem(self) -> bytes:
        """The leaf and intermediates (``cert-chain.pem``)."""
        return certificates_to_pem([self.leaf, *self.intermediates]).encode("ascii")

    @property
    def roots_pem(self) -> bytes:
        return certificates_to_pem(list(self.roots)).encode("ascii")


def _retry_after(error: grpc.Call) -> timedelta | None:
    for key, value in error.trailing_metadata() or ():
        if key == "retry-after" and isinstance(value, str) and value.isdigit():
            return timedelta(seconds=int(value))
    return None


class CsrClient:
    """Talks to one CA over TLS, trusting only ``root_bundle_pem``.

    Args:
        target: ``host:port`` of the CSR API (the mTLS port when using a client certificate).
        server_name: the name to check in the CA's certificate when ``target``'s host is not
            in it (for example an IP address).
    """

    def __init__(
        self,
        target: str,
        root_bundle_pem: bytes,
        credentials: Credentials,
        *,
        server_name: str | None = None,
        timeout: timedelta = timedelta(seconds=10),
        clock: Clock | None = None,
    ) -> None:
        self._roots = load_certificates_pem(root_bundle_pem, what="CA root bundle")
        self._credentials = credentials
        self._timeout = timeout.total_seconds()
        self._clock = clock or SystemClock()
        identity = credentials.tls_identity()
        channel_credentials = grpc.ssl_channel_credentials(
            root_certificates=root_bundle_pem,
            private_key=identity[0] if identity else None,
            certificate_chain=identity[1] if identity else None,
        )
        options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        self._channel = grpc.secure_channel(target, channel_credentials, options=options)
        self._stub = istio_ca_pb2_grpc.IstioCertificateServiceStub(self._channel)

    def request(
        self, spiffe_id: SpiffeId, key: PrivateKey, ttl: timedelta | None = None
    ) -> IssuedSvid:
        """Ask for an SVID for ``key``.

        Raises:
            CsrRejectedError: the CA refused (code, details, retry hint).
            ServerUnreachableError: no answer.
            InvalidResponseError: the chain is short, for another identity or key, or does
                not verify to our root bundle.
        """
        request = istio_ca_pb2.IstioCertificateRequest(
            csr=csr_to_pem(build_csr(key, spiffe_id)),
            validity_duration=math.ceil(ttl.total_seconds()) if ttl else 0,
        )
        try:
            response = self._stub.CreateCertificate(
                request, metadata=self._credentials.call_metadata(), timeout=self._timeout
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = (exc.details() if isinstance(exc, grpc.Call) else "") or ""
            if code in _UNREACHABLE:
                raise ServerUnreachableError(
                    f"the CA did not answer ({code.name}): {details[:200]}"
                ) from exc
            retry = _retry_after(exc) if isinstance(exc, grpc.Call) else None
            raise CsrRejectedError(code.name, details[:300], retry_after=retry) from exc
        return self._verified(list(response.cert_chain), spiffe_id, key)

    def _verified(self, chain: list[str], spiffe_id: SpiffeId, key: PrivateKey) -> IssuedSvid:
        if len(chain) < 2:
            raise InvalidResponseError("the CA answered with fewer than two chain elements")
        try:
            leaf = load_certificates_pem(chain[0], what="issued leaf")[0]
            intermediates = [
                cert
                for pem in chain[1:-1]
                for cert in load_certificates_pem(pem, what="issued chain")
            ]
            roots = load_certificates_pem(chain[-1], what="returned roots")
            issued_for = verify_svid_chain(leaf, intermediates, self._roots, at=self._clock.now())
        except (InvalidCertificateError, ChainVerificationError) as exc:
            raise InvalidResponseError(f"the issued chain is unusable: {exc.message}") from exc
        if issued_for != spiffe_id:
            raise InvalidResponseError(f"the CA issued {issued_for}, not {spiffe_id}")
        if not public_keys_equal(leaf.public_key(), key):  # type: ignore[arg-type]
            raise InvalidResponseError("the issued certificate is not for our key")
        return IssuedSvid(
            spiffe_id=spiffe_id,
            leaf=leaf,
            intermediates=tuple(intermediates),
            roots=tuple(roots),
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CsrClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
