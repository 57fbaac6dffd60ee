"""The watcher that keeps a running issuer in step with the stored authorities."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citadel.ca.authority_watch import authorities_version
from citadel.ca.bootstrap import LoadedAuthorities
from citadel.ca.rotation.slots import Slot
from citadel.identity.clock import ManualClock
from tests.unit.ca.lifecycle_kit import LifecycleCa, lifecycle_ca


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock) as opened:
        yield opened


def test_nothing_changes_until_the_store_does(ca: LifecycleCa) -> None:
    bundle = ca.issuer.trust_bundle()
    assert not ca.watcher.poll()
    assert ca.issuer.trust_bundle() is bundle


def test_a_change_made_elsewhere_reaches_the_issuer_and_the_listeners(ca: LifecycleCa) -> None:
    seen: list[LoadedAuthorities] = []
    ca.watcher.add_listener(seen.append)
    sequence = ca.issuer.trust_bundle().sequence
    ca.rotation.prepare(Slot.ROOT)
    assert ca.watcher.poll()
    assert len(ca.bundle()) == 2 and ca.issuer.trust_bundle().sequence == sequence + 1
    assert len(seen) == 1 and len(seen[0].roots) == 2
    assert not ca.watcher.poll()


def test_a_failing_reload_keeps_the_current_authorities_and_is_retried(ca: LifecycleCa) -> None:
    signer = ca.issuer.signer
    ca.rotation.prepare(Slot.INTERMEDIATE)
    nxt = ca.rotation.slots().next_intermediate
    assert nxt is not None
    ca.rotation.activate(Slot.INTERMEDIATE)
    ca.key_manager.delete_key(nxt.key_ref)  # e.g. the key file is not readable yet
    assert not ca.watcher.poll()
    assert (
        ca.watcher.last_error is not None and "missing from the key store" in ca.watcher.last_error
    )
    assert ca.issuer.signer is signer
    assert ca.issue().intermediates[0] == signer.cert


def test_the_version_ignores_order_and_jwt_keys(ca: LifecycleCa) -> None:
    records = ca.repository.list_authorities()
    assert authorities_version(records) == authorities_version(list(reversed(records)))
    assert authorities_version(records) != authorities_version(records[:1])
