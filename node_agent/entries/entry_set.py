"""The registration entries this agent holds, at the CA's store revision.

Updates come from :meth:`EntrySet.apply` only (one SyncEntries answer at a time); readers
get immutable snapshots. Entries are kept in entry-id order, so "the first matching entry"
(a workload's default identity) is the same on every agent and after every restart.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from citadel.identity.registration import RegistrationEntry
from node_agent.entries.records import EntryUpdate

__all__ = ["EntryDiff", "EntrySet"]


@dataclass(frozen=True, slots=True)
class EntryDiff:
    """What one update changed: entries added or replaced, and ids removed."""

    upserted: tuple[RegistrationEntry, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.upserted or self.removed)


class EntrySet:
    """Thread-safe; one writer (the sync loop), many readers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, RegistrationEntry] = {}
        self._ordered: tuple[RegistrationEntry, ...] = ()
        self._revision = 0

    @property
    def revision(self) -> int:
        return self._revision

    def entries(self) -> tuple[RegistrationEntry, ...]:
        """Every entry, in entry-id order."""
        return self._ordered

    def get(self, entry_id: str) -> RegistrationEntry | None:
        with self._lock:
            return self._entries.get(entry_id)

    def apply(self, update: EntryUpdate) -> EntryDiff:
        """Apply one SyncEntries answer and move to its revision."""
        with self._lock:
            before = dict(self._entries)
            if update.full:
                self._entries = {}
            for entry_id, _ in update.tombstones:
                self._entries.pop(entry_id, None)
            for entry in update.entries:
                self._entries[entry.entry_id] = entry
            self._ordered = tuple(self._entries[k] for k in sorted(self._entries))
            self._revision = update.revision
            upserted = tuple(e for e in self._ordered if before.get(e.entry_id) != e)
            removed = tuple(sorted(k for k in before if k not in self._entries))
        return EntryDiff(upserted, removed)
