"""Errors of the CSR client.

ClientError                  "client_error"
├── CsrRejectedError         "csr_rejected"        the CA answered with an error status
├── ServerUnreachableError   "server_unreachable"  no answer (down, TLS failure, timeout)
├── InvalidResponseError     "invalid_response"    the answer is not a usable chain
└── CredentialsError         "invalid_credentials" a token or key file cannot be used
"""

from __future__ import annotations

from datetime import timedelta

from citadel.errors import CitadelError

__all__ = [
    "ClientError",
    "CredentialsError",
    "CsrRejectedError",
    "InvalidResponseError",
    "ServerUnreachableError",
]


class ClientError(CitadelError):
    kind = "client_error"


class CsrRejectedError(ClientError):
    """The CA refused the request.

    Attributes:
        code: the gRPC status code name (``PERMISSION_DENIED``).
        details: the CA's short message.
        retry_after: the CA's retry hint, for RESOURCE_EXHAUSTED.
    """

    kind = "csr_rejected"

    def __init__(self, code: str, details: str, *, retry_after: timedelta | None = None) -> None:
        super().__init__(f"the CA refused the request ({code}): {details}")
        self.code = code
        self.details = details
        self.retry_after = retry_after


class ServerUnreachableError(ClientError):
    kind = "server_unreachable"


class InvalidResponseError(ClientError):
    kind = "invalid_response"


class CredentialsError(ClientError, ValueError):
    kind = "invalid_credentials"
