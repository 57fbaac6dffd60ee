"""The gRPC status of every error the Workload API can meet, and what the client is told.

The node agent cannot import :mod:`citadel.server.status` (the layering rule keeps the CA
server out of the agent), so the Workload API keeps this one table. Clients get a short
message; the log gets the detail.
"""

from __future__ import annotations

import grpc

from citadel.errors import CitadelError
from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.jwt_errors import InvalidJwtSvidError
from node_agent.attestation.errors import AttestationError
from node_agent.errors import CaRejectedError, CaUnreachableError
from node_agent.workload_api.errors import (
    InvalidWorkloadRequestError,
    MissingSecurityHeaderError,
    NoIdentityError,
    UnidentifiedCallerError,
)

__all__ = ["status_for"]

_PASS_THROUGH: tuple[tuple[type[CitadelError], grpc.StatusCode], ...] = (
    (MissingSecurityHeaderError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidWorkloadRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidJwtSvidError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidSpiffeIdError, grpc.StatusCode.INVALID_ARGUMENT),
    (NoIdentityError, grpc.StatusCode.PERMISSION_DENIED),
)
_FIXED: tuple[tuple[type[CitadelError], grpc.StatusCode, str], ...] = (
    (UnidentifiedCallerError, grpc.StatusCode.PERMISSION_DENIED, "caller is not identified"),
    (AttestationError, grpc.StatusCode.PERMISSION_DENIED, "caller could not be attested"),
    (CaUnreachableError, grpc.StatusCode.UNAVAILABLE, "identity provider is unavailable"),
    (CaRejectedError, grpc.StatusCode.UNAVAILABLE, "identity provider refused the request"),
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and the client-facing message for ``exc``."""
    for cls, code in _PASS_THROUGH:
        if isinstance(exc, cls):
            return code, exc.message  # these messages name the rule, never a secret
    for cls, code, message in _FIXED:
        if isinstance(exc, cls):
            return code, message
    return grpc.StatusCode.INTERNAL, "internal error"
