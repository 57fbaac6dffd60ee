"""Reading a process's facts from procfs (Linux): start time, credentials, executable.

Every reader maps a vanished process to :class:`PeerGoneError` and anything else unreadable
or unparsable to :class:`AttestationError`; none of them lets an ``OSError`` escape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from node_agent.attestation.errors import AttestationError, PeerGoneError

__all__ = ["ProcFs", "ProcessStatus"]

_START_TIME_FIELD = 22  # stat(5): starttime, in clock ticks after boot
_MAX_PROC_FILE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    """The effective ids and supplementary groups of a process (from ``status``)."""

    euid: int
    egid: int
    supplementary_gids: tuple[int, ...]


@contextmanager
def _proc_errors(pid: int, what: str) -> Iterator[None]:
    try:
        yield
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise PeerGoneError(f"process {pid} is gone (reading its {what})") from exc
    except OSError as exc:
        raise AttestationError(f"cannot read the {what} of process {pid}: {exc.strerror}") from exc


class ProcFs:
    """Reads ``<root>/<pid>/...``; ``root`` is ``/proc`` except in tests."""

    def __init__(self, root: Path = Path("/proc")) -> None:
        self._root = root

    def _path(self, pid: int, name: str) -> Path:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ValueError("pid must be a positive int")
        return self._root / str(pid) / name

    def _read(self, pid: int, name: str) -> str:
        with _proc_errors(pid, name), self._path(pid, name).open("rb") as handle:
            data = handle.read(_MAX_PROC_FILE)
        return data.decode("utf-8", "replace")

    def start_time(self, pid: int) -> int:
        """The process start time in clock ticks since boot; unique per PID incarnation."""
        text = self._read(pid, "stat")
        # The command name (field 2) is in parentheses and may itself hold ')' or spaces.
        end = text.rfind(")")
        fields = text[end + 2 :].split() if end >= 0 else []
        index = _START_TIME_FIELD - 3  # fields after "pid (comm)" start at field 3
        if len(fields) <= index or not fields[index].isdigit():
            raise AttestationError(f"stat of process {pid} is malformed")
        return int(fields[index])

    def status(self, pid: int) -> ProcessStatus:
        values: dict[str, list[str]] = {}
        for line in self._read(pid, "status").splitlines():
            key, sep, rest = line.partition(":")
            if sep and key in ("Uid", "Gid", "Groups"):
                values[key] = rest.split()
        try:
            uids, gids = values["Uid"], values["Gid"]
            return ProcessStatus(
                euid=int(uids[1]),
                egid=int(gids[1]),
                supplementary_gids=tuple(int(g) for g in values.get("Groups", [])),
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise AttestationError(f"status of process {pid} is malformed") from exc

    def exe_path(self, pid: int) -> str:
        """The path of the executable (``readlink exe``); may end in ``" (deleted)"``."""
        with _proc_errors(pid, "executable path"):
            return os.readlink(self._path(pid, "exe"))

    def open_exe(self, pid: int) -> BinaryIO:
        """The executable file itself, even when it was deleted or replaced on disk."""
        with _proc_errors(pid, "executable"):
            return self._path(pid, "exe").open("rb")
