from __future__ import annotations

from datetime import timedelta

import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.keys import generate_private_key, private_key_to_pkcs8_pem
from node_agent.errors import SecretValidationError
from node_agent.secret_validation import (
    SecretValidator,
    load_tls_secret,
    load_trust_bundle_secret,
)
from node_agent.secrets import TlsCertificateSecret, TrustBundleSecret
from tests.fakes.fake_ca import FakePki
from tests.unit.node_agent.conftest import MakeTls


def test_valid_certificate_and_bundle_pass(
    clock: ManualClock, make_tls: MakeTls, root_secret: TrustBundleSecret
) -> None:
    validate = SecretValidator()
    validate(make_tls(), clock.now())
    validate(root_secret, clock.now())


def test_key_that_does_not_match_the_certificate_is_rejected(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    good = make_tls()
    other_key = private_key_to_pkcs8_pem(generate_private_key())
    bad = TlsCertificateSecret(
        name="default",
        cert_chain_pem=good.cert_chain_pem,
        private_key_pem=other_key,
        spiffe_id=good.spiffe_id,
        serial_hex=good.serial_hex,
        not_before=good.not_before,
        not_after=good.not_after,
    )
    with pytest.raises(SecretValidationError, match="does not match"):
        SecretValidator()(bad, clock.now())


def test_garbage_chain_is_rejected(clock: ManualClock, make_tls: MakeTls) -> None:
    good = make_tls()
    bad = TlsCertificateSecret(
        name="default",
        cert_chain_pem=b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        private_key_pem=good.private_key_pem,
        spiffe_id=None,
        serial_hex="0",
        not_before=good.not_before,
        not_after=good.not_after,
    )
    with pytest.raises(SecretValidationError, match="malformed"):
        SecretValidator()(bad, clock.now())


def test_expired_certificate_is_rejected_at_push_time(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    secret = make_tls(lifetime=timedelta(minutes=5))
    validate = SecretValidator()
    validate(secret, clock.now())
    clock.advance(timedelta(minutes=4))
    with pytest.raises(SecretValidationError, match="expired"):
        validate(secret, clock.now())


def test_certificate_not_yet_valid_is_rejected(clock: ManualClock, make_tls: MakeTls) -> None:
    secret = make_tls(not_before=clock.now() + timedelta(hours=1))
    with pytest.raises(SecretValidationError, match="not valid before"):
        SecretValidator()(secret, clock.now())


def test_empty_trust_bundle_is_rejected() -> None:
    with pytest.raises(SecretValidationError, match="holds no certificate"):
        load_trust_bundle_secret("ROOTCA", b"")


def test_mismatched_files_cannot_even_be_loaded(pki: FakePki, clock: ManualClock) -> None:
    from citadel.identity.spiffe_id import SpiffeId

    chain, _, _ = pki.leaf_files(
        SpiffeId.parse("spiffe://example.org/a"),
        not_before=clock.now(),
        not_after=clock.now() + timedelta(hours=1),
    )
    with pytest.raises(SecretValidationError, match="does not match"):
        load_tls_secret("file-cert:/a~/b", chain, private_key_to_pkcs8_pem(generate_private_key()))


def test_loaded_secret_carries_log_safe_names(make_tls: MakeTls) -> None:
    secret = make_tls()
    assert secret.spiffe_id == "spiffe://example.org/ns/default/sa/web"
    assert "PRIVATE KEY" not in repr(secret)
    assert "PRIVATE KEY" not in secret.describe()
