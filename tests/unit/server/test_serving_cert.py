from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, open_ca
from citadel.identity.chain import verify_svid_chain
from citadel.identity.clock import ManualClock
from citadel.identity.keys import load_private_key_pem, public_keys_equal
from citadel.identity.pem import load_certificates_pem
from citadel.identity.spiffe_id import TrustDomain
from citadel.server.serving_cert import ServingCertificate, ServingIdentity, rotation_due
from tests.unit.server.pki import make_pki

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("elapsed", "fraction", "due"),
    [
        (timedelta(hours=11, minutes=59), 0.5, False),
        (timedelta(hours=12), 0.5, True),
        (timedelta(hours=18), 0.75, True),
        (timedelta(hours=17), 0.75, False),
        (timedelta(hours=30), 0.5, True),
    ],
    ids=["just-before-half", "at-half", "at-three-quarters", "before-three-quarters", "expired"],
)
def test_rotation_is_due_after_the_fraction_of_life_since_issuance(
    elapsed: timedelta, fraction: float, due: bool
) -> None:
    assert rotation_due(
        issued_at=T0, not_after=T0 + timedelta(hours=24), now=T0 + elapsed,
        refresh_fraction=fraction,
    ) is due  # fmt: skip


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5], ids=["0", "1", "negative", "above-1"])
def test_refresh_fraction_must_be_strictly_between_zero_and_one(fraction: float) -> None:
    with pytest.raises(ValueError):
        rotation_due(issued_at=T0, not_after=T0, now=T0, refresh_fraction=fraction)


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[CaContext]:
    context = open_ca(
        CaConfig(data_dir=tmp_path / "ca", key_passphrase=b"unit"), clock, init_if_missing=True
    )
    yield context
    context.close()


def _serving(ca: CaContext, clock: ManualClock) -> ServingCertificate:
    identity = ServingIdentity.for_trust_domain(
        TrustDomain("cluster.local"), dns_names=("localhost", "citadel.svc"),
        ttl=timedelta(hours=1),
    )  # fmt: skip
    return ServingCertificate(issuer=ca.issuer, identity=identity, clock=clock)


def test_serving_certificate_is_an_audited_svid_of_the_ca(
    ca: CaContext, clock: ManualClock
) -> None:
    material = _serving(ca, clock).current()
    chain = load_certificates_pem(material.chain_pem)
    identity = verify_svid_chain(
        chain[0], chain[1:], ca.issuer.trust_bundle().x509_authorities, at=clock.now()
    )
    assert str(identity) == "spiffe://cluster.local/ns/citadel-system/sa/citadel"
    assert public_keys_equal(chain[0].public_key(), load_private_key_pem(material.key_pem))  # type: ignore[arg-type]
    record = ca.repository.get_certificate(material.serial_hex)
    assert record.requester == "server:serving-certificate"
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "citadel.svc"]


def test_refresh_renews_only_when_due(ca: CaContext, clock: ManualClock) -> None:
    serving = _serving(ca, clock)
    first = serving.current()
    assert not serving.refresh_if_due()
    clock.advance(timedelta(minutes=31))
    assert serving.refresh_if_due()
    second = serving.current()
    assert second.serial_hex != first.serial_hex
    assert second.version == first.version + 1
    assert not serving.refresh_if_due()


def test_a_change_of_the_ca_roots_renews_the_certificate(ca: CaContext, clock: ManualClock) -> None:
    serving = _serving(ca, clock)
    serving.current()
    issuer = ca.issuer
    extra_root = make_pki("cluster.local", now=clock.now()).root  # a root being rotated in
    issuer.update_authorities(issuer.signer, [*issuer.trust_bundle().x509_authorities, extra_root])
    assert serving.refresh_if_due()
    assert len(load_certificates_pem(serving.current().roots_pem)) == 2
