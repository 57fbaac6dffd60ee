"""Authz errors as gRPC and HTTP statuses, read from the project's one table.

The codes themselves live in :mod:`citadel.status`; this module only adds the HTTP view that
ext_authz needs (401 for a bad or missing credential, 403 for a denial, 500 otherwise).
"""

from __future__ import annotations

import grpc

from citadel.authz.errors import AuthzError
from citadel.status import status_for

__all__ = ["client_message", "grpc_code_for", "http_status_for"]

_HTTP_FOR_GRPC = {
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
}


def grpc_code_for(error: AuthzError) -> grpc.StatusCode:
    """UNAUTHENTICATED for a bad/missing credential, PERMISSION_DENIED for a denial."""
    return status_for(error).code


def http_status_for(error: AuthzError) -> int:
    """The HTTP status for an error: 401, 403, or 500."""
    return _HTTP_FOR_GRPC.get(grpc_code_for(error), 500)


def client_message(error: AuthzError) -> str:
    """The short text a client sees; the detail goes to the log only."""
    return status_for(error).client_message(error)
