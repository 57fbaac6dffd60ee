"""``citadel entry``: create, list, show, update, delete, and every bad input refused with a
one-line error and a non-zero exit status (nothing stored)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citadel.ca.config import CaConfig
from citadel.ca.context import open_ca
from citadel.ca.jwt_keys import JwtKeySet
from citadel.identity.bundle import TrustBundle
from citadel.identity.spiffe_id import TrustDomain
from tests.unit.cli.cli_testkit import PASSPHRASE, assert_fails, assert_ok, initialised, run

AGENT = "spiffe://cluster.local/citadel/agent/node-1"
WEB = "spiffe://cluster.local/ns/shop/sa/web"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return initialised(tmp_path / "data")


def create(data: Path, *extra: str, spiffe_id: str = WEB, parent: str = AGENT) -> dict[str, object]:
    result = run(
        data,
        "entry", "create", "--parent", parent, "--spiffe-id", spiffe_id,
        "--selector", "unix:uid:1000", *extra, "--output", "json",
    )  # fmt: skip
    created: dict[str, object] = json.loads(assert_ok(result))
    return created


def entry_ids(data: Path) -> list[str]:
    rows = json.loads(assert_ok(run(data, "entry", "list", "--output", "json")))
    return [row["entry_id"] for row in rows]


def test_create_show_list_update_delete_round_trip(data: Path) -> None:
    created = create(
        data, "--selector", "unix:gid:50", "--ttl", "1h", "--dns-name", "web.shop.svc",
        "--entry-id", "web",
    )  # fmt: skip
    assert created == {
        "entry_id": "web",
        "spiffe_id": WEB,
        "parent_id": AGENT,
        "selectors": ["unix:gid:50", "unix:uid:1000"],
        "ttl_seconds": 3600,
        "dns_names": ["web.shop.svc"],
        "hint": "",
        "revision": 1,
    }
    shown = assert_ok(run(data, "entry", "show", "web"))
    assert "unix:gid:50, unix:uid:1000" in shown and "3600s" in shown
    listed = assert_ok(run(data, "entry", "list")).splitlines()
    assert listed[0].split()[:3] == ["ENTRY_ID", "SPIFFE_ID", "PARENT_ID"]
    assert listed[1].split()[0] == "web"
    updated = json.loads(
        assert_ok(
            run(
                data, "entry", "update", "web", "--selector", "k8s:ns:shop",
                "--default-ttl", "--no-dns-names", "--output", "json",
            )
        )
    )  # fmt: skip
    assert updated["selectors"] == ["k8s:ns:shop"]
    assert (updated["ttl_seconds"], updated["dns_names"], updated["revision"]) == (None, [], 2)
    out = assert_ok(run(data, "entry", "delete", "web"))
    assert out.strip() == "Deleted entry web (revision 3)"
    assert entry_ids(data) == []


def test_created_entry_gets_a_random_id_when_none_is_given(data: Path) -> None:
    first, second = create(data), create(data, spiffe_id=WEB + "2")
    assert first["entry_id"] != second["entry_id"]
    assert len(str(first["entry_id"])) == 36


def test_list_can_be_limited_to_one_parent(data: Path) -> None:
    create(data, "--entry-id", "mine")
    create(data, "--entry-id", "theirs", parent="spiffe://cluster.local/citadel/agent/node-2")
    rows = json.loads(assert_ok(run(data, "entry", "list", "--parent", AGENT, "--output", "json")))
    assert [row["entry_id"] for row in rows] == ["mine"]


BASE = ["entry", "create", "--parent", AGENT, "--spiffe-id", WEB]


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        ([*BASE, "--selector", "unix:uid:abc"], 2, ("'--selector'", "decimal")),
        ([*BASE, "--selector", "unix:uidd:1000"], 2, ("unknown unix selector kind",)),
        ([*BASE, "--selector", "docker:label:x"], 2, ("unknown selector type 'docker'",)),
        ([*BASE, "--selector", "uid1000"], 2, ("type:kind:value",)),
        (BASE, 2, ("'--selector'",)),
        (
            ["entry", "create", "--parent", AGENT, "--spiffe-id", "spiffe://Shop/x",
             "--selector", "unix:uid:1"],
            2,
            ("'--spiffe-id'", "lowercase"),
        ),
        (
            ["entry", "create", "--parent", AGENT, "--spiffe-id", "https://cluster.local/x",
             "--selector", "unix:uid:1"],
            2,
            ("'--spiffe-id'",),
        ),
        (
            ["entry", "create", "--spiffe-id", WEB, "--selector", "unix:uid:1"],
            2,
            ("'--parent'",),
        ),
        (
            ["entry", "create", "--parent", "spiffe://other.org/agent", "--spiffe-id", WEB,
             "--selector", "unix:uid:1"],
            2,
            ("not in trust domain cluster.local",),
        ),
        (
            ["entry", "create", "--parent", AGENT, "--spiffe-id", "spiffe://cluster.local",
             "--selector", "unix:uid:1"],
            1,
            ("must have a path",),
        ),
        (
            ["entry", "create", "--parent", WEB, "--spiffe-id", WEB, "--selector", "unix:uid:1"],
            1,
            ("its own parent",),
        ),
        ([*BASE, "--selector", "unix:uid:1", "--dns-name", "Not_A_Host"], 1, ("DNS name",)),
        ([*BASE, "--selector", "unix:uid:1", "--ttl", "1000d"], 2, ("maximum",)),
        ([*BASE, "--selector", "unix:uid:1", "--entry-id", "../etc"], 1, ("entry id",)),
    ],
    ids=[
        "invalid-selector-value",
        "unknown-selector-kind",
        "unknown-selector-type",
        "selector-without-kind",
        "no-selector",
        "bad-spiffe-id",
        "not-a-spiffe-uri",
        "parent-missing",
        "parent-in-another-trust-domain",
        "trust-domain-id-as-entry-id",
        "entry-is-its-own-parent",
        "bad-dns-name",
        "ttl-above-ca-maximum",
        "bad-entry-id",
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_nothing_is_stored(
    data: Path, args: list[str], code: int, fragments: tuple[str, ...]
) -> None:
    assert_fails(run(data, *args), code, *fragments)
    assert entry_ids(data) == []


def test_a_duplicate_registration_is_refused(data: Path) -> None:
    create(data, "--entry-id", "first")
    error = assert_fails(
        run(data, *BASE, "--selector", "unix:uid:1000", "--entry-id", "second"),
        1,
        "already maps these selectors",
    )
    assert "first" in error
    assert entry_ids(data) == ["first"]


def test_a_reused_entry_id_is_refused(data: Path) -> None:
    create(data, "--entry-id", "web")
    assert_fails(
        run(data, *BASE, "--selector", "unix:uid:7", "--entry-id", "web"), 1, "'web' exists"
    )


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["entry", "show", "ghost"], 1, "no registration entry"),
        (["entry", "delete", "ghost"], 1, "no registration entry"),
        (["entry", "update", "ghost", "--hint", "x"], 1, "no registration entry"),
        (["entry", "update", "web"], 2, "nothing to change"),
        (["entry", "update", "web", "--ttl", "1h", "--default-ttl"], 2, "exclude"),
        (["entry", "update", "web", "--selector", "bad"], 2, "'--selector'"),
    ],
    ids=["show-unknown", "delete-unknown", "update-unknown", "update-nothing",
         "update-contradiction", "update-bad-selector"],
)  # fmt: skip
def test_bad_updates_and_unknown_ids_are_refused_and_change_nothing(
    data: Path, args: list[str], code: int, fragment: str
) -> None:
    before = create(data, "--entry-id", "web")
    assert_fails(run(data, *args), code, fragment)
    after = json.loads(assert_ok(run(data, "entry", "show", "web", "--output", "json")))
    assert after == before


def test_entry_commands_refuse_an_uninitialised_ca(tmp_path: Path) -> None:
    assert_fails(run(tmp_path / "nothing", "entry", "list"), 1, "citadel init")


def test_bundle_show_spiffe_publishes_the_jwt_keys(data: Path) -> None:
    config = CaConfig(data_dir=data, key_passphrase=PASSPHRASE.encode())
    with open_ca(config) as ca:
        key_set = JwtKeySet(store=ca.repository, key_manager=ca.key_manager, clock=ca.clock)
        kids = [a.key_id for a in key_set.authorities()]
    text = assert_ok(run(data, "bundle", "show", "--format", "spiffe"))
    bundle = TrustBundle.from_spiffe_json(TrustDomain("cluster.local"), text)
    assert [a.key_id for a in bundle.jwt_authorities] == kids and len(kids) == 1
    document = json.loads(text)
    assert [k["use"] for k in document["keys"]] == ["x509-svid", "jwt-svid"]
    assert document["keys"][1]["kid"] == kids[0] and document["keys"][1]["crv"] == "P-256"
    pem = assert_ok(run(data, "bundle", "show", "--format", "pem"))
    assert pem.count("BEGIN CERTIFICATE") == 1  # PEM stays the X.509 roots only
