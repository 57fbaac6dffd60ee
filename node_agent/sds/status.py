"""The agent's one mapping from typed errors to gRPC status codes.

The agent may not import the CA server's mapping (``citadel.server.status``), so its own
gRPC endpoints (SDS, and later the Workload API) map their errors here and nowhere else.
"""

from __future__ import annotations

import grpc

from citadel.errors import CitadelError
from node_agent.errors import SdsRequestError, SecretValidationError, UnknownResourceError

__all__ = ["status_for"]

_CODES: tuple[tuple[type[CitadelError], grpc.StatusCode], ...] = (
    (SdsRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnknownResourceError, grpc.StatusCode.NOT_FOUND),
    (SecretValidationError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(error: CitadelError) -> tuple[grpc.StatusCode, str]:
    """The status code and the (short, safe) message for ``error``."""
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code, error.message
    return grpc.StatusCode.INTERNAL, "internal error"
