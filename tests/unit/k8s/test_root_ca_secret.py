"""Parsing the self-signed root Secret (``istio-ca-secret``)."""

from __future__ import annotations

import pytest

from citadel.k8s.controller_errors import CaSecretError, CaSecretMissingKeyError
from citadel.k8s.root_ca_secret import parse_root_ca
from tests.unit.k8s.pki_helpers import make_ca, make_leaf_like_cert

ROOT = make_ca("root")
OTHER = make_ca("other")


def test_root_secret_is_parsed() -> None:
    stored = parse_root_ca(
        {"ca-cert.pem": ROOT.cert_pem, "ca-key.pem": ROOT.key_pem},
        what="ns/s",
        resource_version="3",
    )
    assert stored.certificate == ROOT.cert
    assert stored.resource_version == "3"
    assert "key" not in repr(stored).replace("resource_version", "")


@pytest.mark.parametrize("missing", ["ca-cert.pem", "ca-key.pem"])
def test_root_secret_with_a_missing_key_names_it(missing: str) -> None:
    data = {"ca-cert.pem": ROOT.cert_pem, "ca-key.pem": ROOT.key_pem}
    del data[missing]
    with pytest.raises(CaSecretMissingKeyError) as caught:
        parse_root_ca(data, what="ns/istio-ca-secret")
    assert caught.value.key == missing


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ca-cert.pem": ROOT.cert_pem, "ca-key.pem": OTHER.key_pem}, "does not match"),
        ({"ca-cert.pem": b"junk", "ca-key.pem": ROOT.key_pem}, "holds no certificate"),
        ({"ca-cert.pem": ROOT.cert_pem, "ca-key.pem": b"junk"}, "ca-key"),
        (
            {
                "ca-cert.pem": (leaf := make_leaf_like_cert(ROOT)).cert_pem,
                "ca-key.pem": leaf.key_pem,
            },
            "CA=true",
        ),
    ],
    ids=["mismatched-key", "garbage-cert", "garbage-key", "not-a-ca"],
)
def test_unusable_root_secret_is_a_clear_error(data: dict[str, bytes], message: str) -> None:
    with pytest.raises(CaSecretError, match=message):
        parse_root_ca(data, what="ns/istio-ca-secret")
