"""The CA's in-memory entry index: each agent's subtree, and what an agent at revision N must
apply (changes, tombstones, entries that moved with an ancestor, or the full set)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.registration import RegistrationEntry
from citadel.identity.selectors import parse_selectors
from citadel.identity.spiffe_id import SpiffeId
from citadel.server.agent_entry_index import EntryIndex
from citadel.store import Repository

TD = "spiffe://example.org"
NODE_1 = SpiffeId.parse(f"{TD}/citadel/agent/node-1")
NODE_2 = SpiffeId.parse(f"{TD}/citadel/agent/node-2")


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    repository = Repository.open(f"sqlite:///{tmp_path / 'citadel.db'}")
    try:
        yield repository
    finally:
        repository.close()


def add(
    repo: Repository, clock: ManualClock, entry_id: str, parent: SpiffeId, uid: int = 1000
) -> RegistrationEntry:
    return repo.create_entry(
        RegistrationEntry(
            entry_id=entry_id,
            spiffe_id=SpiffeId.parse(f"{TD}/ns/shop/sa/{entry_id}"),
            parent_id=parent,
            selectors=parse_selectors([f"unix:uid:{uid}"]),
        ),
        clock.now(),
    )


def ids(entries: object) -> list[str]:
    return sorted(e.entry_id for e in entries)  # type: ignore[attr-defined]


def test_an_agent_is_authorized_for_its_whole_subtree_only(
    repo: Repository, clock: ManualClock
) -> None:
    web = add(repo, clock, "web", NODE_1)
    sidecar = add(repo, clock, "sidecar", web.spiffe_id)
    add(repo, clock, "deep", sidecar.spiffe_id)
    add(repo, clock, "other", NODE_2)
    index = EntryIndex(repo)
    assert sorted(index.authorized(NODE_1)) == ["deep", "sidecar", "web"]
    assert sorted(index.authorized(NODE_2)) == ["other"]
    assert sorted(index.authorized(web.spiffe_id)) == ["deep", "sidecar"]


def test_an_agent_up_to_date_gets_nothing(repo: Repository, clock: ManualClock) -> None:
    add(repo, clock, "web", NODE_1)
    index = EntryIndex(repo)
    sync = index.sync(NODE_1, 1)
    assert (sync.entries, sync.tombstones, sync.revision, sync.full) == ((), (), 1, False)


def test_creating_a_parent_entry_brings_its_existing_orphans_along(
    repo: Repository, clock: ManualClock
) -> None:
    orphan = add(repo, clock, "orphan", SpiffeId.parse(f"{TD}/ns/shop/sa/web"))
    index = EntryIndex(repo)
    at = index.sync(NODE_1, 0).revision
    assert index.sync(NODE_1, 0).entries == ()
    add(repo, clock, "web", NODE_1, uid=1)
    sync = index.sync(NODE_1, at)
    assert ids(sync.entries) == ["orphan", "web"]
    assert orphan.revision <= at  # the orphan itself did not change


def test_deleting_a_parent_entry_tombstones_its_subtree(
    repo: Repository, clock: ManualClock
) -> None:
    web = add(repo, clock, "web", NODE_1)
    add(repo, clock, "sidecar", web.spiffe_id)
    index = EntryIndex(repo)
    at = index.sync(NODE_1, 0).revision
    repo.delete_entry("web", clock.now())
    sync = index.sync(NODE_1, at)
    assert sync.entries == ()
    assert sorted(entry_id for entry_id, _ in sync.tombstones) == ["sidecar", "web"]


def test_renaming_a_parent_entry_moves_its_children_out_and_adopts_others(
    repo: Repository, clock: ManualClock
) -> None:
    web = add(repo, clock, "web", NODE_1)
    add(repo, clock, "child", web.spiffe_id)
    add(repo, clock, "waiting", SpiffeId.parse(f"{TD}/ns/shop/sa/web2"), uid=2)
    index = EntryIndex(repo)
    at = index.sync(NODE_1, 0).revision
    repo.update_entry(replace(web, spiffe_id=SpiffeId.parse(f"{TD}/ns/shop/sa/web2")), clock.now())
    sync = index.sync(NODE_1, at)
    assert ids(sync.entries) == ["waiting", "web"]
    assert [entry_id for entry_id, _ in sync.tombstones] == ["child"]


def test_an_agent_behind_the_kept_history_gets_the_full_set(
    repo: Repository, clock: ManualClock
) -> None:
    index = EntryIndex(repo, max_log=4)
    for n in range(6):
        add(repo, clock, f"e{n}", NODE_1, uid=n)
        index.refresh()
    sync = index.sync(NODE_1, 1)
    assert sync.full and ids(sync.entries) == [f"e{n}" for n in range(6)]
    recent = index.sync(NODE_1, 5)
    assert not recent.full and ids(recent.entries) == ["e5"]


def test_a_store_that_went_back_in_revisions_is_reloaded(
    tmp_path: Path, clock: ManualClock
) -> None:
    first = Repository.open(f"sqlite:///{tmp_path / 'a.db'}")
    second = Repository.open(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        for n in range(3):
            add(first, clock, f"old{n}", NODE_1, uid=n)
        add(second, clock, "new", NODE_1)

        class Switch:
            current = first

            def entry_revision(self) -> int:
                return self.current.entry_revision()

            def entry_changes(self, since_revision: int) -> object:
                return self.current.entry_changes(since_revision)

        source = Switch()
        index = EntryIndex(source)  # type: ignore[arg-type]
        assert index.sync(NODE_1, 0).revision == 3
        source.current = second  # restored from an older backup
        assert sorted(index.authorized(NODE_1)) == ["new"]
    finally:
        first.close()
        second.close()
