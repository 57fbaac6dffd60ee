"""The SPIFFE Workload API endpoint of the node agent."""

from __future__ import annotations

from node_agent.workload_api.errors import (
    InvalidWorkloadRequestError,
    MissingSecurityHeaderError,
    NoIdentityError,
    UnidentifiedCallerError,
    WorkloadApiError,
)
from node_agent.workload_api.server import ENDPOINT_ENV, WorkloadApiConfig, WorkloadApiServer
from node_agent.workload_api.source import (
    IdentitySource,
    SourceSubscription,
    WorkloadIdentity,
    X509SvidMaterial,
)

__all__ = [
    "ENDPOINT_ENV",
    "IdentitySource",
    "InvalidWorkloadRequestError",
    "MissingSecurityHeaderError",
    "NoIdentityError",
    "SourceSubscription",
    "UnidentifiedCallerError",
    "WorkloadApiConfig",
    "WorkloadApiError",
    "WorkloadApiServer",
    "WorkloadIdentity",
    "X509SvidMaterial",
]
