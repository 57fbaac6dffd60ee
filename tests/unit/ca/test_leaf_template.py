from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.ca.leaf_template import LeafTemplate, der_to_pem
from citadel.identity.clock import ManualClock
from citadel.identity.keys import KeyType, generate_private_key, key_type_of
from citadel.identity.x509_templates import LeafSpec, leaf_builder
from tests.unit.ca.ca_testkit import TRUST_DOMAIN, make_authorities


@pytest.mark.parametrize(
    ("key_type", "dns_names"),
    [
        (KeyType.EC_P256, ()),
        (KeyType.EC_P384, ()),
        (KeyType.RSA_2048, ()),
        (KeyType.EC_P256, ("web.example.org", "*.svc.example.org")),
    ],
    ids=["p256", "p384", "rsa-2048-key-encipherment", "with-dns-names"],
)
def test_template_builds_the_same_tbs_certificate_as_the_reference_builder(
    clock: ManualClock, key_type: KeyType, dns_names: tuple[str, ...]
) -> None:
    signer, _ = make_authorities(clock)
    private = generate_private_key(KeyType.EC_P256)
    public = generate_private_key(key_type).public_key()
    spec = LeafSpec(
        spiffe_id=TRUST_DOMAIN.spiffe_id("/ns/a/sa/b"),
        public_key=public,
        not_before=clock.now() - timedelta(minutes=2),
        not_after=clock.now() + timedelta(hours=1),
        serial=0x1234567890ABCDEF,
        dns_names=dns_names,
    )
    reference = leaf_builder(spec, signer.cert).sign(private, hashes.SHA256())
    ours = (
        LeafTemplate(signer.cert)
        .builder(
            spiffe_id=spec.spiffe_id,
            public_key=public,
            key_type=key_type_of(public),
            not_before=spec.not_before,
            not_after=spec.not_after,
            serial=spec.serial,
            dns_names=dns_names,
        )
        .sign(private, hashes.SHA256())
    )
    assert ours.tbs_certificate_bytes == reference.tbs_certificate_bytes


def test_der_to_pem_matches_cryptographys_pem(clock: ManualClock) -> None:
    signer, root = make_authorities(clock)
    for cert in (signer.cert, root.cert):
        assert der_to_pem(cert.public_bytes(Encoding.DER)) == cert.public_bytes(
            Encoding.PEM
        ).decode("ascii")
