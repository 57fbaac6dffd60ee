"""Serialise issuance writes of several worker processes on one SQLite database.

SQLite lets one writer in at a time; a writer that finds the database locked sleeps in its
busy handler in growing steps (1, 2, 5, 10 … 100 ms), so under load most waits are far
longer than the lock is actually held, and the latency tail grows. Taking an exclusive
``flock`` on a file next to the database around each batch makes the waiters queue in the
kernel instead, which wakes the next one the moment the lock is released.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from citadel.store.records import IssuanceInput

__all__ = ["FileLockedRecorder", "IssuanceRecorder"]


class IssuanceRecorder(Protocol):
    def record_issuances(self, batch: Sequence[IssuanceInput]) -> object: ...


class FileLockedRecorder:
    """Calls ``recorder.record_issuances`` while holding an exclusive lock on ``lock_file``."""

    def __init__(self, recorder: IssuanceRecorder, lock_file: Path) -> None:
        self._recorder = recorder
        self._fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._local = threading.Lock()

    def record_issuances(self, batch: Sequence[IssuanceInput]) -> object:
        with self._local:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                return self._recorder.record_issuances(batch)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)
