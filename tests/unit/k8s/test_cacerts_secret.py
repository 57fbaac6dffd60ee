"""Parsing the plug-in CA ``cacerts`` Secret: every defect gets a clear, named error."""

from __future__ import annotations

import base64

import pytest
from kubernetes import client as k8s

from citadel.identity.keys import public_keys_equal
from citadel.k8s.cacerts_secret import PluggedCaMaterial, parse_plugged_ca
from citadel.k8s.controller_errors import CaSecretError, CaSecretMissingKeyError
from citadel.k8s.secret_data import decode_secret_data
from tests.unit.k8s.pki_helpers import make_ca, make_crl_pem, make_leaf_like_cert

ROOT = make_ca("root")
INTERMEDIATE = make_ca("intermediate", ROOT)
OTHER = make_ca("other")


def entries(overrides: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """A complete, valid cacerts Secret's entries, with some replaced."""
    data = {
        "ca-cert.pem": INTERMEDIATE.cert_pem,
        "ca-key.pem": INTERMEDIATE.key_pem,
        "cert-chain.pem": INTERMEDIATE.cert_pem + ROOT.cert_pem,
        "root-cert.pem": ROOT.cert_pem,
    }
    data.update(overrides or {})
    return data


def test_complete_secret_is_parsed() -> None:
    material = parse_plugged_ca(entries(), resource_version="12")
    assert material.ca_cert == INTERMEDIATE.cert
    assert public_keys_equal(material.ca_key, INTERMEDIATE.key)
    assert material.cert_chain == (INTERMEDIATE.cert, ROOT.cert)
    assert material.roots == (ROOT.cert,)
    assert material.crl is None
    assert material.resource_version == "12"


def test_optional_crl_is_parsed() -> None:
    material = parse_plugged_ca(entries({"ca-crl.pem": make_crl_pem(INTERMEDIATE)}))
    assert material.crl is not None
    assert material.crl.issuer == INTERMEDIATE.cert.subject


@pytest.mark.parametrize(
    "missing", ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"]
)
def test_cacerts_secret_with_a_missing_key_names_it(missing: str) -> None:
    data = entries()
    del data[missing]
    with pytest.raises(CaSecretMissingKeyError) as caught:
        parse_plugged_ca(data, what="citadel-system/cacerts")
    assert caught.value.key == missing
    assert caught.value.kind == "ca_secret_missing_key"
    assert str(caught.value) == f"Secret citadel-system/cacerts has no {missing!r} entry (required)"


def test_an_empty_entry_counts_as_missing() -> None:
    with pytest.raises(CaSecretMissingKeyError, match=r"'root-cert\.pem'"):
        parse_plugged_ca(entries({"root-cert.pem": b"  \n"}))


BAD_CASES: list[tuple[str, dict[str, bytes], str]] = [
    ("garbage-ca-cert", entries({"ca-cert.pem": b"not a pem"}), "ca-cert.pem holds no certificate"),
    (
        "two-ca-certs",
        entries({"ca-cert.pem": INTERMEDIATE.cert_pem + ROOT.cert_pem}),
        "exactly one certificate",
    ),
    (
        "garbage-key",
        entries({"ca-key.pem": b"-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n"}),
        "ca-key.pem",
    ),
    ("key-of-another-ca", entries({"ca-key.pem": OTHER.key_pem}), "does not match ca-cert.pem"),
    (
        "ca-cert-that-is-not-a-ca",
        entries(
            {
                "ca-cert.pem": (leaf := make_leaf_like_cert(ROOT)).cert_pem,
                "ca-key.pem": leaf.key_pem,
            }
        ),
        "CA=true",
    ),
    ("garbage-chain", entries({"cert-chain.pem": b"junk"}), "cert-chain.pem holds no certificate"),
    ("garbage-root", entries({"root-cert.pem": b"junk"}), "root-cert.pem holds no certificate"),
    ("garbage-crl", entries({"ca-crl.pem": b"junk"}), "ca-crl.pem is not a PEM CRL"),
]


@pytest.mark.parametrize(
    ("data", "message"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_unusable_cacerts_content_is_a_clear_error(data: dict[str, bytes], message: str) -> None:
    with pytest.raises(CaSecretError, match=message.replace(".", r"\.")):
        parse_plugged_ca(data)


def test_material_repr_and_errors_never_show_the_key() -> None:
    material = parse_plugged_ca(entries())
    key_text = INTERMEDIATE.key_pem.decode()
    body = key_text.splitlines()[1]
    assert body not in repr(material)
    assert "ca_key" not in repr(material)
    assert body not in material.describe()
    with pytest.raises(CaSecretError) as caught:
        parse_plugged_ca(entries({"ca-key.pem": OTHER.key_pem}))
    assert OTHER.key_pem.decode().splitlines()[1] not in str(caught.value)


def test_secret_values_that_are_not_base64_name_the_entry() -> None:
    secret = k8s.V1Secret(data={"ca-key.pem": "@@not base64@@"})
    with pytest.raises(CaSecretError, match=r"'ca-key\.pem' is not valid base64"):
        decode_secret_data(secret, what="ns/cacerts")


def test_secret_values_are_decoded() -> None:
    secret = k8s.V1Secret(data={"root-cert.pem": base64.b64encode(ROOT.cert_pem).decode()})
    assert decode_secret_data(secret, what="ns/cacerts") == {"root-cert.pem": ROOT.cert_pem}


def test_type_is_frozen_material() -> None:
    material: PluggedCaMaterial = parse_plugged_ca(entries())
    with pytest.raises(AttributeError):
        material.ca_cert = ROOT.cert  # type: ignore[misc]
