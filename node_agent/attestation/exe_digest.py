"""SHA-256 of executables, cached by file identity so a busy node hashes each binary once.

The cache key is (device, inode, size, mtime, ctime) of the *open* file, so a binary that
is replaced or modified on disk is hashed again. A file that changes while it is being
hashed yields no digest at all (a torn hash must never match a registration).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from typing import BinaryIO

__all__ = ["ExeDigestCache"]

_Key = tuple[int, int, int, int, int]
_CHUNK = 1 << 20


def _key(stat: os.stat_result) -> _Key:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class ExeDigestCache:
    def __init__(self, *, max_entries: int = 512, max_file_bytes: int = 1 << 30) -> None:
        if max_entries <= 0 or max_file_bytes <= 0:
            raise ValueError("cache limits must be positive")
        self._max_entries = max_entries
        self._max_file_bytes = max_file_bytes
        self._entries: OrderedDict[_Key, str] = OrderedDict()
        self._lock = threading.Lock()
        self.hashed = 0  # how many files were actually read (observability and tests)

    def digest(self, handle: BinaryIO) -> str | None:
        """Lowercase hex SHA-256 of the open file, or None (too large, changed meanwhile)."""
        before = os.fstat(handle.fileno())
        key = _key(before)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                return cached
        if before.st_size > self._max_file_bytes:
            return None
        handle.seek(0)
        hasher = hashlib.sha256()
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
        digest = hasher.hexdigest()
        if _key(os.fstat(handle.fileno())) != key:
            return None
        with self._lock:
            self.hashed += 1
            self._entries[key] = digest
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return digest
