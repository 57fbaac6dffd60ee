"""A CSR client that behaves like istio-agent's Citadel CA client, from our own .proto.

What it does the way the agent does:
  * a TLS channel trusting only the CA root bundle;
  * ``authorization: Bearer <token>`` (a projected service-account JWT) and an optional
    ``clusterid`` header on every call;
  * ``metadata`` Struct with ``CertSigner`` (when a signer is named) and
    ``ImpersonatedIdentity`` (node agents acting for a workload);
  * ``validity_duration`` in seconds;
  * it rejects an answer whose chain has one element or fewer.

It can also present a client certificate (renewal over mTLS) instead of, or besides, a token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import struct_pb2

from citadel._proto import istio_ca_pb2, istio_ca_pb2_grpc
from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.keys import KeyType, PrivateKey, generate_private_key
from citadel.identity.spiffe_id import SpiffeId

__all__ = ["AgentChainError", "IstioAgentClient", "new_workload_csr"]


class AgentChainError(Exception):
    """The agent refuses the CA's answer (as istio-agent does: "invalid empty CertChain")."""


def new_workload_csr(
    spiffe_id: SpiffeId | str, key_type: KeyType = KeyType.EC_P256
) -> tuple[PrivateKey, str]:
    """A fresh key and the PEM CSR the agent would send for it."""
    identity = spiffe_id if isinstance(spiffe_id, SpiffeId) else SpiffeId.parse(spiffe_id)
    key = generate_private_key(key_type)
    return key, csr_to_pem(build_csr(key, identity))


@dataclass
class IstioAgentClient:
    """One agent's connection to the CA.

    Attributes:
        target: ``127.0.0.1:<port>``.
        root_cert_pem: the CA roots the agent trusts.
        token: the bearer token, or None to send no ``authorization`` header.
        cluster_id: sent as ``clusterid`` when not None (istio-agent sends it by default).
        cert_signer: sent as ``metadata.CertSigner`` when not None.
        client_chain_pem / client_key_pem: an existing SVID for mTLS.
        extra_metadata: more call metadata (e.g. ``citadel-join-token``).
        server_name: the name checked in the CA's certificate when ``target`` is an address.
    """

    target: str
    root_cert_pem: bytes
    token: str | None = field(default=None, repr=False)
    cluster_id: str | None = "Kubernetes"
    cert_signer: str | None = None
    client_chain_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)
    extra_metadata: tuple[tuple[str, str], ...] = ()
    server_name: str | None = "localhost"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.root_cert_pem,
            private_key=self.client_key_pem,
            certificate_chain=self.client_chain_pem,
        )
        options = [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
        self._channel = grpc.secure_channel(self.target, credentials, options=options)
        self._stub = istio_ca_pb2_grpc.IstioCertificateServiceStub(self._channel)

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        metadata: list[tuple[str, str]] = []
        if self.token is not None:
            metadata.append(("authorization", f"Bearer {self.token}"))
        if self.cluster_id is not None:
            metadata.append(("clusterid", self.cluster_id))
        metadata.extend(self.extra_metadata)
        return tuple(metadata)

    def request(
        self,
        csr_pem: str,
        *,
        ttl_seconds: int = 0,
        impersonated_identity: str | None = None,
        metadata_fields: dict[str, object] | None = None,
    ) -> istio_ca_pb2.IstioCertificateResponse:
        """Send one CreateCertificate call and return the raw answer (no chain check)."""
        fields: dict[str, object] = dict(metadata_fields or {})
        if self.cert_signer is not None:
            fields["CertSigner"] = self.cert_signer
        if impersonated_identity is not None:
            fields["ImpersonatedIdentity"] = impersonated_identity
        struct = struct_pb2.Struct()
        struct.update(fields)  # type: ignore[arg-type]
        request = istio_ca_pb2.IstioCertificateRequest(
            csr=csr_pem, validity_duration=ttl_seconds, metadata=struct
        )
        response: istio_ca_pb2.IstioCertificateResponse = self._stub.CreateCertificate(
            request, metadata=self.call_metadata(), timeout=self.timeout
        )
        return response

    def csr_sign(
        self, csr_pem: str, ttl_seconds: int = 0, *, impersonated_identity: str | None = None
    ) -> list[str]:
        """The agent's CSRSign: the chain, leaf first, root last.

        Raises:
            grpc.RpcError: the CA refused.
            AgentChainError: the chain has fewer than two elements.
        """
        response = self.request(
            csr_pem, ttl_seconds=ttl_seconds, impersonated_identity=impersonated_identity
        )
        chain = list(response.cert_chain)
        if len(chain) <= 1:
            raise AgentChainError("invalid empty CertChain")
        return chain

    def close(self) -> None:
        self._channel.close()
