"""ROOTCA with CRLs: what Envoy receives, and the checks before it is pushed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography import x509

from citadel.identity.clock import ManualClock
from node_agent.config import parse_config
from node_agent.errors import ConfigError, SecretValidationError
from node_agent.sds.envoy_secrets import to_envoy_secret
from node_agent.secret_validation import SecretValidator
from node_agent.secrets import TrustBundleSecret
from tests.fakes.fake_ca import FakePki
from tests.unit.node_agent.crl_kit import crl_der


def _with_crls(
    root_secret: TrustBundleSecret, pki: FakePki, clock: ManualClock, **kw: object
) -> TrustBundleSecret:
    now = clock.now()
    crls = (
        crl_der(pki.root, pki.root_key, now=now, **kw),  # type: ignore[arg-type]
        crl_der(pki.intermediate, pki.intermediate_key, now=now, revoked=["ab12"], **kw),  # type: ignore[arg-type]
    )
    return replace(root_secret, crls_der=crls)


def test_crls_go_into_the_validation_context_as_pem_and_check_whole_chains(
    root_secret: TrustBundleSecret, pki: FakePki, clock: ManualClock
) -> None:
    secret = _with_crls(root_secret, pki, clock)
    context = to_envoy_secret(secret).validation_context
    assert context.trusted_ca.inline_bytes == secret.trusted_ca_pem
    blocks = context.crl.inline_bytes.split(b"-----END X509 CRL-----")[:-1]
    pems = [x509.load_pem_x509_crl(block + b"-----END X509 CRL-----\n") for block in blocks]
    assert [c.issuer for c in pems] == [pki.root.subject, pki.intermediate.subject]
    assert not context.only_verify_leaf_cert_crl
    leaf_only = to_envoy_secret(replace(secret, crl_leaf_only=True)).validation_context
    assert leaf_only.only_verify_leaf_cert_crl


def test_a_bundle_without_crls_sets_no_crl(root_secret: TrustBundleSecret) -> None:
    context = to_envoy_secret(root_secret).validation_context
    assert not context.HasField("crl")


def test_crls_change_the_fingerprint_and_the_description(
    root_secret: TrustBundleSecret, pki: FakePki, clock: ManualClock
) -> None:
    secret = _with_crls(root_secret, pki, clock)
    assert secret.fingerprint != root_secret.fingerprint
    assert replace(secret, crl_leaf_only=True).fingerprint != secret.fingerprint
    assert "2 CRL(s) checked on the chain" in secret.describe()


def test_an_expired_crl_is_never_pushed(
    root_secret: TrustBundleSecret, pki: FakePki, clock: ManualClock
) -> None:
    secret = _with_crls(root_secret, pki, clock, next_update=timedelta(minutes=30))
    validate = SecretValidator()
    validate(secret, clock.now())
    with pytest.raises(SecretValidationError, match="CRL expired"):
        validate(secret, clock.now() + timedelta(minutes=31))


def test_an_unparseable_crl_is_never_pushed(
    root_secret: TrustBundleSecret, clock: ManualClock
) -> None:
    secret = replace(root_secret, crls_der=(b"not a CRL",))
    with pytest.raises(SecretValidationError, match="CRL #1"):
        SecretValidator()(secret, clock.now())


BASE_CA: dict[str, object] = {
    "address": "127.0.0.1:1",
    "root_bundle": "/etc/roots.pem",
    "credential": {"type": "token_file", "path": "/t"},
}
BASE: dict[str, object] = {"spiffe_id": "spiffe://example.org/ns/default/sa/web"}


def _config(**ca: object) -> dict[str, object]:
    return {**BASE, "ca": {**BASE_CA, **ca}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, timedelta(seconds=2)), (0, None), (0.5, timedelta(milliseconds=500))],
    ids=["default", "off", "half-second"],
)
def test_bundle_refresh_setting(value: float | None, expected: timedelta | None) -> None:
    doc = _config() if value is None else _config(bundle_refresh_seconds=value)
    assert parse_config(doc).ca.bundle_refresh == expected


@pytest.mark.parametrize("value", [-1, 3601, "soon"], ids=["negative", "too-long", "text"])
def test_bad_bundle_refresh_setting_names_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match="bundle_refresh_seconds"):
        parse_config(_config(bundle_refresh_seconds=value))
