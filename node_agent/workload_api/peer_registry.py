"""Which pinned peer process is behind each connection the gRPC server sees.

The attesting proxy opens one upstream connection per accepted workload connection and
binds its end to a fresh abstract-namespace address before connecting; the gRPC server
reports that address as ``context.peer()`` (``unix-abstract:<name>``). An address is
registered only while the proxy's socket holds it (registered after ``bind``, removed
before ``close``), and the kernel lets only one socket hold an address, so no other
connection can present a registered address. Addresses carry a per-process random token
and a counter, so they are never reused while the agent runs.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading

from node_agent.attestation.peer import PeerProcess

__all__ = ["PeerRegistry"]

_PEER_PREFIX = "unix-abstract:"


class PeerRegistry:
    def __init__(self) -> None:
        self._token = secrets.token_hex(8)
        self._counter = itertools.count(1)
        self._peers: dict[str, PeerProcess] = {}
        self._lock = threading.Lock()

    def new_address(self) -> str:
        """A fresh abstract socket name (without the leading NUL)."""
        return f"citadel-wl-{os.getpid()}-{self._token}-{next(self._counter)}"

    def register(self, address: str, peer: PeerProcess) -> None:
        with self._lock:
            if address in self._peers:
                raise ValueError("address is already registered")
            self._peers[address] = peer

    def unregister(self, address: str) -> None:
        with self._lock:
            self._peers.pop(address, None)

    def lookup(self, grpc_peer: str) -> PeerProcess | None:
        """The peer behind a gRPC ``context.peer()`` string, or None when unknown."""
        if not grpc_peer.startswith(_PEER_PREFIX):
            return None
        with self._lock:
            return self._peers.get(grpc_peer[len(_PEER_PREFIX) :])

    def __len__(self) -> int:
        with self._lock:
            return len(self._peers)
