"""Unix attestation of real peer processes: ids, names, groups, executable, and races."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citadel.identity.selectors import Selector
from node_agent.attestation import (
    AttestationError,
    ExeDigestCache,
    PeerGoneError,
    PeerProcess,
    ProcFs,
    UnixAttestor,
)
from tests.unit.node_agent.attestation.helpers import Listener, listener

WORKLOAD_UID = 1000
WORKLOAD_GID = 1000
EXTRA_GID = 2000  # a bare gid: nothing is created on the system


@pytest.fixture
def peers() -> Iterator[Listener]:
    with listener() as state:
        yield state


def sha256_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def unix(kind: str, detail: object) -> Selector:
    return Selector.of("unix", kind, str(detail))


def test_this_process_is_attested_with_ids_names_path_and_digest() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX)
    with ours, theirs:
        peer = PeerProcess.from_socket(ours, ProcFs())
        try:
            selectors = UnixAttestor().attest(peer)
        finally:
            peer.close()
    exe = os.path.realpath(sys.executable)
    expected = {
        unix("uid", os.geteuid()),
        unix("gid", os.getegid()),
        unix("user", pwd.getpwuid(os.geteuid()).pw_name),
        unix("group", grp.getgrgid(os.getegid()).gr_name),
        unix("path", exe),
        unix("sha256", sha256_of(exe)),
    }
    assert expected <= selectors
    extra = {s for s in selectors - expected}
    assert {s.kind for s in extra} <= {"supplementary_gid", "supplementary_group"}


def test_process_of_another_user_gets_that_users_selectors(peers: Listener) -> None:
    child = peers.spawn(uid=WORKLOAD_UID, gid=WORKLOAD_GID, groups=(EXTRA_GID,))
    peer = PeerProcess.from_socket(child.connection, ProcFs())
    selectors = UnixAttestor().attest(peer)
    peer.close()
    child.send()
    assert {
        unix("uid", WORKLOAD_UID),
        unix("gid", WORKLOAD_GID),
        unix("supplementary_gid", EXTRA_GID),
    } <= selectors
    assert unix("uid", 0) not in selectors
    assert unix("gid", 0) not in selectors
    user = next((p.pw_name for p in pwd.getpwall() if p.pw_uid == WORKLOAD_UID), None)
    assert (
        (unix("user", user) in selectors) if user else not any(s.kind == "user" for s in selectors)
    )


def test_names_the_system_does_not_know_are_left_out(peers: Listener) -> None:
    child = peers.spawn(uid=WORKLOAD_UID, gid=WORKLOAD_GID, groups=(EXTRA_GID,))
    peer = PeerProcess.from_socket(child.connection, ProcFs())
    attestor = UnixAttestor(user_names=lambda uid: None, group_names=lambda gid: None)
    selectors = attestor.attest(peer)
    peer.close()
    assert not any(s.kind in {"user", "group", "supplementary_group"} for s in selectors)


def test_names_that_no_selector_could_hold_are_left_out_not_fatal(peers: Listener) -> None:
    child = peers.spawn(uid=WORKLOAD_UID, gid=WORKLOAD_GID)
    peer = PeerProcess.from_socket(child.connection, ProcFs())
    selectors = UnixAttestor(user_names=lambda uid: "bad name with spaces").attest(peer)
    peer.close()
    assert unix("uid", WORKLOAD_UID) in selectors
    assert not any(s.kind == "user" for s in selectors)


def test_peer_that_exited_before_accept_is_refused(peers: Listener) -> None:
    process = peers.start(uid=WORKLOAD_UID)
    process.communicate("go\n", timeout=10)  # it exits; it is reaped
    connection, _ = peers.sock.accept()
    with connection, pytest.raises(PeerGoneError):
        PeerProcess.from_socket(connection, ProcFs())


def test_peer_that_exits_before_attestation_is_refused(peers: Listener) -> None:
    child = peers.spawn(uid=WORKLOAD_UID)
    peer = PeerProcess.from_socket(child.connection, ProcFs())
    child.process.communicate("go\n", timeout=10)
    with pytest.raises(PeerGoneError):
        UnixAttestor().attest(peer)
    peer.close()


def test_exited_but_unreaped_peer_is_refused(peers: Listener) -> None:
    """A zombie keeps its /proc entry and PID; its pidfd still says it exited."""
    child = peers.spawn(uid=WORKLOAD_UID)
    peer = PeerProcess.from_socket(child.connection, ProcFs())
    child.send()
    os.waitid(os.P_PID, child.process.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    assert not peer.is_alive()
    with pytest.raises(PeerGoneError):
        UnixAttestor().attest(peer)
    peer.close()


class _ReusedPidProcFs(ProcFs):
    """Reports a new start time from the n-th read on: the PID now names another process."""

    def __init__(self, change_after: int) -> None:
        super().__init__()
        self._reads = 0
        self._change_after = change_after

    def start_time(self, pid: int) -> int:
        self._reads += 1
        value = super().start_time(pid)
        return value + 1 if self._reads > self._change_after else value


@pytest.mark.parametrize(
    ("change_after", "match"),
    [(1, "now belongs to another process"), (2, "was reused during attestation")],
    ids=["reused-before-attestation", "reused-during-attestation"],
)
def test_pid_reuse_is_detected_by_the_start_time(
    peers: Listener, change_after: int, match: str
) -> None:
    child = peers.spawn(uid=WORKLOAD_UID)
    procfs = _ReusedPidProcFs(change_after)
    peer = PeerProcess.from_socket(child.connection, procfs)  # read #1
    with pytest.raises(PeerGoneError, match=match):
        UnixAttestor(procfs=procfs).attest(peer)
    peer.close()


def test_process_that_changed_user_after_connecting_is_refused(peers: Listener) -> None:
    child = peers.spawn(then=f"setuid:{WORKLOAD_UID}")  # connects as root
    peer = PeerProcess.from_socket(child.connection, ProcFs())
    child.send()
    child.expect("switched")
    with pytest.raises(AttestationError, match="changed its user or group"):
        UnixAttestor().attest(peer)
    peer.close()


def test_process_that_execs_is_attested_as_what_it_runs_now(peers: Listener) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    binary = os.path.realpath(sleep)
    child = peers.spawn(uid=WORKLOAD_UID, then=f"exec:{binary}")
    peer = PeerProcess.from_socket(child.connection, ProcFs())
    child.send()
    attestor = UnixAttestor()
    for _ in range(200):  # the exec happens asynchronously
        selectors = attestor.attest(peer)
        if unix("path", binary) in selectors:
            break
        time.sleep(0.01)
    assert {unix("path", binary), unix("sha256", sha256_of(binary))} <= selectors
    peer.close()


def test_executable_digest_is_cached_across_attestations() -> None:
    digests = ExeDigestCache()
    attestor = UnixAttestor(digests=digests)
    ours, theirs = socket.socketpair(socket.AF_UNIX)
    with ours, theirs:
        peer = PeerProcess.from_socket(ours, ProcFs())
        first = attestor.attest(peer)
        second = attestor.attest(peer)
        peer.close()
    assert first == second
    assert digests.hashed == 1


def test_attesting_after_the_connection_closed_is_refused() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX)
    with ours, theirs:
        peer = PeerProcess.from_socket(ours, ProcFs())
    peer.close()
    with pytest.raises(PeerGoneError, match="connection of the peer process is closed"):
        UnixAttestor().attest(peer)
