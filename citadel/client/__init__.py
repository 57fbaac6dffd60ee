"""A small typed client for the CSR API, for workloads that bootstrap without the agent.

client = CsrClient("localhost:15012", root_pem, BearerTokenFile(Path("/var/run/token")))
svid = client.request(SpiffeId.parse("spiffe://cluster.local/ns/a/sa/b"), key)
"""

from __future__ import annotations

from citadel.client.credentials import (
    BearerToken,
    BearerTokenFile,
    ClientCertificate,
    Credentials,
    JoinToken,
)
from citadel.client.csr_client import CsrClient, IssuedSvid
from citadel.client.errors import (
    ClientError,
    CsrRejectedError,
    InvalidResponseError,
    ServerUnreachableError,
)

__all__ = [
    "BearerToken",
    "BearerTokenFile",
    "ClientCertificate",
    "ClientError",
    "Credentials",
    "CsrClient",
    "CsrRejectedError",
    "InvalidResponseError",
    "IssuedSvid",
    "JoinToken",
    "ServerUnreachableError",
]
