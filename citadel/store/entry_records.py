"""What the repository hands out about registration entries besides the entries themselves.

Live entries are :class:`citadel.identity.registration.RegistrationEntry` values (their
``revision`` is the store revision of their last change). A deleted entry leaves an
:class:`EntryTombstone`; :class:`EntryChanges` is one consistent read of everything that
changed after a revision, which is how agents (through the CA) sync incrementally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from citadel.identity.registration import RegistrationEntry
from citadel.identity.spiffe_id import SpiffeId

__all__ = ["EntryChanges", "EntryTombstone"]


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryTombstone:
    """A deleted entry: its id, the revision of the deletion and when it happened."""

    entry_id: str
    revision: int
    deleted_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryChanges:
    """Everything that changed in ``(since_revision, revision]``, read in one snapshot.

    Attributes:
        revision: the store's current revision (the last change).
        entries: live entries created or changed in the window, oldest change first.
        tombstones: entries deleted in the window.
        moved: ``(revision, SPIFFE ID)`` pairs, oldest first: at that revision an entry
            with that ID was created, deleted, renamed or re-parented, so the entries
            *below* the ID may have entered or left an agent's subtree without changing
            themselves.
    """

    since_revision: int
    revision: int
    entries: tuple[RegistrationEntry, ...]
    tombstones: tuple[EntryTombstone, ...]
    moved: tuple[tuple[int, SpiffeId], ...]
