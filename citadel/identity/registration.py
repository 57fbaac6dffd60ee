"""Registration entries: which workload (by its selectors) gets which SPIFFE ID.

An entry *matches* a workload when every one of the entry's selectors is among the
workload's attested selectors (the entry's set is a subset of the workload's). An entry
without selectors would match every process, so it cannot be built.

Entries form a tree through ``parent_id``: a node agent serves the entries whose parent is
its own SPIFFE ID, and, recursively, the entries whose parent is one of those.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from citadel.identity.registration_errors import InvalidRegistrationEntryError
from citadel.identity.selectors import Selector
from citadel.identity.spiffe_id import SpiffeId

__all__ = ["RegistrationEntry", "descendants_of", "entries_for"]

_ENTRY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_DNS_NAME = re.compile(
    r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
)
MAX_HINT_CHARS = 256


@dataclass(frozen=True, kw_only=True, slots=True)
class RegistrationEntry:
    """Maps a set of selectors, under a parent (a node agent or another entry), to an ID.

    Raises:
        InvalidRegistrationEntryError: a field breaks a rule; the message names it.
        TypeError: a field has the wrong type.
    """

    entry_id: str
    spiffe_id: SpiffeId
    parent_id: SpiffeId
    selectors: frozenset[Selector]
    ttl: timedelta | None = None
    dns_names: tuple[str, ...] = ()
    revision: int = 0
    hint: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.entry_id, str) or not _ENTRY_ID.match(self.entry_id):
            raise InvalidRegistrationEntryError(
                "entry id must be 1-128 characters of letters, digits, '.', '_', ':' or '-'"
            )
        if not isinstance(self.spiffe_id, SpiffeId) or not isinstance(self.parent_id, SpiffeId):
            raise TypeError("spiffe_id and parent_id must be SpiffeId")
        if self.spiffe_id.is_trust_domain_id:
            raise InvalidRegistrationEntryError("entry SPIFFE ID must have a path")
        if self.spiffe_id == self.parent_id:
            raise InvalidRegistrationEntryError("an entry cannot be its own parent")
        if not isinstance(self.selectors, frozenset) or not all(
            isinstance(s, Selector) for s in self.selectors
        ):
            raise TypeError("selectors must be a frozenset of Selector")
        if not self.selectors:
            raise InvalidRegistrationEntryError(
                "entry needs at least one selector (an empty set would match every workload)"
            )
        if self.ttl is not None and (
            not isinstance(self.ttl, timedelta) or self.ttl <= timedelta(0)
        ):
            raise InvalidRegistrationEntryError("entry TTL must be a positive duration")
        for name in self.dns_names:
            if not isinstance(name, str) or len(name) > 253 or not _DNS_NAME.match(name):
                raise InvalidRegistrationEntryError(
                    f"entry DNS name {str(name)[:64]!r} is not a lowercase DNS name"
                )
        if isinstance(self.revision, bool) or not isinstance(self.revision, int):
            raise TypeError("revision must be an int")
        if self.revision < 0:
            raise InvalidRegistrationEntryError("entry revision must not be negative")
        if not isinstance(self.hint, str) or len(self.hint) > MAX_HINT_CHARS:
            raise InvalidRegistrationEntryError(
                f"entry hint must be a string of at most {MAX_HINT_CHARS} characters"
            )

    def matches(self, workload_selectors: frozenset[Selector]) -> bool:
        """True when every selector of this entry is among ``workload_selectors``."""
        return self.selectors <= workload_selectors


def entries_for(
    workload_selectors: Iterable[Selector], entries: Iterable[RegistrationEntry]
) -> list[RegistrationEntry]:
    """The entries a workload with ``workload_selectors`` is entitled to, in input order."""
    attested = frozenset(workload_selectors)
    return [entry for entry in entries if entry.selectors <= attested]


def descendants_of(
    agent_id: SpiffeId, entries: Iterable[RegistrationEntry]
) -> list[RegistrationEntry]:
    """The entries under ``agent_id``: its children, their children, and so on.

    Each entry appears once, breadth first (children before grandchildren), in input
    order within a level. Cycles in the parent links are harmless.
    """
    by_parent: dict[SpiffeId, list[RegistrationEntry]] = defaultdict(list)
    for entry in entries:
        by_parent[entry.parent_id].append(entry)
    result: list[RegistrationEntry] = []
    seen_entries: set[str] = set()
    expanded: set[SpiffeId] = {agent_id}
    frontier = [agent_id]
    while frontier:
        next_frontier: list[SpiffeId] = []
        for parent in frontier:
            for entry in by_parent.get(parent, ()):
                if entry.entry_id in seen_entries:
                    continue
                seen_entries.add(entry.entry_id)
                result.append(entry)
                if entry.spiffe_id not in expanded:
                    expanded.add(entry.spiffe_id)
                    next_frontier.append(entry.spiffe_id)
        frontier = next_frontier
    return result
