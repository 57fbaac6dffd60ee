"""Errors of the node agent.

CitadelError
└── AgentError                       (agent_error)
    ├── ConfigError                  (invalid_config)      bad config file / env override
    ├── CredentialError              (credential_error)    token file unreadable or garbage
    ├── CaUnreachableError           (ca_unreachable)      CA down, timeout, TLS failure
    ├── CaRejectedError              (ca_rejected)         CA answered with an error status
    ├── IssuedChainError             (invalid_issued_chain) CA answer fails our checks
    ├── TrustBundleError             (trust_bundle_unavailable) configured roots unusable
    ├── BundleRejectedError          (bundle_rejected)     the CA's bundle/CRLs fail our checks
    ├── SecretValidationError        (invalid_secret)      a secret unfit to hand to Envoy
    ├── UnknownResourceError         (unknown_resource)    an SDS name the agent cannot serve
    ├── SdsRequestError              (invalid_sds_request) a malformed SDS request (no node...)
    ├── SocketPathError              (socket_path)         socket path too long / not a socket
    │   └── SocketInUseError         (socket_in_use)       another live process listens there
    └── StatusUnavailableError       (status_unavailable)  the status endpoint cannot be reached
"""

from __future__ import annotations

from citadel.errors import CitadelError

__all__ = [
    "AgentError",
    "BundleRejectedError",
    "CaRejectedError",
    "CaUnreachableError",
    "ConfigError",
    "CredentialError",
    "IssuedChainError",
    "SdsRequestError",
    "SecretValidationError",
    "SocketInUseError",
    "SocketPathError",
    "StatusUnavailableError",
    "TrustBundleError",
    "UnknownResourceError",
]


class AgentError(CitadelError):
    kind = "agent_error"


class ConfigError(AgentError):
    """The configuration file or an environment override is invalid; the message says where."""

    kind = "invalid_config"


class CredentialError(AgentError):
    """The credential to present to the CA cannot be read or is malformed."""

    kind = "credential_error"


class CaUnreachableError(AgentError):
    """The CA could not be reached (connection refused, timeout, TLS handshake failure)."""

    kind = "ca_unreachable"


class CaRejectedError(AgentError):
    """The CA answered the CSR with an error status.

    Attributes:
        code: the gRPC status name the CA returned (``"UNAUTHENTICATED"``...).
    """

    kind = "ca_rejected"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class IssuedChainError(AgentError):
    """The chain the CA returned fails verification; it is never used."""

    kind = "invalid_issued_chain"


class TrustBundleError(AgentError):
    """The configured root bundle file cannot be read or holds no usable root."""

    kind = "trust_bundle_unavailable"


class SecretValidationError(AgentError):
    """A secret would be rejected by (or mislead) Envoy; it is never pushed."""

    kind = "invalid_secret"


class UnknownResourceError(AgentError):
    """An SDS resource name that the agent does not serve."""

    kind = "unknown_resource"


class SdsRequestError(AgentError):
    """An SDS request breaks the protocol (no node on the first request, wrong type URL)."""

    kind = "invalid_sds_request"


class SocketPathError(AgentError):
    """The SDS socket path cannot be used (too long, or occupied by a non-socket file)."""

    kind = "socket_path"


class SocketInUseError(SocketPathError):
    """Another live process is listening on the socket path."""

    kind = "socket_in_use"


class StatusUnavailableError(AgentError):
    """The agent's local status endpoint could not be reached."""

    kind = "status_unavailable"


class BundleRejectedError(AgentError):
    """A trust bundle or CRL set from the CA fails the agent's checks; it is not used."""

    kind = "bundle_rejected"
