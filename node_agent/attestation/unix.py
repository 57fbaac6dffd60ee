"""Unix workload attestation: a pinned peer process becomes a set of ``unix:`` selectors.

Selectors produced (see :mod:`citadel.identity.selectors`):

* ``unix:uid``, ``unix:gid``: the ids from ``SO_PEERCRED``; the process must still have
  them as its effective ids (a process that changed credentials after connecting is
  refused rather than attested under either set);
* ``unix:user``, ``unix:group``: their names, when the system knows them;
* ``unix:supplementary_gid``, ``unix:supplementary_group``: from ``status`` ``Groups``;
* ``unix:path``: the executable (``readlink /proc/<pid>/exe``);
* ``unix:sha256``: the executable's SHA-256, read through ``/proc/<pid>/exe`` (so the
  file actually running, even if replaced on disk) and cached by file identity.

Race safety: the process start time must equal the one seen at ``accept()`` both before
and after the reads, and the peer's pidfd must still show it alive after them. A live
process keeps its PID, so every read above described the process that connected.
"""

from __future__ import annotations

import grp
import logging
import pwd
from collections.abc import Callable

from citadel.identity.registration_errors import InvalidSelectorError
from citadel.identity.selectors import Selector
from node_agent.attestation.errors import AttestationError, PeerGoneError
from node_agent.attestation.exe_digest import ExeDigestCache
from node_agent.attestation.peer import PeerProcess
from node_agent.attestation.procfs import ProcessStatus, ProcFs

__all__ = ["UnixAttestor"]

_log = logging.getLogger(__name__)

NameLookup = Callable[[int], str | None]


def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return None


class UnixAttestor:
    """Attests pinned peer processes; safe to call from several threads."""

    def __init__(
        self,
        *,
        procfs: ProcFs | None = None,
        digests: ExeDigestCache | None = None,
        user_names: NameLookup = user_name,
        group_names: NameLookup = group_name,
    ) -> None:
        self.procfs = procfs if procfs is not None else ProcFs()
        self._digests = digests if digests is not None else ExeDigestCache()
        self._user_names = user_names
        self._group_names = group_names

    def attest(self, peer: PeerProcess) -> frozenset[Selector]:
        """The selectors of the peer process.

        Raises:
            PeerGoneError: the process exited or its PID was reused.
            AttestationError: procfs cannot be read, or the process changed credentials.
        """
        credentials = peer.credentials
        pid = credentials.pid
        with peer.pinned():
            if self.procfs.start_time(pid) != peer.start_time:
                raise PeerGoneError(f"PID {pid} now belongs to another process")
            status = self.procfs.status(pid)
            exe_path = self.procfs.exe_path(pid)
            with self.procfs.open_exe(pid) as exe:
                digest = self._digests.digest(exe)
            if self.procfs.start_time(pid) != peer.start_time:
                raise PeerGoneError(f"PID {pid} was reused during attestation")
            if not peer.is_alive():
                raise PeerGoneError(f"process {pid} exited during attestation")
        if (status.euid, status.egid) != (credentials.uid, credentials.gid):
            raise AttestationError(
                f"process {pid} changed its user or group after it connected; refusing it"
            )
        return self._selectors(peer, status, exe_path, digest)

    def _selectors(
        self, peer: PeerProcess, status: ProcessStatus, exe_path: str, digest: str | None
    ) -> frozenset[Selector]:
        uid, gid = peer.credentials.uid, peer.credentials.gid
        facts: list[tuple[str, object]] = [("uid", uid), ("gid", gid)]
        facts.append(("user", self._user_names(uid)))
        facts.append(("group", self._group_names(gid)))
        for supplementary in status.supplementary_gids:
            facts.append(("supplementary_gid", supplementary))
            facts.append(("supplementary_group", self._group_names(supplementary)))
        facts.append(("path", exe_path))
        facts.append(("sha256", digest))
        selectors: set[Selector] = set()
        for kind, detail in facts:
            if detail is None:
                continue
            try:
                selectors.add(Selector.of("unix", kind, str(detail)))
            except InvalidSelectorError as exc:  # e.g. a user name no entry could name
                _log.debug("pid %d: no unix:%s selector: %s", peer.credentials.pid, kind, exc)
        return frozenset(selectors)
