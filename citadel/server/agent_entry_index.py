"""Which registration entries each node agent may have, and what changed for it.

:class:`EntryIndex` keeps the live entries in memory, refreshed incrementally from the store
by revision (one cheap query per call when nothing changed), and answers:

* :meth:`EntryIndex.authorized`: the entries under an agent (its children, recursively:
  :func:`citadel.identity.registration.descendants_of`), by entry id;
* :meth:`EntryIndex.sync`: what an agent at ``since`` must apply to reach the current
  revision: changed entries, tombstones, the new revision (or the full set when it is too
  far behind or ahead).

An entry can enter or leave an agent's subtree without changing itself, when an entry
above it is created, deleted, renamed or re-parented. The store logs those SPIFFE IDs as
*moved*; every entry below a moved ID is re-sent (if still authorized) or tombstoned (if
not). Tombstones are idempotent: an agent ignores ids it does not hold, so the index errs
on the side of sending one (they carry only the opaque entry id).
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from citadel.identity.registration import RegistrationEntry, descendants_of
from citadel.identity.spiffe_id import SpiffeId
from citadel.store.entry_records import EntryChanges

__all__ = ["EntryIndex", "EntrySource", "EntrySync"]

MAX_CACHED_AGENTS = 4096


class EntrySource(Protocol):
    """What the index reads from the repository."""

    def entry_revision(self) -> int: ...

    def entry_changes(self, since_revision: int) -> EntryChanges: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class EntrySync:
    """The answer to one agent's sync.

    Attributes:
        entries: entries to add or replace (the whole set when ``full``).
        tombstones: ``(entry_id, revision)`` of entries to drop.
        revision: the revision the agent is at after applying this.
        full: ``entries`` is the complete set; the agent drops everything else.
    """

    entries: tuple[RegistrationEntry, ...]
    tombstones: tuple[tuple[str, int], ...]
    revision: int
    full: bool


@dataclass(frozen=True, slots=True)
class _Authorized:
    ordered: tuple[RegistrationEntry, ...]
    by_id: Mapping[str, RegistrationEntry]


@dataclass
class _Snapshot:
    """One immutable view at ``revision`` (replaced, never changed, on refresh)."""

    revision: int
    horizon: int
    live: tuple[RegistrationEntry, ...]
    tombstones: tuple[tuple[int, str], ...]  # (revision, entry_id), ascending
    moved: tuple[tuple[int, SpiffeId], ...]  # (revision, spiffe_id), ascending
    by_parent: Mapping[SpiffeId, tuple[RegistrationEntry, ...]]
    cache: dict[SpiffeId, _Authorized] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def authorized(self, agent: SpiffeId) -> _Authorized:
        with self.lock:
            found = self.cache.get(agent)
        if found is not None:
            return found
        ordered = tuple(descendants_of(agent, self.live))
        result = _Authorized(ordered, MappingProxyType({e.entry_id: e for e in ordered}))
        with self.lock:
            if len(self.cache) >= MAX_CACHED_AGENTS:
                self.cache.clear()
            self.cache[agent] = result
        return result

    def below(self, roots: Iterable[SpiffeId]) -> set[str]:
        """Ids of every entry under the given SPIFFE IDs (children, grandchildren...)."""
        found: set[str] = set()
        expanded: set[SpiffeId] = set()
        frontier = list(dict.fromkeys(roots))
        while frontier:
            parent = frontier.pop()
            if parent in expanded:
                continue
            expanded.add(parent)
            for entry in self.by_parent.get(parent, ()):
                if entry.entry_id not in found:
                    found.add(entry.entry_id)
                    frontier.append(entry.spiffe_id)
        return found


def _by_parent(
    live: Iterable[RegistrationEntry],
) -> Mapping[SpiffeId, tuple[RegistrationEntry, ...]]:
    grouped: dict[SpiffeId, list[RegistrationEntry]] = defaultdict(list)
    for entry in live:
        grouped[entry.parent_id].append(entry)
    return MappingProxyType({k: tuple(v) for k, v in grouped.items()})


def _after(log: tuple[tuple[int, object], ...], since: int) -> int:
    """Index of the first log item with a revision above ``since``."""
    return bisect.bisect_right(log, since, key=lambda item: item[0])


class EntryIndex:
    """The live entries of the store, in memory. Thread-safe.

    Args:
        source: the repository (``entry_revision``, ``entry_changes``).
        max_log: tombstones and moves kept for incremental syncs; older ones are dropped
            and agents that far behind get the full set instead.
    """

    def __init__(self, source: EntrySource, *, max_log: int = 100_000) -> None:
        if max_log < 2:
            raise ValueError("max_log must be at least 2")
        self._source = source
        self._max_log = max_log
        self._lock = threading.Lock()
        self._live: dict[str, RegistrationEntry] = {}
        self._tombstones: list[tuple[int, str]] = []
        self._moved: list[tuple[int, SpiffeId]] = []
        self._horizon = 0
        self._snapshot = _Snapshot(0, 0, (), (), (), MappingProxyType({}))

    @property
    def revision(self) -> int:
        return self._snapshot.revision

    def refresh(self) -> _Snapshot:
        """Catch up with the store (one query when nothing changed)."""
        current = self._source.entry_revision()
        snapshot = self._snapshot
        if current == snapshot.revision:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if current == snapshot.revision:
                return snapshot
            if current < snapshot.revision:  # the store went back (restored): start over
                self._live.clear()
                self._tombstones.clear()
                self._moved.clear()
                self._horizon = 0
                snapshot = _Snapshot(0, 0, (), (), (), MappingProxyType({}))
            self._apply(self._source.entry_changes(snapshot.revision))
            return self._snapshot

    def _apply(self, changes: EntryChanges) -> None:
        for entry in changes.entries:
            self._live[entry.entry_id] = entry
        for tombstone in changes.tombstones:
            self._live.pop(tombstone.entry_id, None)
            self._tombstones.append((tombstone.revision, tombstone.entry_id))
        self._moved.extend(changes.moved)
        self._tombstones.sort(key=lambda item: item[0])
        excess = len(self._tombstones) + len(self._moved) - self._max_log
        if excess > 0:
            self._compact(excess)
        live = tuple(self._live.values())
        self._snapshot = _Snapshot(
            revision=changes.revision,
            horizon=self._horizon,
            live=live,
            tombstones=tuple(self._tombstones),
            moved=tuple(self._moved),
            by_parent=_by_parent(live),
        )

    def _compact(self, excess: int) -> None:
        merged = sorted([rev for rev, _ in self._tombstones] + [rev for rev, _ in self._moved])
        cut = merged[min(len(merged) - 1, max(excess, len(merged) // 2) - 1)]
        self._tombstones = [t for t in self._tombstones if t[0] > cut]
        self._moved = [m for m in self._moved if m[0] > cut]
        self._horizon = max(self._horizon, cut)

    # --- queries ------------------------------------------------------------------------
    def authorized(self, agent: SpiffeId) -> Mapping[str, RegistrationEntry]:
        """The entries under ``agent`` (current as of this call), by entry id."""
        return self.refresh().authorized(agent).by_id

    def authorized_entries(self, agent: SpiffeId) -> tuple[RegistrationEntry, ...]:
        """The entries under ``agent``, breadth first."""
        return self.refresh().authorized(agent).ordered

    def sync(self, agent: SpiffeId, since_revision: int) -> EntrySync:
        """What ``agent``, holding the entries of ``since_revision``, must apply."""
        if since_revision < 0:
            raise ValueError("since_revision must not be negative")
        snapshot = self.refresh()
        if since_revision == snapshot.revision:
            return EntrySync(entries=(), tombstones=(), revision=snapshot.revision, full=False)
        authorized = snapshot.authorized(agent)
        if (
            since_revision == 0
            or since_revision > snapshot.revision
            or since_revision < snapshot.horizon
        ):
            return EntrySync(
                entries=authorized.ordered, tombstones=(), revision=snapshot.revision, full=True
            )
        moved = snapshot.moved[_after(snapshot.moved, since_revision) :]
        affected = snapshot.below(spiffe_id for _, spiffe_id in moved)
        entries = tuple(
            e for e in authorized.ordered if e.revision > since_revision or e.entry_id in affected
        )
        gone: dict[str, int] = {
            entry_id: revision
            for revision, entry_id in snapshot.tombstones[
                _after(snapshot.tombstones, since_revision) :
            ]
        }
        for entry in snapshot.live:
            if entry.entry_id not in authorized.by_id and (
                entry.revision > since_revision or entry.entry_id in affected
            ):
                gone[entry.entry_id] = entry.revision
        return EntrySync(
            entries=entries,
            tombstones=tuple(gone.items()),
            revision=snapshot.revision,
            full=False,
        )
