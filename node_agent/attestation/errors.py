"""Errors of workload attestation.

AgentError
└── AttestationError      "attestation_failed"  the caller's process cannot be attested
    └── PeerGoneError     "peer_gone"           it exited, or its PID now names another process
"""

from __future__ import annotations

from node_agent.errors import AgentError

__all__ = ["AttestationError", "PeerGoneError"]


class AttestationError(AgentError):
    """The process on the other end of the socket could not be attested; no identity."""

    kind = "attestation_failed"


class PeerGoneError(AttestationError):
    """The caller exited (or was replaced under its PID) before attestation finished."""

    kind = "peer_gone"
