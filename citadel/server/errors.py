"""Errors raised while serving the CSR API.

Authentication and authorization failures extend the authz layer's tree, so one
``except AuthenticationError`` (or ``AccessDeniedError``) covers every authenticator::

    citadel.authz.errors.AuthenticationError        -> UNAUTHENTICATED
    ├── NoCredentialError        "no_credential"        the call carries no credential at all
    └── CredentialRejectedError  "credential_rejected"  a credential was presented and refused
    citadel.authz.errors.AccessDeniedError          -> PERMISSION_DENIED
    ├── IdentityMismatchError    "identity_mismatch"    the CSR names another identity
    └── ImpersonationDeniedError "impersonation_denied" the caller may not act for that identity
    ServerError                  "server_error"
    ├── InvalidRequestError      "invalid_request"      malformed request fields
    │   └── RequestTooLargeError "request_too_large"    the CSR is over 64 KiB
    ├── RequestUnreadableError   "request_unreadable"   the transport refused the request body
    ├── RateLimitedError         "rate_limited"         -> RESOURCE_EXHAUSTED (+ retry hint)
    ├── ServingCertificateError  "serving_certificate"  the server cannot get a TLS certificate
    └── ServerConfigError        "invalid_server_config" (also a ValueError)

The mapping to gRPC status codes lives in :mod:`citadel.status`.
"""

from __future__ import annotations

from datetime import timedelta

from citadel.authz.errors import AccessDeniedError, AuthenticationError
from citadel.errors import CitadelError

__all__ = [
    "CredentialRejectedError",
    "IdentityMismatchError",
    "ImpersonationDeniedError",
    "InvalidRequestError",
    "NoCredentialError",
    "RateLimitedError",
    "RequestTooLargeError",
    "RequestUnreadableError",
    "ServerConfigError",
    "ServerError",
    "ServingCertificateError",
]


class NoCredentialError(AuthenticationError):
    """No authenticator found a credential it understands in the call."""

    kind = "no_credential"


class CredentialRejectedError(AuthenticationError):
    """A credential was presented and refused (the message says why; it never holds the
    credential itself).

    Attributes:
        authenticator: the name of the authenticator that refused it.
    """

    kind = "credential_rejected"

    def __init__(self, message: str, *, authenticator: str = "") -> None:
        super().__init__(message)
        self.authenticator = authenticator


class IdentityMismatchError(AccessDeniedError):
    kind = "identity_mismatch"


class ImpersonationDeniedError(AccessDeniedError):
    kind = "impersonation_denied"


class ServerError(CitadelError):
    kind = "server_error"


class InvalidRequestError(ServerError, ValueError):
    """A request field is malformed (bad metadata, negative lifetime, ...)."""

    kind = "invalid_request"


class RequestTooLargeError(InvalidRequestError):
    kind = "request_too_large"


class RequestUnreadableError(ServerError):
    """The transport refused the request body (over the size cap, or the call broke)."""

    kind = "request_unreadable"


class RateLimitedError(ServerError):
    """A rate limit was hit.

    Attributes:
        retry_after: how long the caller should wait before retrying.
        scope: ``"global"`` or ``"identity"``.
    """

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: timedelta, scope: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.scope = scope


class ServingCertificateError(ServerError):
    kind = "serving_certificate"


class ServerConfigError(ServerError, ValueError):
    kind = "invalid_server_config"
