"""Finds secrets in text that must never hold one: log lines and log files.

Three kinds of leak are looked for:

* a PEM private key (``-----BEGIN ... PRIVATE KEY-----``, any flavour, encrypted or not);
* a JWT-looking string: two base64url JSON segments (``eyJ...``) and a signature part;
* the exact value of a join token the test session created (they are random strings, so
  only the known values can be recognised; :meth:`SecretScanner.remember_token` adds one).

A finding never repeats the secret: it names where it was seen and what kind it is, with
the matched text redacted down to a short prefix.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Finding", "SecretScanner", "redact"]

PRIVATE_KEY = re.compile(r"PRIVATE KEY-----")
# header.payload.signature, the first two base64url JSON objects ("{" encodes as "eyJ").
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
MIN_TOKEN_CHARS = 16
MAX_FINDINGS = 200
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Finding:
    """One leak: ``kind`` is private_key, jwt or join_token; ``where`` says in what."""

    kind: str
    where: str
    excerpt: str

    def describe(self) -> str:
        return f"{self.kind} in {self.where}: {self.excerpt}"


def redact(secret: str) -> str:
    """The first few characters of ``secret`` and its length, never the whole value."""
    return f"{secret[:6]}... ({len(secret)} chars)"


class SecretScanner:
    """Collects findings from any number of texts; safe to call from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: set[str] = set()
        self._findings: list[Finding] = []
        self._dropped = 0

    # --- known secrets -------------------------------------------------------------------
    def remember_token(self, token: str) -> None:
        """A join token value created during the session: its appearance is a leak."""
        if isinstance(token, str) and len(token) >= MIN_TOKEN_CHARS:
            with self._lock:
                self._tokens.add(token)

    # --- scanning ------------------------------------------------------------------------
    def findings_in(self, text: str, where: str) -> list[Finding]:
        """The leaks in ``text`` (nothing is recorded)."""
        found: list[Finding] = []
        match = PRIVATE_KEY.search(text)
        if match is not None:
            line = text.count("\n", 0, match.start()) + 1
            found.append(Finding("private_key", f"{where} (line {line})", "PEM private key"))
        for jwt_match in JWT.finditer(text):
            line = text.count("\n", 0, jwt_match.start()) + 1
            found.append(Finding("jwt", f"{where} (line {line})", redact(jwt_match.group())))
            break
        with self._lock:
            tokens = list(self._tokens)
        for token in tokens:
            at = text.find(token)
            if at >= 0:
                line = text.count("\n", 0, at) + 1
                found.append(Finding("join_token", f"{where} (line {line})", redact(token)))
        return found

    def scan_text(self, text: str, where: str) -> list[Finding]:
        """Scan ``text`` and record what it holds; returns the new findings."""
        found = self.findings_in(text, where)
        if found:
            with self._lock:
                room = MAX_FINDINGS - len(self._findings)
                self._findings.extend(found[: max(0, room)])
                self._dropped += max(0, len(found) - max(0, room))
        return found

    def scan_file(self, path: Path, where: str | None = None) -> list[Finding]:
        """Scan a (log) file; a missing or unreadable file holds nothing."""
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES)
        except OSError:
            return []
        return self.scan_text(data.decode("utf-8", errors="replace"), where or str(path))

    def scan_files(self, paths: Iterable[Path]) -> list[Finding]:
        found: list[Finding] = []
        for path in paths:
            found.extend(self.scan_file(path))
        return found

    # --- results -------------------------------------------------------------------------
    @property
    def findings(self) -> list[Finding]:
        with self._lock:
            return list(self._findings)

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def forget(self, findings: Iterable[Finding]) -> None:
        """Drop findings a test planted on purpose (so they do not fail the session)."""
        planted = set(findings)
        with self._lock:
            self._findings = [f for f in self._findings if f not in planted]
