"""The agent's copy of its entries: incremental updates, tombstones, full replacement."""

from __future__ import annotations

from citadel.identity.registration import RegistrationEntry
from citadel.identity.selectors import parse_selectors
from citadel.identity.spiffe_id import SpiffeId
from node_agent.entries.entry_set import EntrySet
from node_agent.entries.records import EntryUpdate

AGENT = SpiffeId.parse("spiffe://example.org/citadel/agent/node-1")


def entry(entry_id: str, revision: int, hint: str = "") -> RegistrationEntry:
    return RegistrationEntry(
        entry_id=entry_id,
        spiffe_id=SpiffeId.parse(f"spiffe://example.org/ns/shop/sa/{entry_id}"),
        parent_id=AGENT,
        selectors=parse_selectors(["unix:uid:1000"]),
        revision=revision,
        hint=hint,
    )


def update(
    *entries: RegistrationEntry,
    tombstones: tuple[tuple[str, int], ...] = (),
    revision: int,
    full: bool = False,
) -> EntryUpdate:
    return EntryUpdate(entries=entries, tombstones=tombstones, revision=revision, full=full)


def test_incremental_updates_add_replace_and_drop_by_tombstone() -> None:
    entries = EntrySet()
    first = entries.apply(update(entry("web", 1), entry("db", 2), revision=2, full=True))
    assert [e.entry_id for e in first.upserted] == ["db", "web"] and first.removed == ()
    second = entries.apply(update(entry("web", 3, hint="h"), tombstones=(("db", 4),), revision=4))
    assert [e.hint for e in second.upserted] == ["h"] and second.removed == ("db",)
    assert [e.entry_id for e in entries.entries()] == ["web"] and entries.revision == 4


def test_a_tombstone_for_an_entry_never_held_changes_nothing() -> None:
    entries = EntrySet()
    entries.apply(update(entry("web", 1), revision=1, full=True))
    diff = entries.apply(update(tombstones=(("someone-elses", 2),), revision=2))
    assert not diff and entries.revision == 2


def test_a_full_update_drops_everything_it_does_not_list() -> None:
    entries = EntrySet()
    entries.apply(update(entry("web", 1), entry("db", 2), revision=2, full=True))
    diff = entries.apply(update(entry("db", 2), revision=9, full=True))
    assert diff.removed == ("web",) and diff.upserted == ()
    assert [e.entry_id for e in entries.entries()] == ["db"]


def test_entries_are_kept_in_entry_id_order_whatever_the_arrival_order() -> None:
    entries = EntrySet()
    entries.apply(update(entry("zeta", 1), entry("alpha", 2), entry("mid", 3), revision=3))
    assert [e.entry_id for e in entries.entries()] == ["alpha", "mid", "zeta"]
