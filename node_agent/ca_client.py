"""The CA's CSR API as the agent calls it: istio.v1.auth.IstioCertificateService over TLS.

The CA is trusted through the configured root bundle only. Calls that present a client
certificate go to ``mtls_address`` when one is configured (the CA serves mTLS callers on
a port that requires client certificates, token callers on one that does not). A fresh
channel is opened per call (renewals are rare, and the client certificate changes with
each rotation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import grpc

from citadel._proto import istio_ca_pb2, istio_ca_pb2_grpc
from node_agent.credentials import CallAuth
from node_agent.errors import CaRejectedError, CaUnreachableError

__all__ = ["CaClient", "CaEndpoint"]

_log = logging.getLogger(__name__)

_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
MAX_DETAIL = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class CaEndpoint:
    """Where the CA is and how to reach it."""

    address: str
    mtls_address: str | None = None
    server_name: str | None = None
    timeout: timedelta = timedelta(seconds=10)
    cluster_id: str | None = None

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("CA address is empty")
        if self.timeout <= timedelta(0):
            raise ValueError("CA timeout must be positive")


class CaClient:
    def __init__(self, endpoint: CaEndpoint) -> None:
        self.endpoint = endpoint

    def create_certificate(
        self, csr_pem: str, *, ttl: timedelta | None, auth: CallAuth, roots_pem: bytes
    ) -> list[str]:
        """Send a CSR and return the chain the CA answered with (unverified).

        Raises:
            CaUnreachableError: the CA could not be reached or the call timed out.
            CaRejectedError: the CA answered with an error status.
        """
        credentials = grpc.ssl_channel_credentials(
            root_certificates=roots_pem,
            private_key=auth.client_key_pem,
            certificate_chain=auth.client_chain_pem,
        )
        options: list[tuple[str, str | int]] = [("grpc.enable_retries", 0)]
        if self.endpoint.server_name:
            options.append(("grpc.ssl_target_name_override", self.endpoint.server_name))
        metadata = list(auth.metadata)
        if self.endpoint.cluster_id:
            metadata.append(("clusterid", self.endpoint.cluster_id))
        request = istio_ca_pb2.IstioCertificateRequest(
            csr=csr_pem,
            validity_duration=int(ttl.total_seconds()) if ttl is not None else 0,
        )
        address = self.endpoint.address
        if auth.client_chain_pem is not None and self.endpoint.mtls_address:
            address = self.endpoint.mtls_address
        with grpc.secure_channel(address, credentials, options=options) as channel:
            stub = istio_ca_pb2_grpc.IstioCertificateServiceStub(channel)
            try:
                response = stub.CreateCertificate(
                    request,
                    metadata=metadata,
                    timeout=self.endpoint.timeout.total_seconds(),
                    wait_for_ready=False,
                )
            except grpc.RpcError as exc:
                raise _classify(exc, address) from exc
        return list(response.cert_chain)


def _classify(exc: grpc.RpcError, address: str) -> CaUnreachableError | CaRejectedError:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else None
    detail = (details or "").replace("\n", " ")[:MAX_DETAIL]
    if code in _UNREACHABLE:
        return CaUnreachableError(f"CA at {address} is unreachable ({code.name}: {detail})")
    return CaRejectedError(
        f"CA at {address} refused the CSR ({code.name}: {detail})", code=code.name
    )
