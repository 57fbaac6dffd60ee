"""Which trust-bundle version each agent has acknowledged (how far a new root has spread).

The agent-facing service feeds :meth:`BundleAcknowledgements.record` whenever an agent
shows it holds a bundle (for example after answering its CSR with a chain that carries the
bundle, or when an agent reports the version it pushed to Envoy). ``status`` compares the
counts with the current :func:`bundle_version`. Nothing fed means "unknown", never zero.

A server process can persist a snapshot (:func:`write_snapshot`) that the ``citadel ca
rotate status`` command, a separate process, reads back (:func:`read_snapshot`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography import x509

from citadel.ca.private_files import write_private_file
from citadel.identity.pem import certificate_fingerprint

__all__ = [
    "ACK_SNAPSHOT_FILE",
    "AckSnapshot",
    "BundleAcknowledgements",
    "InMemoryBundleAcks",
    "bundle_version",
    "read_snapshot",
    "write_snapshot",
]

ACK_SNAPSHOT_FILE = "bundle-acks.json"
MAX_AGENTS = 200_000
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
MAX_ID_CHARS = 2048


def bundle_version(roots: Iterable[x509.Certificate]) -> str:
    """A stable name for a set of roots: SHA-256 over their sorted SHA-256 fingerprints
    (one per line), first 16 hex digits. Order and duplicates do not matter, so an agent
    can compute the same value from the roots it received."""
    fingerprints = sorted({certificate_fingerprint(root) for root in roots})
    return hashlib.sha256("\n".join(fingerprints).encode("ascii")).hexdigest()[:16]


@dataclass(frozen=True)
class AckSnapshot:
    """How many agents last acknowledged each bundle version."""

    versions: Mapping[str, int] = field(default_factory=dict)
    taken_at: datetime | None = None

    @property
    def agents(self) -> int:
        return sum(self.versions.values())

    def acknowledged(self, version: str) -> int:
        return self.versions.get(version, 0)


class BundleAcknowledgements(Protocol):
    def record(self, agent_id: str, version: str, at: datetime) -> None: ...

    def snapshot(self) -> AckSnapshot | None:
        """None while nothing has been recorded (the count is unknown)."""
        ...


class InMemoryBundleAcks:
    """The latest acknowledged version per agent, forgetting agents silent for ``forget_after``."""

    def __init__(self, *, forget_after: timedelta = timedelta(days=2)) -> None:
        self._latest: dict[str, tuple[str, datetime]] = {}
        self._forget_after = forget_after
        self._lock = threading.Lock()

    def record(self, agent_id: str, version: str, at: datetime) -> None:
        if not agent_id or len(agent_id) > MAX_ID_CHARS or not version or len(version) > 64:
            raise ValueError("agent id and bundle version must be short non-empty strings")
        with self._lock:
            if agent_id not in self._latest and len(self._latest) >= MAX_AGENTS:
                self._forget(at)
                if len(self._latest) >= MAX_AGENTS:
                    return
            self._latest[agent_id] = (version, at)

    def _forget(self, now: datetime) -> None:
        cutoff = now - self._forget_after
        for agent, (_, seen) in list(self._latest.items()):
            if seen < cutoff:
                del self._latest[agent]

    def snapshot(self, now: datetime | None = None) -> AckSnapshot | None:
        with self._lock:
            if now is not None:
                self._forget(now)
            if not self._latest:
                return None
            counts = Counter(version for version, _ in self._latest.values())
            return AckSnapshot(dict(counts), now)


def write_snapshot(path: Path, snapshot: AckSnapshot | None, now: datetime) -> None:
    """Atomically write the counts (nothing when unknown) for other processes to read."""
    if snapshot is None:
        return
    document = {"taken_at": now.isoformat(), "versions": dict(snapshot.versions)}
    write_private_file(path, json.dumps(document).encode("utf-8"), overwrite=True, mode=0o640)


def read_snapshot(path: Path, now: datetime, *, max_age: timedelta) -> AckSnapshot | None:
    """The counts another process wrote, or None when absent, unreadable or stale."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SNAPSHOT_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_SNAPSHOT_BYTES:
        return None
    with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
        document = json.loads(data)
        taken_at = datetime.fromisoformat(document["taken_at"])
        versions = {str(k): int(v) for k, v in document["versions"].items() if isinstance(v, int)}
        if taken_at.tzinfo is None or now - taken_at > max_age:
            return None
        return AckSnapshot(versions, taken_at)
    return None
