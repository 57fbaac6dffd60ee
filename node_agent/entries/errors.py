"""Errors of the agent's entry machinery (besides the agent-wide ones in node_agent.errors).

AgentError
└── AgentApiResponseError   "invalid_ca_response"   the CA's answer breaks the protocol
"""

from __future__ import annotations

from node_agent.errors import AgentError

__all__ = ["AgentApiResponseError"]


class AgentApiResponseError(AgentError):
    """The CA answered, but not as the agent API says it must (wrong item count or order,
    an undecodable bundle). Nothing from such an answer is used."""

    kind = "invalid_ca_response"
