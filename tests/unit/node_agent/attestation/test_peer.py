"""Pinning the peer of a Unix connection: SO_PEERCRED, the pidfd, and its lifetime."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

import pytest

from node_agent.attestation import (
    AttestationError,
    PeerCredentials,
    PeerGoneError,
    PeerProcess,
    ProcFs,
    read_peer_credentials,
)
from tests.unit.node_agent.attestation.helpers import Listener, listener


@pytest.fixture
def peers() -> Iterator[Listener]:
    with listener() as state:
        yield state


def test_peer_credentials_of_a_socketpair_are_our_own() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX)
    with ours, theirs:
        assert read_peer_credentials(ours) == PeerCredentials(
            os.getpid(), os.geteuid(), os.getegid()
        )


def test_peer_credentials_record_the_connecting_processes_ids(peers: Listener) -> None:
    child = peers.spawn(uid=1001, gid=1002)
    assert read_peer_credentials(child.connection) == PeerCredentials(child.process.pid, 1001, 1002)


def test_credentials_of_a_non_unix_socket_are_an_attestation_error() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        pytest.raises(AttestationError, match="only for Unix sockets"),
    ):
        read_peer_credentials(tcp)


class _InvisiblePeer:
    """A socket whose peer lives in another PID namespace (the kernel reports pid 0)."""

    family = socket.AF_UNIX

    def getsockopt(self, level: int, option: int, size: int = 0) -> bytes:
        return struct.pack("iII", 0, 1000, 1000)


def test_peer_outside_our_pid_namespace_is_refused() -> None:
    with pytest.raises(AttestationError, match="not visible in this PID namespace"):
        PeerProcess.from_socket(_InvisiblePeer(), ProcFs())  # type: ignore[arg-type]


def test_pinned_peer_reports_alive_until_it_exits(peers: Listener) -> None:
    child = peers.spawn(uid=1000)
    peer = PeerProcess.from_socket(child.connection, ProcFs())
    assert peer.is_alive()
    child.process.communicate("go\n", timeout=10)
    assert not peer.is_alive()
    peer.close()


def test_pin_outlives_close_while_an_attestation_uses_it() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX)
    with ours, theirs:
        peer = PeerProcess.from_socket(ours, ProcFs())
    with peer.pinned():
        peer.close()
        assert peer._alive()  # the pidfd is still open inside the pinned block
    with pytest.raises(PeerGoneError):
        peer.is_alive()
    peer.close()  # idempotent


def test_pidfd_is_closed_with_the_peer() -> None:
    before = set(os.listdir("/proc/self/fd"))
    ours, theirs = socket.socketpair(socket.AF_UNIX)
    with ours, theirs:
        peer = PeerProcess.from_socket(ours, ProcFs())
        peer.close()
    assert set(os.listdir("/proc/self/fd")) <= before
