"""Workload attestation: who is on the other end of the Workload API socket."""

from __future__ import annotations

from node_agent.attestation.errors import AttestationError, PeerGoneError
from node_agent.attestation.exe_digest import ExeDigestCache
from node_agent.attestation.peer import PeerCredentials, PeerProcess, read_peer_credentials
from node_agent.attestation.procfs import ProcessStatus, ProcFs
from node_agent.attestation.unix import UnixAttestor

__all__ = [
    "AttestationError",
    "ExeDigestCache",
    "PeerCredentials",
    "PeerGoneError",
    "PeerProcess",
    "ProcFs",
    "ProcessStatus",
    "UnixAttestor",
    "read_peer_credentials",
]
