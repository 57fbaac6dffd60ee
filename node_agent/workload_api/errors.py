"""Errors of the Workload API endpoint (their gRPC codes are in :mod:`.status`).

AgentError
└── WorkloadApiError                 "workload_api_error"
    ├── MissingSecurityHeaderError   "missing_security_header"   no workload.spiffe.io: true
    ├── InvalidWorkloadRequestError  "invalid_workload_request"  a request field is bad
    ├── UnidentifiedCallerError      "unidentified_caller"       no pinned peer for the call
    └── NoIdentityError              "no_identity"               no entry matches the caller
"""

from __future__ import annotations

from node_agent.errors import AgentError

__all__ = [
    "InvalidWorkloadRequestError",
    "MissingSecurityHeaderError",
    "NoIdentityError",
    "UnidentifiedCallerError",
    "WorkloadApiError",
]


class WorkloadApiError(AgentError):
    kind = "workload_api_error"


class MissingSecurityHeaderError(WorkloadApiError):
    """The call lacks the ``workload.spiffe.io: true`` metadata (SPIFFE Workload Endpoint)."""

    kind = "missing_security_header"


class InvalidWorkloadRequestError(WorkloadApiError, ValueError):
    """A mandatory request field is empty or a field is malformed or too large."""

    kind = "invalid_workload_request"


class UnidentifiedCallerError(WorkloadApiError):
    """The call did not come through the attesting proxy (or its connection is gone)."""

    kind = "unidentified_caller"


class NoIdentityError(WorkloadApiError):
    """The caller is entitled to no identity (or not to the one it asked for)."""

    kind = "no_identity"
