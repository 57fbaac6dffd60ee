"""Revoking leaves (by serial, by SPIFFE ID) and intermediates; the in-memory revocation
index the mTLS authenticator consults. Bad input changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.ca.authority_errors import (
    AlreadyRevokedError,
    InvalidReasonError,
    UnknownSerialError,
)
from citadel.ca.revocation_index import RevocationIndex
from citadel.ca.revocation_reasons import REASONS
from citadel.identity.clock import ManualClock
from tests.unit.ca.lifecycle_kit import TRUST_DOMAIN, LifecycleCa, lifecycle_ca


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock) as opened:
        yield opened


@pytest.mark.parametrize("reason", list(REASONS), ids=list(REASONS))
def test_revoking_a_serial_marks_it_revoked_with_its_rfc5280_reason(
    ca: LifecycleCa, reason: str
) -> None:
    chain = ca.issue()
    record = ca.revoker().revoke_serial(chain.serial_hex, reason.upper())
    assert record.revoked_at == ca.clock.now()
    assert record.revocation_reason == reason
    event = ca.repository.list_audit(limit=10_000)[-1]
    assert event.action == "revoke" and event.payload["serial"] == chain.serial_hex


def test_revoking_an_unknown_serial_is_refused_and_changes_nothing(ca: LifecycleCa) -> None:
    ca.issue()
    before = ca.snapshot()
    with pytest.raises(UnknownSerialError, match="no certificate with serial abc123"):
        ca.revoker().revoke_serial("00:AB:C1:23", "keyCompromise")
    assert ca.snapshot() == before


def test_revoking_twice_is_refused_and_keeps_the_first_revocation(ca: LifecycleCa) -> None:
    chain = ca.issue()
    ca.revoker().revoke_serial(chain.serial_hex, "keyCompromise")
    ca.clock.advance(timedelta(minutes=5))
    before = ca.snapshot()
    with pytest.raises(AlreadyRevokedError, match=r"already revoked at .*keyCompromise"):
        ca.revoker().revoke_serial(chain.serial_hex, "superseded")
    assert ca.snapshot() == before


@pytest.mark.parametrize(
    "reason", ["removeFromCRL", "certificateHold", "", "because", "x" * 500], ids=str.__len__
)
def test_a_reason_outside_rfc5280_operator_reasons_is_refused_and_changes_nothing(
    ca: LifecycleCa, reason: str
) -> None:
    chain = ca.issue()
    before = ca.snapshot()
    with pytest.raises(InvalidReasonError, match="not a revocation reason"):
        ca.revoker().revoke_serial(chain.serial_hex, reason)
    assert ca.snapshot() == before


@pytest.mark.parametrize("serial", ["zz", "0x", "1" * 41, "12 34", "-1"], ids=repr)
def test_a_malformed_serial_is_refused_and_changes_nothing(ca: LifecycleCa, serial: str) -> None:
    before = ca.snapshot()
    with pytest.raises(UnknownSerialError, match="not a hexadecimal"):
        ca.revoker().revoke_serial(serial, "unspecified")
    assert ca.snapshot() == before


def test_revoking_by_spiffe_id_takes_every_unexpired_certificate_of_exactly_that_id(
    ca: LifecycleCa,
) -> None:
    old = ca.issue("web", ttl=timedelta(hours=1))
    ca.clock.advance(timedelta(hours=2))  # `old` has expired
    current = [ca.issue("web"), ca.issue("web")]
    sibling = ca.issue("web2")
    revoked = ca.revoker().revoke_spiffe_id(
        TRUST_DOMAIN.spiffe_id("/ns/app/sa/web"), "cessationOfOperation"
    )
    assert sorted(r.serial_hex for r in revoked) == sorted(c.serial_hex for c in current)
    assert not ca.repository.get_certificate(old.serial_hex).is_revoked
    assert not ca.repository.get_certificate(sibling.serial_hex).is_revoked


def test_revoking_a_spiffe_id_with_nothing_left_to_revoke_is_refused(ca: LifecycleCa) -> None:
    ident = TRUST_DOMAIN.spiffe_id("/ns/app/sa/web")
    before = ca.snapshot()
    with pytest.raises(UnknownSerialError, match="no unexpired certificate"):
        ca.revoker().revoke_spiffe_id(ident, "superseded")
    assert ca.snapshot() == before
    ca.issue("web")
    ca.revoker().revoke_spiffe_id(ident, "superseded")
    before = ca.snapshot()
    with pytest.raises(AlreadyRevokedError, match="already revoked"):
        ca.revoker().revoke_spiffe_id(ident, "superseded")
    assert ca.snapshot() == before


def test_the_index_sees_a_revocation_at_once_and_after_a_refresh(ca: LifecycleCa) -> None:
    chain = ca.issue()
    index = RevocationIndex(ca.repository, ca.clock)
    index.refresh()
    assert not index.is_revoked(chain.serial_hex)
    ca.revoker(index).revoke_serial(chain.serial_hex, "keyCompromise")
    assert index.is_revoked(chain.serial_hex.upper())
    assert index.is_certificate_revoked(chain.leaf)
    other = RevocationIndex(ca.repository, ca.clock)  # another replica: learns on refresh
    assert not other.is_revoked(chain.serial_hex)
    other.refresh_if_stale()
    assert other.is_revoked(chain.serial_hex)


def test_revoking_the_signing_intermediate_replaces_it_and_refuses_its_leaves(
    ca: LifecycleCa,
) -> None:
    old_signer = ca.rotation.slots().signer
    before = ca.issue("before")
    index = RevocationIndex(ca.repository, ca.clock)
    result = ca.revoker(index).revoke_intermediate(old_signer.serial_hex, "keyCompromise")
    assert result.revoked.state == "revoked"
    assert result.replacement is not None
    ca.watcher.poll()
    after = ca.issue("after")
    assert ca.issuer.signer.fingerprint != old_signer.fingerprint_sha256
    index.refresh()
    assert index.is_certificate_revoked(before.leaf)  # its own serial was never revoked
    assert not index.is_revoked(before.serial_hex)
    assert not index.is_certificate_revoked(after.leaf)
    row = ca.repository.get_certificate(old_signer.serial_hex)
    assert row.is_revoked and row.issuer_fingerprint == ca.rotation.slots().root.fingerprint_sha256
    actions = [e.action for e in ca.repository.list_audit(limit=10_000)]
    assert actions.count("ca.revoke_intermediate") == 1
    assert ca.repository.verify_audit_chain().ok


def test_revoking_an_intermediate_twice_is_refused_and_changes_nothing(ca: LifecycleCa) -> None:
    signer = ca.rotation.slots().signer
    ca.revoker().revoke_intermediate(signer.id, "cACompromise")
    before = ca.snapshot()
    with pytest.raises(AlreadyRevokedError):
        ca.revoker().revoke_intermediate(signer.id, "cACompromise")
    assert ca.snapshot() == before


def test_revoking_an_unknown_intermediate_is_refused_and_changes_nothing(ca: LifecycleCa) -> None:
    before = ca.snapshot()
    with pytest.raises(UnknownSerialError, match="no intermediate authority"):
        ca.revoker().revoke_intermediate("deadbeef", "cACompromise")
    assert ca.snapshot() == before


def test_an_intermediate_serial_given_as_a_leaf_points_to_the_right_command(
    ca: LifecycleCa,
) -> None:
    signer = ca.rotation.slots().signer
    before = ca.snapshot()
    with pytest.raises(UnknownSerialError, match="revoke-intermediate"):
        ca.revoker().revoke_serial(signer.serial_hex, "keyCompromise")
    assert ca.snapshot() == before
