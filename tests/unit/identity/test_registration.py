"""Registration entries: validation, matching by selector subset, and the agent's tree."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from citadel.identity.registration import RegistrationEntry, descendants_of, entries_for
from citadel.identity.registration_errors import InvalidRegistrationEntryError
from citadel.identity.selectors import Selector, parse_selectors
from citadel.identity.spiffe_id import SpiffeId

AGENT = SpiffeId.parse("spiffe://example.org/agent/node-1")
OTHER_AGENT = SpiffeId.parse("spiffe://example.org/agent/node-2")


def entry(
    entry_id: str, path: str, *selectors: str, parent: SpiffeId = AGENT, **kw: Any
) -> RegistrationEntry:
    return RegistrationEntry(
        entry_id=entry_id,
        spiffe_id=SpiffeId.parse(f"spiffe://example.org{path}"),
        parent_id=parent,
        selectors=parse_selectors(selectors),
        **kw,
    )


WEB = entry("web", "/web", "unix:uid:1000")
WEB_STRICT = entry("web-strict", "/web-strict", "unix:uid:1000", "unix:path:/usr/bin/web")
DB = entry("db", "/db", "unix:uid:1001")
K8S = entry("k8s", "/ns/a/sa/b", "k8s:ns:a", "k8s:sa:b")


def test_entry_matches_when_its_selectors_are_a_subset_of_the_workloads() -> None:
    workload = parse_selectors(["unix:uid:1000", "unix:gid:1000", "unix:path:/usr/bin/web"])
    assert entries_for(workload, [WEB, WEB_STRICT, DB, K8S]) == [WEB, WEB_STRICT]


def test_entry_needing_more_than_the_workload_has_does_not_match() -> None:
    workload = parse_selectors(["unix:uid:1000", "unix:path:/usr/bin/other"])
    assert entries_for(workload, [WEB, WEB_STRICT]) == [WEB]


def test_workload_without_matching_selectors_gets_nothing() -> None:
    assert entries_for(parse_selectors(["unix:uid:4242"]), [WEB, WEB_STRICT, DB, K8S]) == []


def test_workload_with_no_selectors_gets_nothing() -> None:
    assert entries_for(frozenset(), [WEB, DB, K8S]) == []


def test_matches_agrees_with_entries_for() -> None:
    workload = parse_selectors(
        ["k8s:ns:a", "k8s:sa:b", "k8s:pod-uid:" + "0" * 8 + "-0000-0000-0000-" + "0" * 12]
    )
    assert K8S.matches(workload)
    assert entries_for(workload, [K8S]) == [K8S]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"selectors": frozenset()}, "at least one selector"),
        ({"spiffe_id": SpiffeId.parse("spiffe://example.org")}, "must have a path"),
        ({"parent_id": SpiffeId.parse("spiffe://example.org/web")}, "its own parent"),
        ({"ttl": timedelta(0)}, "positive"),
        ({"ttl": timedelta(seconds=-5)}, "positive"),
        ({"entry_id": ""}, "entry id"),
        ({"entry_id": "a/b"}, "entry id"),
        ({"dns_names": ("Web.Example.org",)}, "DNS name"),
        ({"dns_names": ("web..example.org",)}, "DNS name"),
        ({"revision": -1}, "revision"),
        ({"hint": "x" * 300}, "hint"),
    ],
    ids=[
        "no-selectors",
        "trust-domain-id",
        "own-parent",
        "zero-ttl",
        "negative-ttl",
        "empty-id",
        "slash-in-id",
        "uppercase-dns",
        "empty-dns-label",
        "negative-revision",
        "long-hint",
    ],
)
def test_invalid_entry_is_rejected(overrides: dict[str, Any], match: str) -> None:
    fields: dict[str, Any] = {
        "entry_id": "web",
        "spiffe_id": SpiffeId.parse("spiffe://example.org/web"),
        "parent_id": AGENT,
        "selectors": frozenset({Selector.parse("unix:uid:1")}),
    }
    fields.update(overrides)
    with pytest.raises(InvalidRegistrationEntryError, match=match):
        RegistrationEntry(**fields)


def test_selectors_must_be_a_frozenset_of_selectors() -> None:
    with pytest.raises(TypeError):
        RegistrationEntry(
            entry_id="web",
            spiffe_id=SpiffeId.parse("spiffe://example.org/web"),
            parent_id=AGENT,
            selectors={"unix:uid:1"},  # type: ignore[arg-type]
        )


def test_valid_entry_keeps_its_fields() -> None:
    e = entry(
        "web",
        "/web",
        "unix:uid:1",
        ttl=timedelta(hours=1),
        dns_names=("web.example.org",),
        revision=3,
        hint="internal",
    )
    assert (e.ttl, e.dns_names, e.revision, e.hint) == (
        timedelta(hours=1),
        ("web.example.org",),
        3,
        "internal",
    )


# --- the agent's tree ----------------------------------------------------------------------


def test_descendants_are_the_agents_children_and_their_children() -> None:
    child = entry("child", "/node-group", "unix:uid:1")
    grandchild = entry("grandchild", "/app", "unix:uid:2", parent=child.spiffe_id)
    great = entry("great", "/app/worker", "unix:uid:3", parent=grandchild.spiffe_id)
    foreign = entry("foreign", "/other", "unix:uid:4", parent=OTHER_AGENT)
    foreign_child = entry("foreign-child", "/other/x", "unix:uid:5", parent=foreign.spiffe_id)
    result = descendants_of(AGENT, [great, foreign_child, grandchild, foreign, child])
    assert [e.entry_id for e in result] == ["child", "grandchild", "great"]


def test_descendants_survive_a_cycle_in_parent_links() -> None:
    a = entry("a", "/a", "unix:uid:1")
    b = entry("b", "/b", "unix:uid:2", parent=a.spiffe_id)
    back_to_b = entry("loop", "/a", "unix:uid:3", parent=b.spiffe_id)
    result = descendants_of(AGENT, [a, b, back_to_b])
    assert [e.entry_id for e in result] == ["a", "b", "loop"]


def test_agent_without_children_has_no_descendants() -> None:
    assert descendants_of(OTHER_AGENT, [WEB, DB]) == []
