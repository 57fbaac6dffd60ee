"""The rules for taking roots and CRLs from the CA (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citadel.ca.rotation.acks import bundle_version as ca_bundle_version
from citadel.identity.clock import ManualClock
from node_agent.errors import BundleRejectedError
from node_agent.trust_bundle import MAX_CRLS, bundle_version, plan_crls, root_transition
from tests.conftest import FIXED_NOW
from tests.fakes.fake_ca import FakePki, make_fake_pki
from tests.unit.node_agent.crl_kit import crl_der


@pytest.fixture(scope="module")
def other() -> FakePki:
    return make_fake_pki(around=[FIXED_NOW, datetime.now(UTC)])


@pytest.fixture(scope="module")
def third() -> FakePki:
    return make_fake_pki(around=[FIXED_NOW, datetime.now(UTC)])


def test_bundle_version_is_the_cas_and_ignores_order_and_duplicates(
    pki: FakePki, other: FakePki
) -> None:
    roots = [pki.root, other.root]
    assert bundle_version(roots) == ca_bundle_version(roots)
    assert bundle_version([other.root, pki.root, pki.root]) == bundle_version(roots)
    assert bundle_version([pki.root]) != bundle_version(roots)


@pytest.mark.parametrize(
    ("trusted", "offered", "added", "removed"),
    [
        ("a", "ab", 1, 0),
        ("ab", "b", 0, 1),
        ("ab", "ab", 0, 0),
    ],
    ids=["superset", "subset", "same"],
)
def test_a_superset_or_subset_is_taken(
    pki: FakePki, other: FakePki, trusted: str, offered: str, added: int, removed: int
) -> None:
    roots = {"a": pki.root, "b": other.root}
    change = root_transition([roots[c] for c in trusted], [roots[c] for c in offered])
    assert (len(change.added), len(change.removed)) == (added, removed)
    assert change.changed == bool(added or removed)


@pytest.mark.parametrize(
    ("trusted", "offered"), [("a", "b"), ("ab", "bc"), ("a", "")], ids=["swap", "mixed", "empty"]
)
def test_a_swap_or_an_empty_bundle_is_refused(
    pki: FakePki, other: FakePki, third: FakePki, trusted: str, offered: str
) -> None:
    roots = {"a": pki.root, "b": other.root, "c": third.root}
    with pytest.raises(BundleRejectedError):
        root_transition([roots[c] for c in trusted], [roots[c] for c in offered])


def _full_crls(pki: FakePki, now: datetime, **kwargs: object) -> list[bytes]:
    return [
        crl_der(pki.root, pki.root_key, now=now, **kwargs),  # type: ignore[arg-type]
        crl_der(pki.intermediate, pki.intermediate_key, now=now, **kwargs),  # type: ignore[arg-type]
    ]


def test_crls_for_every_root_check_whole_chains(pki: FakePki, clock: ManualClock) -> None:
    now = clock.now()
    plan = plan_crls(
        [pki.root], _full_crls(pki, now), own_intermediates=[pki.intermediate], now=now
    )
    assert len(plan.crls) == 2 and not plan.leaf_only and plan.note == ""
    assert plan.valid_until == (now + timedelta(hours=1)).replace(microsecond=0)


def test_a_root_without_a_crl_means_only_leaves_are_checked(
    pki: FakePki, other: FakePki, clock: ManualClock
) -> None:
    now = clock.now()
    plan = plan_crls(
        [pki.root, other.root],
        _full_crls(pki, now),
        own_intermediates=[pki.intermediate],
        now=now,
    )
    assert len(plan.crls) == 2 and plan.leaf_only
    assert "only leaves" in plan.note


def test_no_crl_for_our_own_intermediate_means_no_crls_at_all(
    pki: FakePki, clock: ManualClock
) -> None:
    now = clock.now()
    only_root = [crl_der(pki.root, pki.root_key, now=now)]
    plan = plan_crls([pki.root], only_root, own_intermediates=[pki.intermediate], now=now)
    assert plan.crls == () and plan.valid_until is None
    assert "fake intermediate" in plan.note


def test_no_crls_is_a_plan_without_crls(pki: FakePki, clock: ManualClock) -> None:
    plan = plan_crls([pki.root], [], own_intermediates=[pki.intermediate], now=clock.now())
    assert (plan.crls, plan.leaf_only, plan.note) == ((), False, "")


@pytest.mark.parametrize(
    "defect",
    ["expired", "not yet valid", "garbage", "forged", "too many"],
)
def test_a_bad_crl_refuses_the_whole_answer(
    pki: FakePki, other: FakePki, clock: ManualClock, defect: str
) -> None:
    now = clock.now()
    crls = _full_crls(pki, now)
    if defect == "expired":
        crls[0] = crl_der(
            pki.root, pki.root_key, now=now - timedelta(hours=2), next_update=timedelta(hours=1)
        )
    elif defect == "not yet valid":
        crls[0] = crl_der(pki.root, pki.root_key, now=now, this_update=now + timedelta(minutes=5))
    elif defect == "garbage":
        crls[0] = b"\x30\x03\x02\x01\x00"
    elif defect == "forged":  # the root's name, another key
        crls[0] = crl_der(pki.root, other.root_key, now=now)
    else:
        crls = crls * (MAX_CRLS // 2 + 1)
    with pytest.raises(BundleRejectedError):
        plan_crls([pki.root], crls, own_intermediates=[pki.intermediate], now=now)
