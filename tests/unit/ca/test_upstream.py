"""Upstream-signed intermediates: the CSR (signed in the key manager), the import checks,
and the rotation onto the imported intermediate."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from citadel.ca.authority_errors import (
    AlreadyPreparedError,
    ExternalAuthorityError,
    NoPendingKeyError,
    UpstreamImportError,
)
from citadel.ca.csr_der import build_signed_csr
from citadel.ca.errors import SigningError
from citadel.ca.external_key import ExternalKey
from citadel.ca.keymanager import MemoryKeyManager
from citadel.ca.rotation.schedule import RotationJob
from citadel.ca.rotation.slots import Slot
from citadel.ca.upstream import create_intermediate_csr, import_intermediate
from citadel.identity.clock import ManualClock
from citadel.identity.keys import KeyType
from citadel.identity.x509_svid import validate_signing_certificate
from citadel.identity.x509_templates import CaSpec, ca_builder
from tests.peers import require_binary
from tests.unit.ca.ca_testkit import OPENSSL_HINT
from tests.unit.ca.lifecycle_kit import (
    PROPAGATION,
    TRUST_DOMAIN,
    LifecycleCa,
    OperatorCa,
    lifecycle_ca,
    pem,
)


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock) as opened:
        yield opened


def _sign(
    upstream: OperatorCa, csr: x509.CertificateSigningRequest, clock: ManualClock
) -> x509.Certificate:
    """What the operator's CA does with the CSR."""
    spec = CaSpec(
        trust_domain=TRUST_DOMAIN,
        common_name="Upstream-signed Citadel intermediate",
        public_key=csr.public_key(),  # type: ignore[arg-type]
        not_before=clock.now() - timedelta(minutes=5),
        not_after=clock.now() + timedelta(days=90),
        path_length=0,
    )
    return ca_builder(spec, upstream.cert).sign(upstream.key, hashes.SHA256())


def _csr(ca: LifecycleCa) -> x509.CertificateSigningRequest:
    return create_intermediate_csr(
        repository=ca.repository, key_manager=ca.key_manager, clock=ca.clock, config=ca.config
    ).csr


def _import(ca: LifecycleCa, cert: x509.Certificate, *chain: x509.Certificate) -> object:
    return import_intermediate(
        pem(cert),
        pem(*chain),
        repository=ca.repository,
        key_manager=ca.key_manager,
        clock=ca.clock,
        config=ca.config,
    )


def test_the_csr_asks_for_a_ca_of_this_trust_domain_and_keeps_the_key_pending(
    ca: LifecycleCa, tmp_path: Path
) -> None:
    pending = create_intermediate_csr(
        repository=ca.repository, key_manager=ca.key_manager, clock=ca.clock, config=ca.config
    )
    csr = pending.csr
    assert csr.is_signature_valid
    constraints = csr.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org"]
    assert pending.key_id.startswith("upstream-") and pending.key_id in ca.key_manager.list_keys()
    assert ca.repository.list_audit(limit=10_000)[-1].action == "ca.upstream.csr"
    openssl = require_binary("openssl", hint=OPENSSL_HINT)
    (tmp_path / "req.pem").write_bytes(pending.csr_pem)
    checked = subprocess.run(
        [openssl, "req", "-in", str(tmp_path / "req.pem"), "-verify", "-noout"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_an_intermediate_under_a_new_upstream_root_rotates_in_like_a_prepared_root(
    ca: LifecycleCa,
) -> None:
    upstream = OperatorCa.root(ca.clock, "upstream")
    before = ca.issue("before")
    cert = _sign(upstream, _csr(ca), ca.clock)
    result = _import(ca, cert, upstream.cert)
    assert result.root_added  # type: ignore[attr-defined]
    ca.watcher.poll()
    assert upstream.cert in ca.bundle()  # the new root joined the bundle (a superset)
    slots = ca.rotation.slots()
    assert slots.next_root is not None and slots.next_root_intermediate is not None
    ca.clock.advance(PROPAGATION)
    ca.rotation.activate(Slot.ROOT)
    ca.watcher.poll()
    after = ca.issue("after")
    assert after.intermediates == (cert,)
    validate_signing_certificate(after.intermediates[0])
    assert ca.verifies(before) and ca.verifies(after)
    ca.clock.advance(timedelta(days=2))
    ca.rotation.retire(Slot.ROOT)
    ca.watcher.poll()
    assert ca.bundle() == (upstream.cert,)
    assert ca.verifies(ca.issue("later"))
    with pytest.raises(ExternalAuthorityError):  # the upstream's root: it signs our next one
        ca.rotation.prepare(Slot.INTERMEDIATE)


def test_a_second_new_root_waits_for_the_first(ca: LifecycleCa) -> None:
    ca.rotation.prepare(Slot.ROOT)
    upstream = OperatorCa.root(ca.clock, "upstream")
    cert = _sign(upstream, _csr(ca), ca.clock)
    before = ca.snapshot()
    with pytest.raises(AlreadyPreparedError, match="another new root"):
        _import(ca, cert, upstream.cert)
    assert ca.snapshot() == before


def test_an_intermediate_under_the_trusted_root_becomes_the_next_intermediate(
    ca: LifecycleCa,
) -> None:
    """The upstream is Citadel's own root here (an offline root signing a CSR)."""
    root_record = ca.rotation.slots().root
    root_key = ca.key_manager.get_key(root_record.key_ref)
    own_root = ca.bundle()[0]
    csr = _csr(ca)
    spec = CaSpec(
        trust_domain=TRUST_DOMAIN,
        common_name="Offline-signed intermediate",
        public_key=csr.public_key(),  # type: ignore[arg-type]
        not_before=ca.clock.now(),
        not_after=ca.clock.now() + timedelta(days=30),
        path_length=0,
    )
    cert = root_key.sign_certificate(ca_builder(spec, own_root))
    result = _import(ca, cert)  # empty chain file: the root is already trusted
    assert not result.root_added  # type: ignore[attr-defined]
    ca.rotation.activate(Slot.INTERMEDIATE)
    ca.watcher.poll()
    assert ca.issue().intermediates == (cert,)


def test_importing_an_intermediate_that_does_not_match_the_pending_key_changes_nothing(
    ca: LifecycleCa,
) -> None:
    upstream = OperatorCa.root(ca.clock, "upstream")
    _csr(ca)
    stranger = upstream.issue_ca(ca.clock, "someone-else")  # signed for another key
    before = ca.snapshot()
    with pytest.raises(NoPendingKeyError, match="matches none of the 1 pending key"):
        _import(ca, stranger.cert, upstream.cert)
    assert ca.snapshot() == before


def test_importing_with_no_pending_key_points_to_the_csr_command(ca: LifecycleCa) -> None:
    upstream = OperatorCa.root(ca.clock, "upstream")
    stranger = upstream.issue_ca(ca.clock, "x")
    before = ca.snapshot()
    with pytest.raises(NoPendingKeyError, match="citadel ca intermediate-csr"):
        _import(ca, stranger.cert, upstream.cert)
    assert ca.snapshot() == before


def test_importing_an_intermediate_that_chains_to_no_trusted_root_changes_nothing(
    ca: LifecycleCa,
) -> None:
    upstream = OperatorCa.root(ca.clock, "upstream")
    cert = _sign(upstream, _csr(ca), ca.clock)
    before = ca.snapshot()
    with pytest.raises(UpstreamImportError, match="does not chain to a trusted root"):
        _import(ca, cert)  # the chain file lacks the upstream root
    assert ca.snapshot() == before


@pytest.mark.parametrize("problem", ["not a ca", "expired", "two certificates", "garbage"])
def test_importing_an_unusable_certificate_changes_nothing(ca: LifecycleCa, problem: str) -> None:
    upstream = OperatorCa.root(ca.clock, "upstream")
    csr = _csr(ca)
    cert = _sign(upstream, csr, ca.clock)
    data = pem(cert)
    if problem == "not a ca":
        leaf_like = ca.issue()
        data = pem(leaf_like.leaf)
    elif problem == "expired":
        ca.clock.advance(timedelta(days=91))
    elif problem == "two certificates":
        data = pem(cert, upstream.cert)
    else:
        data = b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
    before = ca.snapshot()
    with pytest.raises(UpstreamImportError):
        import_intermediate(
            data,
            pem(upstream.cert),
            repository=ca.repository,
            key_manager=ca.key_manager,
            clock=ca.clock,
            config=ca.config,
        )
    assert ca.snapshot() == before


def test_importing_the_same_certificate_twice_is_refused(ca: LifecycleCa) -> None:
    upstream = OperatorCa.root(ca.clock, "upstream")
    cert = _sign(upstream, _csr(ca), ca.clock)
    _import(ca, cert, upstream.cert)
    before = ca.snapshot()
    with pytest.raises(UpstreamImportError, match="already installed"):
        _import(ca, cert, upstream.cert)
    assert ca.snapshot() == before


def test_the_schedule_does_not_rotate_under_an_upstream_root(ca: LifecycleCa) -> None:
    upstream = OperatorCa.root(ca.clock, "upstream")
    _import(ca, _sign(upstream, _csr(ca), ca.clock), upstream.cert)
    ca.clock.advance(PROPAGATION)
    ca.rotation.activate(Slot.ROOT)
    ca.clock.advance(timedelta(days=85))  # the upstream intermediate nears its end
    steps = RotationJob(ca.rotation, ca.clock).run_once()
    assert [(s.action, s.slot) for s in steps] == [("retire", Slot.ROOT)]  # only the old root


@pytest.mark.parametrize("key_type", list(KeyType), ids=lambda k: k.value)
def test_a_csr_signed_inside_the_key_manager_verifies_for_every_key_type(
    key_type: KeyType, tmp_path: Path
) -> None:
    keys = MemoryKeyManager()
    key = keys.generate_key("k", key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr test")])
    extension = x509.BasicConstraints(ca=True, path_length=0)
    csr = build_signed_csr(key, subject, [x509.Extension(extension.oid, True, extension)])
    assert csr.is_signature_valid and csr.subject == subject
    assert csr.extensions.get_extension_for_class(x509.BasicConstraints).critical
    openssl = require_binary("openssl", hint=OPENSSL_HINT)
    (tmp_path / "req.pem").write_bytes(csr.public_bytes(Encoding.PEM))
    checked = subprocess.run(
        [openssl, "req", "-in", str(tmp_path / "req.pem"), "-verify", "-noout"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_an_external_authority_refuses_to_sign(ca: LifecycleCa) -> None:
    upstream = OperatorCa.root(ca.clock, "upstream")
    key = ExternalKey(upstream.cert)
    assert key.key_id.startswith("external:")
    with pytest.raises(SigningError, match="held by another CA"):
        key.sign_bytes(b"x")
    with pytest.raises(SigningError):
        key.sign_crl(x509.CertificateRevocationListBuilder())
