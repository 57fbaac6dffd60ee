"""Plug-in CA directories: loading, checking, installing (superset/subset root rule), and
refusing incomplete or inconsistent sets without touching the running CA."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from citadel.ca.authority_errors import ExternalAuthorityError, PluginCaError
from citadel.ca.config import CaConfig
from citadel.ca.context import open_ca
from citadel.ca.plugin_dir import REQUIRED_FILES, load_plugin_dir
from citadel.ca.plugin_install import install_plugin_ca, install_plugin_dir_before_start
from citadel.ca.plugin_watch import PluginCa
from citadel.ca.rotation.schedule import RotationJob
from citadel.ca.rotation.slots import Slot
from citadel.identity.clock import ManualClock
from citadel.identity.errors import ChainVerificationError
from citadel.identity.keys import generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.pem import certificate_fingerprint
from citadel.identity.spiffe_id import TrustDomain
from tests.unit.ca.lifecycle_kit import (
    TRUST_DOMAIN,
    LifecycleCa,
    OperatorCa,
    lifecycle_ca,
    pem,
    write_plugin_dir,
)


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock) as opened:
        yield opened


@pytest.fixture
def operator(clock: ManualClock) -> OperatorCa:
    return OperatorCa.root(clock, "A")


def _plugin(ca: LifecycleCa, directory: Path) -> PluginCa:
    return PluginCa(
        directory,
        repository=ca.repository,
        key_manager=ca.key_manager,
        clock=ca.clock,
        trust_domain=TRUST_DOMAIN,
        reload=ca.watcher.poll,
    )


def _own_root(ca: LifecycleCa) -> x509.Certificate:
    return ca.bundle()[0]


def test_a_complete_directory_loads_with_its_verified_path(
    tmp_path: Path, clock: ManualClock, operator: OperatorCa
) -> None:
    middle = operator.issue_ca(clock, "middle", path_length=1)
    signer = middle.issue_ca(clock, "signer")
    directory = write_plugin_dir(tmp_path / "plugin", signer, (middle.cert,), (operator.cert,))
    material = load_plugin_dir(directory, trust_domain=TRUST_DOMAIN, now=clock.now())
    assert material.path == (signer.cert, middle.cert, operator.cert)
    assert material.roots == (operator.cert,)
    assert material.crls == ()


@pytest.mark.parametrize("missing", REQUIRED_FILES)
def test_a_directory_with_a_missing_file_is_refused_and_the_ca_keeps_its_keys(
    ca: LifecycleCa, tmp_path: Path, operator: OperatorCa, missing: str
) -> None:
    signer = operator.issue_ca(ca.clock, "signer")
    directory = write_plugin_dir(
        tmp_path / "plugin", signer, (), (_own_root(ca), operator.cert), skip=(missing,)
    )
    before, signer_before = ca.snapshot(), ca.issuer.signer
    with pytest.raises(PluginCaError, match=f"incomplete: {missing} missing"):
        _plugin(ca, directory).apply()
    assert ca.snapshot() == before
    assert ca.issuer.signer is signer_before


def _bad_dirs(
    tmp_path: Path, clock: ManualClock, operator: OperatorCa
) -> dict[str, tuple[Path, str]]:
    signer = operator.issue_ca(clock, "signer")
    stranger = OperatorCa.root(clock, "stranger")
    cases: dict[str, tuple[Path, str]] = {}

    d = write_plugin_dir(tmp_path / "mismatch", signer, (), (operator.cert,))
    (d / "ca-key.pem").write_bytes(private_key_to_pkcs8_pem(generate_private_key()))
    cases["key does not match"] = (d, "ca-key.pem does not match ca-cert.pem")

    d = write_plugin_dir(tmp_path / "unchained", signer, (), (stranger.cert,))
    cases["chain to another root"] = (d, "does not chain to root-cert.pem")

    d = write_plugin_dir(tmp_path / "not-root", signer, (), (signer.cert,))
    cases["root not self-signed"] = (d, "not a self-signed root")

    expired = operator.issue_ca(clock, "old", ttl=timedelta(hours=-0.5))
    d = write_plugin_dir(tmp_path / "expired", expired, (), (operator.cert,))
    cases["expired ca-cert"] = (d, "not now")

    foreign = operator.issue_ca(clock, "foreign", trust_domain=TrustDomain("other.org"))
    d = write_plugin_dir(tmp_path / "foreign", foreign, (), (operator.cert,))
    cases["other trust domain"] = (d, "not trust domain example.org")

    d = write_plugin_dir(tmp_path / "garbage", signer, (), (operator.cert,))
    (d / "ca-cert.pem").write_bytes(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    cases["garbage certificate"] = (d, "malformed")

    d = write_plugin_dir(tmp_path / "leaf-as-ca", signer, (), (operator.cert,))
    (d / "ca-cert.pem").write_bytes(pem(operator.cert))
    cases["root given as ca-cert"] = (d, "does not match")

    d = write_plugin_dir(
        tmp_path / "crl-stranger", signer, (), (operator.cert,), crl=stranger.crl(clock)
    )
    cases["crl by a stranger"] = (d, "not signed by a certificate of the chain")

    d = write_plugin_dir(
        tmp_path / "crl-old",
        signer,
        (),
        (operator.cert,),
        crl=operator.crl(clock, ttl=timedelta(minutes=-1)),
    )
    cases["expired crl"] = (d, "expired")
    return cases


@pytest.mark.parametrize(
    "case",
    [
        "key does not match",
        "chain to another root",
        "root not self-signed",
        "expired ca-cert",
        "other trust domain",
        "garbage certificate",
        "root given as ca-cert",
        "crl by a stranger",
        "expired crl",
    ],
)
def test_an_inconsistent_directory_is_refused_with_a_clear_error_and_changes_nothing(
    ca: LifecycleCa, tmp_path: Path, operator: OperatorCa, case: str
) -> None:
    directory, message = _bad_dirs(tmp_path, ca.clock, operator)[case]
    before = ca.snapshot()
    with pytest.raises(PluginCaError, match=message):
        _plugin(ca, directory).apply()
    assert ca.snapshot() == before


def test_moving_to_a_plugin_ca_adds_its_root_first_then_drops_the_old_one(
    ca: LifecycleCa, tmp_path: Path, operator: OperatorCa
) -> None:
    own_root = _own_root(ca)
    before = ca.issue("before")
    signer = operator.issue_ca(ca.clock, "signer")
    plugin = _plugin(ca, tmp_path / "plugin")

    write_plugin_dir(tmp_path / "plugin", signer, (), (own_root, operator.cert))
    result = plugin.apply()
    assert result.changed and len(result.added_roots) == 1
    after = ca.issue("after")
    assert after.intermediates == (signer.cert,)
    assert ca.verifies(before) and ca.verifies(after)
    assert len(ca.bundle()) == 2

    write_plugin_dir(tmp_path / "plugin", signer, (), (operator.cert,))  # the subset
    result = plugin.apply()
    assert len(result.removed_roots) == 1
    assert [certificate_fingerprint(c) for c in ca.bundle()] == [
        certificate_fingerprint(operator.cert)
    ]
    assert ca.verifies(after)
    with pytest.raises(ChainVerificationError):
        ca.verifies(before)
    actions = [e.action for e in ca.repository.list_audit(limit=10_000)]
    assert actions.count("ca.plugin.install") == 2


def test_a_root_change_that_is_neither_superset_nor_subset_is_refused(
    ca: LifecycleCa, tmp_path: Path, operator: OperatorCa
) -> None:
    signer = operator.issue_ca(ca.clock, "signer")
    directory = write_plugin_dir(tmp_path / "plugin", signer, (), (operator.cert,))
    before, signer_before = ca.snapshot(), ca.issuer.signer
    with pytest.raises(PluginCaError, match="neither a superset nor a subset"):
        _plugin(ca, directory).apply()
    assert ca.snapshot() == before
    assert ca.issuer.signer is signer_before


def test_applying_the_same_directory_again_changes_nothing(
    ca: LifecycleCa, tmp_path: Path, operator: OperatorCa
) -> None:
    signer = operator.issue_ca(ca.clock, "signer")
    directory = write_plugin_dir(tmp_path / "plugin", signer, (), (_own_root(ca), operator.cert))
    plugin = _plugin(ca, directory)
    plugin.apply()
    before = ca.snapshot()
    assert not plugin.apply().changed
    assert ca.snapshot() == before


def test_a_new_ca_directory_starts_from_the_plugin_ca_without_a_self_signed_root(
    tmp_path: Path, clock: ManualClock, operator: OperatorCa
) -> None:
    signer = operator.issue_ca(clock, "signer")
    directory = write_plugin_dir(tmp_path / "plugin", signer, (), (operator.cert,))
    config = CaConfig(data_dir=tmp_path / "data", trust_domain=TRUST_DOMAIN, key_passphrase=b"pw")
    assert install_plugin_dir_before_start(config, directory, clock).changed
    with open_ca(config, clock) as opened:
        assert opened.issuer.signer.cert == signer.cert
        assert opened.issuer.trust_bundle().x509_authorities == (operator.cert,)
        kinds = sorted((r.kind, r.state) for r in opened.repository.list_authorities())
        assert kinds == [("intermediate", "active"), ("root", "active")]


def test_citadel_does_not_rotate_an_authority_held_by_the_plugin_ca(
    ca: LifecycleCa, tmp_path: Path, operator: OperatorCa
) -> None:
    signer = operator.issue_ca(ca.clock, "signer")
    plugin = _plugin(ca, tmp_path / "plugin")
    write_plugin_dir(tmp_path / "plugin", signer, (), (_own_root(ca), operator.cert))
    plugin.apply()
    write_plugin_dir(tmp_path / "plugin", signer, (), (operator.cert,))
    plugin.apply()
    with pytest.raises(ExternalAuthorityError, match="held by another CA"):
        ca.rotation.prepare(Slot.INTERMEDIATE)
    ca.clock.advance(timedelta(days=364))  # the signer is close to expiry: still not ours
    before = ca.snapshot()
    assert RotationJob(ca.rotation, ca.clock).run_once() == []
    assert ca.snapshot() == before


def test_the_plugin_crl_is_published_with_citadels_own(
    ca: LifecycleCa, tmp_path: Path, operator: OperatorCa
) -> None:
    signer = operator.issue_ca(ca.clock, "signer")
    crl = operator.crl(ca.clock, (12345,))
    publisher = ca.crls()
    plugin = PluginCa(
        write_plugin_dir(tmp_path / "plugin", signer, (), (_own_root(ca), operator.cert), crl=crl),
        repository=ca.repository,
        key_manager=ca.key_manager,
        clock=ca.clock,
        trust_domain=TRUST_DOMAIN,
        reload=ca.watcher.poll,
        crl_publisher=publisher,
    )
    plugin.apply()
    publisher.refresh()
    assert crl.public_bytes(Encoding.DER) in publisher.current_crls()


def test_installing_directly_needs_no_directory(
    ca: LifecycleCa, tmp_path: Path, operator: OperatorCa
) -> None:
    signer = operator.issue_ca(ca.clock, "signer")
    material = load_plugin_dir(
        write_plugin_dir(tmp_path / "p", signer, (), (_own_root(ca), operator.cert)),
        trust_domain=TRUST_DOMAIN,
        now=ca.clock.now(),
    )
    result = install_plugin_ca(
        material, repository=ca.repository, key_manager=ca.key_manager, clock=ca.clock
    )
    assert result.signer_id in ca.key_manager.list_keys()


def _ca_without_san(issuer: OperatorCa, clock: ManualClock) -> OperatorCa:
    """A CA certificate as generic tooling makes it: no SAN, no SPIFFE ID."""
    key = generate_private_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Plain CA")]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(clock.now() - timedelta(hours=1))
        .not_valid_after(clock.now() + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(issuer.key, hashes.SHA256())
    )
    return OperatorCa(cert, key)


def test_a_plain_ca_certificate_without_a_spiffe_id_can_be_plugged_in(
    ca: LifecycleCa, tmp_path: Path, operator: OperatorCa
) -> None:
    plain = _ca_without_san(operator, ca.clock)
    plugin = _plugin(ca, tmp_path / "plugin")
    write_plugin_dir(tmp_path / "plugin", plain, (), (_own_root(ca), operator.cert))
    assert plugin.apply().changed
    chain = ca.issue("plain")
    assert chain.intermediates == (plain.cert,)
    assert ca.verifies(chain)
