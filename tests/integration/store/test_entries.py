"""Registration entries in the repository, on SQLite and PostgreSQL: revisions, tombstones,
duplicates, the moved log agents sync from, and the audit trail of every change."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.registration import RegistrationEntry
from citadel.identity.selectors import parse_selectors
from citadel.identity.spiffe_id import SpiffeId
from citadel.store import ConflictError, InvalidRecordError, NotFoundError, Repository
from tests.integration.store.conftest import RawSql

pytestmark = pytest.mark.integration

AGENT = SpiffeId.parse("spiffe://example.org/citadel/agent/node-1")


def entry(entry_id: str, path: str, *selectors: str, **overrides: Any) -> RegistrationEntry:
    fields: dict[str, Any] = {
        "entry_id": entry_id,
        "spiffe_id": SpiffeId.parse(f"spiffe://example.org{path}"),
        "parent_id": AGENT,
        "selectors": parse_selectors(selectors or ("unix:uid:1000",)),
    }
    fields.update(overrides)
    return RegistrationEntry(**fields)


def test_created_entry_round_trips_with_the_next_revision(
    repo: Repository, clock: ManualClock
) -> None:
    first = repo.create_entry(
        entry(
            "web",
            "/ns/shop/sa/web",
            "unix:uid:1000",
            "unix:gid:50",
            ttl=timedelta(hours=1),
            dns_names=("web.shop.svc",),
            hint="external",
        ),
        clock.now(),
    )
    second = repo.create_entry(entry("db", "/ns/shop/sa/db", "unix:uid:1001"), clock.now())
    assert (first.revision, second.revision) == (1, 2)
    assert repo.get_entry("web") == first
    assert first.ttl == timedelta(hours=1) and first.dns_names == ("web.shop.svc",)
    assert repo.entry_revision() == 2


def test_every_change_gets_a_higher_revision_and_an_audit_event(
    repo: Repository, clock: ManualClock
) -> None:
    created = repo.create_entry(entry("web", "/ns/shop/sa/web"), clock.now())
    updated = repo.update_entry(replace(created, hint="renamed"), clock.now())
    gone = repo.delete_entry("web", clock.now())
    assert created.revision < updated.revision < gone.revision == repo.entry_revision()
    events = [(e.action, e.subject, e.payload["revision"]) for e in repo.list_audit()]
    assert events == [
        ("entry_create", "web", created.revision),
        ("entry_update", "web", updated.revision),
        ("entry_delete", "web", gone.revision),
    ]
    assert repo.verify_audit_chain().ok


def test_deleted_entry_leaves_a_tombstone_and_its_id_is_not_reused(
    repo: Repository, clock: ManualClock
) -> None:
    repo.create_entry(entry("web", "/ns/shop/sa/web"), clock.now())
    tombstone = repo.delete_entry("web", clock.now())
    with pytest.raises(NotFoundError):
        repo.get_entry("web")
    assert repo.list_entries() == []
    changes = repo.entry_changes(1)
    assert [(t.entry_id, t.revision) for t in changes.tombstones] == [("web", tombstone.revision)]
    with pytest.raises(ConflictError, match="not reused"):
        repo.create_entry(entry("web", "/ns/shop/sa/web"), clock.now())


def test_same_parent_id_and_selectors_twice_is_a_conflict(
    repo: Repository, clock: ManualClock
) -> None:
    repo.create_entry(entry("one", "/ns/shop/sa/web", "unix:uid:1", "unix:gid:2"), clock.now())
    with pytest.raises(ConflictError, match="already maps these selectors"):
        repo.create_entry(entry("two", "/ns/shop/sa/web", "unix:gid:2", "unix:uid:1"), clock.now())
    assert [e.entry_id for e in repo.list_entries()] == ["one"]
    assert repo.entry_revision() == 1  # the refused change used no revision


def test_the_duplicate_of_a_deleted_entry_may_be_created_again(
    repo: Repository, clock: ManualClock
) -> None:
    repo.create_entry(entry("one", "/ns/shop/sa/web"), clock.now())
    repo.delete_entry("one", clock.now())
    assert repo.create_entry(entry("two", "/ns/shop/sa/web"), clock.now()).revision == 3


def test_update_into_another_entrys_registration_is_a_conflict(
    repo: Repository, clock: ManualClock
) -> None:
    repo.create_entry(entry("one", "/ns/shop/sa/web", "unix:uid:1"), clock.now())
    two = repo.create_entry(entry("two", "/ns/shop/sa/web", "unix:uid:2"), clock.now())
    with pytest.raises(ConflictError):
        repo.update_entry(replace(two, selectors=parse_selectors(["unix:uid:1"])), clock.now())
    assert repo.get_entry("two") == two


@pytest.mark.parametrize(
    "operation",
    [
        lambda r, e, now: r.update_entry(e, now),
        lambda r, e, now: r.delete_entry(e.entry_id, now),
        lambda r, e, now: r.get_entry(e.entry_id),
    ],
    ids=["update", "delete", "get"],
)
def test_an_unknown_entry_is_not_found(
    repo: Repository, clock: ManualClock, operation: Any
) -> None:
    with pytest.raises(NotFoundError, match="no registration entry"):
        operation(repo, entry("ghost", "/ns/shop/sa/ghost"), clock.now())


def test_list_entries_filters_by_parent_and_revision(repo: Repository, clock: ManualClock) -> None:
    web = repo.create_entry(entry("web", "/ns/shop/sa/web"), clock.now())
    clock.advance(timedelta(seconds=1))
    repo.create_entry(entry("child", "/ns/shop/sa/child", parent_id=web.spiffe_id), clock.now())
    clock.advance(timedelta(seconds=1))
    repo.create_entry(entry("db", "/ns/shop/sa/db", "unix:uid:7"), clock.now())
    assert [e.entry_id for e in repo.list_entries(parent=str(AGENT))] == ["web", "db"]
    assert [e.entry_id for e in repo.list_entries(since_revision=1)] == ["child", "db"]
    assert repo.list_entries(parent="x" * 5000) == []


def test_entry_changes_report_moved_ids_for_creations_renames_reparents_and_deletions(
    repo: Repository, clock: ManualClock
) -> None:
    web = repo.create_entry(entry("web", "/ns/shop/sa/web"), clock.now())
    renamed = repo.update_entry(
        replace(web, spiffe_id=SpiffeId.parse("spiffe://example.org/ns/shop/sa/web2")),
        clock.now(),
    )
    other_agent = SpiffeId.parse("spiffe://example.org/citadel/agent/node-2")
    moved = repo.update_entry(replace(renamed, parent_id=other_agent), clock.now())
    repo.update_entry(replace(moved, hint="only a hint"), clock.now())
    repo.delete_entry("web", clock.now())
    changes = repo.entry_changes(0)
    assert [(rev, str(s)) for rev, s in changes.moved] == [
        (1, "spiffe://example.org/ns/shop/sa/web"),
        (2, "spiffe://example.org/ns/shop/sa/web"),
        (2, "spiffe://example.org/ns/shop/sa/web2"),
        (3, "spiffe://example.org/ns/shop/sa/web2"),
        (5, "spiffe://example.org/ns/shop/sa/web2"),
    ]
    assert changes.revision == 5 and changes.entries == ()
    since_four = repo.entry_changes(4)
    assert [t.entry_id for t in since_four.tombstones] == ["web"]
    assert [rev for rev, _ in since_four.moved] == [5]


def test_entry_changes_after_the_current_revision_are_empty(
    repo: Repository, clock: ManualClock
) -> None:
    repo.create_entry(entry("web", "/ns/shop/sa/web"), clock.now())
    changes = repo.entry_changes(1)
    assert (changes.entries, changes.tombstones, changes.moved) == ((), (), ())
    assert changes.revision == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ttl": timedelta(seconds=1.5)}, "whole number of seconds"),
        ({"hint": "a\x00b"}, "NUL"),
        ({"hint": "\udc80"}, "Unicode"),
    ],
    ids=["fractional-ttl", "nul-in-hint", "lone-surrogate-in-hint"],
)
def test_values_the_database_cannot_hold_are_refused_before_writing(
    repo: Repository, clock: ManualClock, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRecordError, match=message):
        repo.create_entry(entry("bad", "/ns/shop/sa/bad", **overrides), clock.now())
    assert repo.entry_revision() == 0


def test_naive_timestamps_and_negative_revisions_are_refused(
    repo: Repository, clock: ManualClock
) -> None:
    with pytest.raises(InvalidRecordError):
        repo.create_entry(entry("web", "/ns/shop/sa/web"), datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        repo.entry_changes(-1)
    with pytest.raises(TypeError):
        repo.entry_changes(True)


def test_a_damaged_stored_entry_is_reported_not_returned_as_garbage(
    repo: Repository, clock: ManualClock, raw_sql: RawSql
) -> None:
    repo.create_entry(entry("web", "/ns/shop/sa/web"), clock.now())
    raw_sql("UPDATE registration_entries SET selectors_json = :bad", bad='["nope:x:y"]')
    with pytest.raises(Exception, match="damaged") as caught:
        repo.get_entry("web")
    assert type(caught.value).__name__ == "StoreError"
