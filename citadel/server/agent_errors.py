"""Errors of the node-agent API (``citadel.agent.v1.AgentService``).

They extend existing families, so :mod:`citadel.status` maps them without a new
entry::

    citadel.authz.errors.AccessDeniedError          -> PERMISSION_DENIED
    ├── EntryNotAuthorizedError  "entry_not_authorized"  not an entry under the calling agent
    └── EntryIdentityMismatchError "entry_identity_mismatch"  the CSR names another identity
    citadel.server.errors.InvalidRequestError       -> INVALID_ARGUMENT
    └── AgentRequestError        "invalid_agent_request"  a malformed or oversized request
"""

from __future__ import annotations

from citadel.authz.errors import AccessDeniedError
from citadel.server.errors import InvalidRequestError

__all__ = ["AgentRequestError", "EntryIdentityMismatchError", "EntryNotAuthorizedError"]


class EntryNotAuthorizedError(AccessDeniedError):
    """The entry does not exist, or is not a descendant of the calling agent (the two are
    deliberately indistinguishable to the caller)."""

    kind = "entry_not_authorized"


class EntryIdentityMismatchError(AccessDeniedError):
    """The CSR asks for a SPIFFE ID (or DNS name) that is not the entry's."""

    kind = "entry_identity_mismatch"


class AgentRequestError(InvalidRequestError):
    """A request field is malformed, missing, or too large."""

    kind = "invalid_agent_request"
