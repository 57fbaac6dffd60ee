"""CRLs: one per issuing authority, signed through the key manager, numbered upwards,
re-signed on change and before nextUpdate, and accepted by the openssl CLI."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.ca.authority_records import certificate_of
from citadel.ca.crl import CrlPublisher, crl_pem_bundle
from citadel.ca.issued_chain import IssuedChain
from citadel.ca.keymanager.base import Key
from citadel.ca.rotation.slots import Slot
from citadel.identity.clock import ManualClock
from citadel.identity.keys import KeyType
from tests.peers import require_binary
from tests.unit.ca.ca_testkit import OPENSSL_HINT
from tests.unit.ca.lifecycle_kit import LifecycleCa, lifecycle_ca


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock) as opened:
        yield opened


def _by_issuer(
    publisher: CrlPublisher, ca: LifecycleCa
) -> dict[str, x509.CertificateRevocationList]:
    found = {}
    for der in publisher.current_crls():
        crl = x509.load_der_x509_crl(der)
        for record in ca.repository.list_authorities():
            if certificate_of(record).subject == crl.issuer:
                found[record.kind] = crl
    return found


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_a_revoked_leaf_is_listed_in_its_intermediates_crl_with_its_reason(
    ca: LifecycleCa,
) -> None:
    chain = ca.issue()
    ca.revoker().revoke_serial(chain.serial_hex, "keyCompromise")
    publisher = ca.crls()
    assert publisher.refresh()
    crls = _by_issuer(publisher, ca)
    assert set(crls) == {"root", "intermediate"}
    crl = crls["intermediate"]
    assert crl.is_signature_valid(chain.intermediates[0].public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(chain.leaf.serial_number)
    assert entry is not None and entry.revocation_date_utc == ca.clock.now()
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert crl.next_update_utc == ca.clock.now() + timedelta(hours=1)
    assert len(crls["root"]) == 0


def test_next_update_is_configurable(ca: LifecycleCa) -> None:
    publisher = ca.crls(next_update=timedelta(minutes=10))
    publisher.refresh()
    for crl in _by_issuer(publisher, ca).values():
        assert crl.next_update_utc == ca.clock.now() + timedelta(minutes=10)


def test_an_unspecified_reason_carries_no_reason_code(ca: LifecycleCa) -> None:
    chain = ca.issue()
    ca.revoker().revoke_serial(chain.serial_hex, "unspecified")
    publisher = ca.crls()
    publisher.refresh()
    entry = _by_issuer(publisher, ca)["intermediate"].get_revoked_certificate_by_serial_number(
        chain.leaf.serial_number
    )
    assert entry is not None and len(entry.extensions) == 0


def test_the_crl_number_increases_on_every_new_signature(ca: LifecycleCa) -> None:
    publisher = ca.crls()
    publisher.refresh()
    first = _number(_by_issuer(publisher, ca)["intermediate"])
    assert not publisher.refresh()  # nothing changed, not old yet: the same CRL
    assert _number(_by_issuer(publisher, ca)["intermediate"]) == first
    ca.revoker().revoke_serial(ca.issue().serial_hex, "superseded")
    assert publisher.refresh()
    second = _number(_by_issuer(publisher, ca)["intermediate"])
    assert second > first
    ca.clock.advance(timedelta(minutes=31))  # past half of nextUpdate: re-signed
    old_version = publisher.version
    assert publisher.refresh()
    assert _number(_by_issuer(publisher, ca)["intermediate"]) > second
    assert publisher.version != old_version


def test_a_fresh_publisher_keeps_numbering_upwards_across_restarts(ca: LifecycleCa) -> None:
    first = ca.crls()
    first.refresh()
    number = _number(_by_issuer(first, ca)["intermediate"])
    ca.clock.advance(timedelta(seconds=1))
    restarted = ca.crls()
    restarted.refresh()
    assert _number(_by_issuer(restarted, ca)["intermediate"]) > number


def test_expired_revoked_leaves_drop_out_of_the_crl(ca: LifecycleCa) -> None:
    chain = ca.issue(ttl=timedelta(hours=1))
    ca.revoker().revoke_serial(chain.serial_hex, "superseded")
    publisher = ca.crls()
    publisher.refresh()
    assert len(_by_issuer(publisher, ca)["intermediate"]) == 1
    ca.clock.advance(timedelta(hours=2))
    publisher.refresh()
    assert len(_by_issuer(publisher, ca)["intermediate"]) == 0


def test_a_revoked_intermediate_is_listed_in_its_roots_crl_and_no_longer_signs_one(
    ca: LifecycleCa,
) -> None:
    signer = ca.rotation.slots().signer
    ca.revoker().revoke_intermediate(signer.id, "cACompromise")
    publisher = ca.crls()
    publisher.refresh()
    root_crl = _by_issuer(publisher, ca)["root"]
    assert root_crl.get_revoked_certificate_by_serial_number(int(signer.serial_hex, 16))
    assert publisher.crl_for(signer.fingerprint_sha256) is None
    assert len(publisher.current_crls()) == 2  # the root's and the replacement's


def test_retired_intermediates_get_no_crl_but_draining_ones_do(ca: LifecycleCa) -> None:
    old = ca.rotation.slots().signer
    ca.rotation.prepare(Slot.INTERMEDIATE)
    ca.rotation.activate(Slot.INTERMEDIATE)
    publisher = ca.crls()
    publisher.refresh()
    assert publisher.crl_for(old.fingerprint_sha256) is not None
    ca.rotation.retire(Slot.INTERMEDIATE)
    publisher.refresh()
    assert publisher.crl_for(old.fingerprint_sha256) is None


class _RecordingKey:
    """Wraps a key handle and records what it was asked to sign."""

    def __init__(self, key: Key, calls: list[str]) -> None:
        self._key = key
        self._calls = calls
        self.key_id = key.key_id
        self.key_type: KeyType = key.key_type

    def public_key(self):  # type: ignore[no-untyped-def]
        return self._key.public_key()

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList:
        self._calls.append(f"sign_crl:{self.key_id}")
        return self._key.sign_crl(builder)


def test_crls_are_signed_through_the_key_managers_handles(ca: LifecycleCa) -> None:
    calls: list[str] = []
    manager = ca.key_manager

    class Recording:
        def get_key(self, key_id: str) -> _RecordingKey:
            calls.append(f"get_key:{key_id}")
            return _RecordingKey(manager.get_key(key_id), calls)

    publisher = CrlPublisher(repository=ca.repository, key_manager=Recording(), clock=ca.clock)  # type: ignore[arg-type]
    publisher.refresh()
    signed = [c for c in calls if c.startswith("sign_crl:")]
    assert len(signed) == 2 and len(publisher.current_crls()) == 2


# --- openssl as an independent verifier ----------------------------------------------------


def _write(path: Path, certs: list[x509.Certificate]) -> Path:
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs))
    return path


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    openssl = require_binary("openssl", hint=OPENSSL_HINT)
    return subprocess.run([openssl, *args], capture_output=True, text=True, timeout=30, check=False)


def _verify(
    chain: IssuedChain, crl_file: Path, workdir: Path, at: int, *, all_levels: bool
) -> subprocess.CompletedProcess[str]:
    roots = _write(workdir / f"{chain.serial_hex}-roots.pem", list(chain.roots))
    middle = _write(workdir / f"{chain.serial_hex}-middle.pem", list(chain.intermediates))
    leaf = _write(workdir / f"{chain.serial_hex}-leaf.pem", [chain.leaf])
    check = "-crl_check_all" if all_levels else "-crl_check"
    return _openssl(
        "verify",
        check,
        "-CRLfile",
        str(crl_file),
        "-attime",
        str(at),
        "-CAfile",
        str(roots),
        "-untrusted",
        str(middle),
        str(leaf),
    )


def test_openssl_verifies_the_crl_signature_and_refuses_the_revoked_leaf(
    ca: LifecycleCa, tmp_path: Path
) -> None:
    good, bad = ca.issue("good"), ca.issue("bad")
    ca.revoker().revoke_serial(bad.serial_hex, "keyCompromise")
    publisher = ca.crls()
    publisher.refresh()
    at = int(ca.clock.now().timestamp())
    crls = _by_issuer(publisher, ca)
    intermediate_crl = tmp_path / "intermediate-crl.pem"
    intermediate_crl.write_bytes(crls["intermediate"].public_bytes(Encoding.PEM))
    issuer = _write(tmp_path / "issuer.pem", [good.intermediates[0]])
    checked = _openssl("crl", "-in", str(intermediate_crl), "-CAfile", str(issuer), "-noout")
    assert checked.returncode == 0 and "verify OK" in checked.stderr + checked.stdout, checked

    ok = _verify(good, intermediate_crl, tmp_path, at, all_levels=False)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stdout + ok.stderr
    refused = _verify(bad, intermediate_crl, tmp_path, at, all_levels=False)
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr

    every = tmp_path / "all-crls.pem"
    every.write_text(crl_pem_bundle(publisher.current_crls()))
    full = _verify(good, every, tmp_path, at, all_levels=True)
    assert full.returncode == 0, full.stdout + full.stderr


def _number_of_entries_for(publisher: CrlPublisher, ca: LifecycleCa, kind: str) -> int:
    return len(_by_issuer(publisher, ca)[kind])


def test_openssl_refuses_every_leaf_of_a_revoked_intermediate_with_full_crl_checks(
    ca: LifecycleCa, tmp_path: Path
) -> None:
    before = ca.issue("before")
    ca.revoker().revoke_intermediate(ca.rotation.slots().signer.id, "cACompromise")
    ca.watcher.poll()
    after = ca.issue("after")
    publisher = ca.crls()
    publisher.refresh()
    every = tmp_path / "all-crls.pem"
    every.write_text(crl_pem_bundle(publisher.current_crls()))
    at = int(ca.clock.now().timestamp())
    refused = _verify(before, every, tmp_path, at, all_levels=True)
    # refused at the leaf already: no CRL is published for a revoked intermediate (its key
    # may be compromised), and the root's CRL lists the intermediate itself
    assert refused.returncode != 0
    assert "unable to get certificate CRL" in refused.stderr
    assert _number_of_entries_for(publisher, ca, "root") == 1
    roots = _write(tmp_path / "root.pem", list(before.roots))
    intermediate = _write(tmp_path / "revoked-intermediate.pem", [before.intermediates[0]])
    direct = _openssl(
        "verify",
        "-crl_check",
        "-CRLfile",
        str(every),
        "-attime",
        str(at),
        "-CAfile",
        str(roots),
        str(intermediate),
    )
    assert direct.returncode != 0 and "certificate revoked" in direct.stderr, direct
    accepted = _verify(after, every, tmp_path, at, all_levels=True)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
