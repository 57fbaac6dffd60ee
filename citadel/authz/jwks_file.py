"""JWKS from a file, re-read when its size, mtime or inode change (one ``stat`` per lookup).

A malformed new version is refused and the previous keys are kept; a file that never held
a valid set fails closed (:class:`JwksUnavailableError`).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from citadel.authz.errors import JwksError, JwksUnavailableError
from citadel.authz.jwk_set import MAX_JWKS_BYTES, JwkKey, JwkSet
from citadel.authz.policy import JwksFormat

__all__ = ["FileJwks"]

_log = logging.getLogger(__name__)


class FileJwks:
    """Keys from a file, re-read when it changes (checked with one ``stat`` per lookup)."""

    def __init__(self, path: str | os.PathLike[str], fmt: JwksFormat = JwksFormat.JWKS) -> None:
        self._path = Path(path)
        self._fmt = fmt
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: JwkSet | None = None

    def _reload_if_changed(self) -> None:
        try:
            st = self._path.stat()
        except OSError as exc:
            if self._keys is None:
                raise JwksUnavailableError(f"JWKS file {self._path} is unreadable") from exc
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                if st.st_size > MAX_JWKS_BYTES:
                    raise JwksError(f"JWKS is larger than {MAX_JWKS_BYTES} bytes")
                keys = JwkSet.parse(self._path.read_bytes(), self._fmt)
            except (OSError, JwksError) as exc:
                self._stamp = stamp
                _log.warning("JWKS file %s refused, keeping previous keys: %s", self._path, exc)
                return
            self._keys, self._stamp = keys, stamp
            _log.info("JWKS file %s loaded (%d keys)", self._path, len(keys.keys))

    def key(self, kid: str) -> JwkKey:
        self._reload_if_changed()
        keys = self._keys
        if keys is None:
            raise JwksUnavailableError(f"JWKS file {self._path} has no valid key set")
        return keys.get(kid)
