"""An in-process Istio CSR API signer built on citadel.identity, for node-agent UNIT tests.

``FakeCa`` signs CSRs the way the real CA does (identity from the CSR, NotBefore
backdated 2 minutes, leaf + intermediate + root chain) and can be told to misbehave:
answer for the wrong identity, return an expired or one-element chain, sign with a
foreign root, or fail with a gRPC status. It is usable directly as the agent's
``CsrSigner`` (no network) and, through :meth:`FakeCa.serve`, as a real TLS gRPC server
on 127.0.0.1:0. Integration tests use the real ``citadel serve`` instead.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from citadel._proto import istio_ca_pb2, istio_ca_pb2_grpc
from citadel.identity.clock import Clock
from citadel.identity.csr import parse_csr, validate_workload_csr
from citadel.identity.errors import IdentityError
from citadel.identity.keys import (
    KeyType,
    PrivateKey,
    generate_private_key,
    private_key_to_pkcs8_pem,
    signature_hash_for,
)
from citadel.identity.pem import certificates_to_pem
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.identity.x509_templates import CaSpec, LeafSpec, ca_builder, leaf_builder
from node_agent.credentials import CallAuth

__all__ = ["FakeCa", "FakeCaBehaviour", "FakePki", "ServedFakeCa", "make_fake_pki"]

BACKDATE = timedelta(minutes=2)
DEFAULT_TTL = timedelta(hours=1)


@dataclass(frozen=True)
class FakePki:
    """Root -> intermediate, valid around both the test clock and the wall clock."""

    trust_domain: TrustDomain
    root: x509.Certificate
    root_key: PrivateKey
    intermediate: x509.Certificate
    intermediate_key: PrivateKey

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def issue_leaf(
        self,
        spiffe_id: SpiffeId,
        key: PrivateKey,
        *,
        not_before: datetime,
        not_after: datetime,
    ) -> x509.Certificate:
        spec = LeafSpec(
            spiffe_id=spiffe_id,
            public_key=key.public_key(),
            not_before=not_before,
            not_after=not_after,
        )
        builder = leaf_builder(spec, self.intermediate)
        return builder.sign(self.intermediate_key, signature_hash_for(self.intermediate_key))

    def leaf_files(
        self, spiffe_id: SpiffeId, *, not_before: datetime, not_after: datetime
    ) -> tuple[bytes, bytes, x509.Certificate]:
        """(chain PEM with the intermediate, PKCS#8 key PEM, leaf) for file-cert tests."""
        key = generate_private_key(KeyType.EC_P256)
        leaf = self.issue_leaf(spiffe_id, key, not_before=not_before, not_after=not_after)
        chain = certificates_to_pem([leaf, self.intermediate]).encode()
        return chain, private_key_to_pkcs8_pem(key), leaf

    def server_certificate(self, *, now: datetime) -> tuple[bytes, bytes]:
        """A TLS server certificate for localhost / 127.0.0.1: (chain PEM, key PEM)."""
        key = generate_private_key(KeyType.EC_P256)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-ca")]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self.intermediate_key, signature_hash_for(self.intermediate_key))
        )
        chain = certificates_to_pem([cert, self.intermediate]).encode()
        return chain, private_key_to_pkcs8_pem(key)


def make_fake_pki(trust_domain: str = "example.org", *, around: Sequence[datetime]) -> FakePki:
    """A PKI whose validity covers every instant in ``around`` (test clock, wall clock)."""
    td = TrustDomain(trust_domain)
    start = min(around) - timedelta(days=2)
    end = max(around) + timedelta(days=3650)
    root_key = generate_private_key(KeyType.EC_P256)
    root = ca_builder(
        CaSpec(
            trust_domain=td,
            common_name="fake root",
            public_key=root_key.public_key(),
            not_before=start,
            not_after=end,
            path_length=1,
        )
    ).sign(root_key, signature_hash_for(root_key))
    intermediate_key = generate_private_key(KeyType.EC_P256)
    intermediate = ca_builder(
        CaSpec(
            trust_domain=td,
            common_name="fake intermediate",
            public_key=intermediate_key.public_key(),
            not_before=start,
            not_after=end,
            path_length=0,
        ),
        root,
    ).sign(root_key, signature_hash_for(root_key))
    return FakePki(td, root, root_key, intermediate, intermediate_key)


@dataclass
class FakeCaBehaviour:
    """Knobs a test turns to make the CA misbehave (all off by default)."""

    fail_with: grpc.StatusCode | None = None
    issue_for: SpiffeId | None = None  # sign for this identity instead of the CSR's
    expired: bool = False  # NotAfter in the past
    single_element: bool = False  # answer with the leaf only
    foreign_pki: FakePki | None = None  # sign with a CA the agent does not trust
    substitute_key: bool = False  # certify another public key than the CSR's
    required_bearer: str | None = None  # demand ``authorization: Bearer <this>``
    ttl: timedelta | None = None  # overrides the requested validity


@dataclass(frozen=True)
class RecordedCall:
    metadata: tuple[tuple[str, str], ...]
    client_certificate: bool
    spiffe_id: str
    validity_seconds: int


class _Rejected(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class FakeCa:
    pki: FakePki
    clock: Clock
    behaviour: FakeCaBehaviour = field(default_factory=FakeCaBehaviour)
    calls: list[RecordedCall] = field(default_factory=list)

    # --- the signing logic ------------------------------------------------------------------
    def sign(
        self,
        csr_pem: str,
        validity_seconds: int,
        metadata: Sequence[tuple[str, str]],
        *,
        client_certificate: bool = False,
    ) -> list[str]:
        b = self.behaviour
        try:
            info = validate_workload_csr(parse_csr(csr_pem))
        except IdentityError as exc:
            raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, exc.message) from exc
        self.calls.append(
            RecordedCall(tuple(metadata), client_certificate, str(info.spiffe_id), validity_seconds)
        )
        if b.required_bearer is not None and not client_certificate:
            presented = dict(metadata).get("authorization")
            if presented != f"Bearer {b.required_bearer}":
                raise _Rejected(grpc.StatusCode.UNAUTHENTICATED, "bad or missing token")
        if b.fail_with is not None:
            raise _Rejected(b.fail_with, "configured failure")
        pki = b.foreign_pki or self.pki
        now = self.clock.now()
        ttl = b.ttl or (timedelta(seconds=validity_seconds) if validity_seconds else DEFAULT_TTL)
        not_before, not_after = now - BACKDATE, now + ttl
        if b.expired:
            not_before, not_after = now - timedelta(hours=2), now - timedelta(minutes=1)
        subject_key = generate_private_key(KeyType.EC_P256) if b.substitute_key else None
        leaf_key_public = subject_key.public_key() if subject_key else info.public_key
        spec = LeafSpec(
            spiffe_id=b.issue_for or info.spiffe_id,
            public_key=leaf_key_public,
            not_before=not_before,
            not_after=not_after,
        )
        leaf = leaf_builder(spec, pki.intermediate).sign(
            pki.intermediate_key, signature_hash_for(pki.intermediate_key)
        )
        pem = [
            certificates_to_pem([leaf]),
            certificates_to_pem([pki.intermediate]),
            certificates_to_pem([pki.root]),
        ]
        return pem[:1] if b.single_element else pem

    # --- the agent's CsrSigner protocol (in process, no network) -----------------------------
    def create_certificate(
        self, csr_pem: str, *, ttl: timedelta | None, auth: CallAuth, roots_pem: bytes
    ) -> list[str]:
        from node_agent.errors import CaRejectedError

        try:
            return self.sign(
                csr_pem,
                int(ttl.total_seconds()) if ttl else 0,
                auth.metadata,
                client_certificate=auth.client_chain_pem is not None,
            )
        except _Rejected as exc:
            raise CaRejectedError(exc.message, code=exc.code.name) from exc

    # --- as a gRPC server ----------------------------------------------------------------------
    def serve(self) -> ServedFakeCa:
        """Serve the Istio CSR API on 127.0.0.1: a TLS port and an mTLS port (like the CA)."""
        chain, key = self.pki.server_certificate(now=datetime.now(UTC))
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        istio_ca_pb2_grpc.add_IstioCertificateServiceServicer_to_server(_Servicer(self), server)
        ports = [
            server.add_secure_port(
                "127.0.0.1:0",
                grpc.ssl_server_credentials(
                    [(key, chain)], root_certificates=self.pki.root_pem, require_client_auth=mtls
                ),
            )
            for mtls in (False, True)
        ]
        server.start()
        return ServedFakeCa(server, f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}")


class _Servicer(istio_ca_pb2_grpc.IstioCertificateServiceServicer):  # type: ignore[misc]
    def __init__(self, ca: FakeCa) -> None:
        self._ca = ca
        self._lock = threading.Lock()

    def CreateCertificate(self, request, context):  # type: ignore[no-untyped-def]
        metadata = tuple((m.key, m.value) for m in context.invocation_metadata())
        auth = context.auth_context()
        with self._lock:
            try:
                chain = self._ca.sign(
                    request.csr,
                    request.validity_duration,
                    metadata,
                    client_certificate=bool(auth.get("x509_pem_cert")),
                )
            except _Rejected as exc:
                context.abort(exc.code, exc.message)
        return istio_ca_pb2.IstioCertificateResponse(cert_chain=chain)


@dataclass
class ServedFakeCa:
    server: grpc.Server
    address: str
    mtls_address: str

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)
