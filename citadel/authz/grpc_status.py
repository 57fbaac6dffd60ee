"""The one mapping from authz errors to gRPC status codes (and, derived from it, HTTP codes).

Meant to be folded into ``citadel.server.status`` later; until then the interceptors and
the ext_authz server call these functions and nothing else decides a status code.
"""

from __future__ import annotations

import grpc

from citadel.authz.errors import AccessDeniedError, AuthenticationError, AuthzError, PolicyError

__all__ = ["client_message", "grpc_code_for", "http_status_for"]

_HTTP_FOR_GRPC = {
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.FAILED_PRECONDITION: 500,
    grpc.StatusCode.INTERNAL: 500,
}


def grpc_code_for(error: AuthzError) -> grpc.StatusCode:
    """UNAUTHENTICATED for a bad/missing credential, PERMISSION_DENIED for a denial."""
    if isinstance(error, AuthenticationError):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(error, AccessDeniedError):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(error, PolicyError):
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


def http_status_for(error: AuthzError) -> int:
    """The HTTP status for an error: 401, 403, or 500."""
    return _HTTP_FOR_GRPC.get(grpc_code_for(error), 500)


def client_message(error: AuthzError) -> str:
    """The short text a client sees; the detail goes to the log only."""
    code = grpc_code_for(error)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return "unauthenticated"
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return "permission denied"
    return "authorization failed"
