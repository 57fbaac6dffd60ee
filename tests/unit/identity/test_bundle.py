"""Trust bundles: PEM and the SPIFFE bundle format (SPIFFE_Trust_Domain_and_Bundle.md)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from citadel.identity.bundle import JwtAuthority, TrustBundle
from citadel.identity.errors import InvalidBundleError
from citadel.identity.keys import KeyType, generate_private_key, public_keys_equal
from citadel.identity.pem import MAX_PEM_BYTES, certificate_fingerprint
from tests.fixtures.pki import Pki

Document = dict[str, Any]


@pytest.fixture(scope="module")
def bundle(pki: Pki, other_pki: Pki) -> TrustBundle:
    """Two X.509 roots (as during a root rotation) and two JWT keys (EC and RSA)."""
    return TrustBundle(
        pki.trust_domain,
        x509_authorities=(pki.root, other_pki.root),
        jwt_authorities=(
            JwtAuthority("ec-key-1", generate_private_key(KeyType.EC_P256).public_key()),
            JwtAuthority("rsa-key-1", generate_private_key(KeyType.RSA_2048).public_key()),
        ),
        sequence=7,
        refresh_hint=timedelta(minutes=5),
    )


@pytest.fixture
def document(bundle: TrustBundle) -> Document:
    return bundle.to_spiffe_dict()


# --- PEM ---------------------------------------------------------------------------------


def test_pem_round_trip_keeps_the_roots_in_order(bundle: TrustBundle) -> None:
    pem = bundle.to_pem()
    assert pem.count("-----BEGIN CERTIFICATE-----") == 2
    back = TrustBundle.from_pem(bundle.trust_domain, pem)
    assert back.x509_authorities == bundle.x509_authorities
    assert back.trust_domain == bundle.trust_domain
    assert TrustBundle.from_pem(bundle.trust_domain, pem.encode()).fingerprints() == (
        bundle.fingerprints()
    )


def test_der_is_the_concatenated_der_roots(bundle: TrustBundle) -> None:
    expected = b"".join(c.public_bytes(serialization.Encoding.DER) for c in bundle.x509_authorities)
    assert bundle.to_der() == expected


def test_fingerprints_are_the_sha256_of_each_root(bundle: TrustBundle) -> None:
    assert bundle.fingerprints() == frozenset(
        certificate_fingerprint(c) for c in bundle.x509_authorities
    )


def test_with_roots_replaces_only_the_roots(bundle: TrustBundle, pki: Pki) -> None:
    replaced = bundle.with_roots([pki.root])
    assert replaced.x509_authorities == (pki.root,)
    assert replaced.jwt_authorities == bundle.jwt_authorities
    assert replaced.sequence == bundle.sequence


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param("", "trust bundle PEM holds no certificate", id="empty"),
        pytest.param("garbage", "trust bundle PEM holds no certificate", id="garbage"),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "trust bundle PEM: certificate #1 is malformed",
            id="malformed-block",
        ),
        pytest.param("x" * (MAX_PEM_BYTES + 1), "trust bundle PEM is larger than", id="oversized"),
    ],
)
def test_malformed_pem_bundle_is_rejected(data: str, fragment: str, pki: Pki) -> None:
    with pytest.raises(InvalidBundleError) as caught:
        TrustBundle.from_pem(pki.trust_domain, data)
    assert fragment in caught.value.message
    assert caught.value.kind == "invalid_bundle"


# --- SPIFFE bundle format -------------------------------------------------------------------


def test_spiffe_json_round_trip_keeps_roots_jwt_keys_sequence_and_hint(
    bundle: TrustBundle,
) -> None:
    back = TrustBundle.from_spiffe_json(bundle.trust_domain, bundle.to_spiffe_json())
    assert back.x509_authorities == bundle.x509_authorities
    assert [a.key_id for a in back.jwt_authorities] == ["ec-key-1", "rsa-key-1"]
    for got, want in zip(back.jwt_authorities, bundle.jwt_authorities, strict=True):
        assert public_keys_equal(got.public_key, want.public_key)
    assert back.sequence == 7
    assert back.refresh_hint == timedelta(minutes=5)


def test_spiffe_json_round_trip_from_bytes(bundle: TrustBundle) -> None:
    back = TrustBundle.from_spiffe_json(bundle.trust_domain, bundle.to_spiffe_json().encode())
    assert back.fingerprints() == bundle.fingerprints()


def test_bundle_without_refresh_hint_omits_it_and_reads_back_as_none(pki: Pki) -> None:
    plain = TrustBundle(pki.trust_domain, (pki.root,))
    document = plain.to_spiffe_dict()
    assert "spiffe_refresh_hint" not in document
    assert document["spiffe_sequence"] == 0
    assert TrustBundle.from_spiffe_json(pki.trust_domain, json.dumps(document)).refresh_hint is None


def test_x509_entries_follow_the_spiffe_format(bundle: TrustBundle) -> None:
    x509_entries = [k for k in bundle.to_spiffe_dict()["keys"] if k["use"] == "x509-svid"]
    assert len(x509_entries) == 2
    for entry, root in zip(x509_entries, bundle.x509_authorities, strict=True):
        assert "kid" not in entry
        assert len(entry["x5c"]) == 1
        assert base64.b64decode(entry["x5c"][0]) == root.public_bytes(serialization.Encoding.DER)
        assert entry["kty"] == "EC"  # the key parameters sit beside the certificate


def test_jwt_entries_follow_the_spiffe_format(bundle: TrustBundle) -> None:
    jwt_entries = [k for k in bundle.to_spiffe_dict()["keys"] if k["use"] == "jwt-svid"]
    assert [(e["kid"], e["kty"]) for e in jwt_entries] == [("ec-key-1", "EC"), ("rsa-key-1", "RSA")]
    assert all("x5c" not in e for e in jwt_entries)
    assert all("d" not in e for e in jwt_entries)  # public keys only


def test_document_carries_sequence_and_refresh_hint_in_seconds(document: Document) -> None:
    assert document["spiffe_sequence"] == 7
    assert document["spiffe_refresh_hint"] == 300


def test_jwks_dict_holds_only_the_jwt_keys(bundle: TrustBundle) -> None:
    jwks = bundle.jwks_dict()
    assert set(jwks) == {"keys"}
    assert [k["kid"] for k in jwks["keys"]] == ["ec-key-1", "rsa-key-1"]


def test_jwt_authority_needs_a_key_id() -> None:
    with pytest.raises(ValueError, match="JWT authority needs a key id"):
        JwtAuthority("", generate_private_key().public_key())


def _x509_index(document: Document) -> int:
    return next(i for i, k in enumerate(document["keys"]) if k["use"] == "x509-svid")


def _jwt_index(document: Document) -> int:
    return next(i for i, k in enumerate(document["keys"]) if k["use"] == "jwt-svid")


def _edit_x509(change: Callable[[Document], None]) -> Callable[[Document], Document]:
    def edit(document: Document) -> Document:
        change(document["keys"][_x509_index(document)])
        return document

    return edit


def _edit_jwt(change: Callable[[Document], None]) -> Callable[[Document], Document]:
    def edit(document: Document) -> Document:
        change(document["keys"][_jwt_index(document)])
        return document

    return edit


def _set(key: str, value: object) -> Callable[[Document], Document]:
    def edit(document: Document) -> Document:
        document[key] = value
        return document

    return edit


def _with_unknown_version(x5c: str) -> str:
    """cryptography raises InvalidVersion (not a ValueError) for a v8 certificate."""
    der = base64.b64decode(x5c)
    assert b"\xa0\x03\x02\x01\x02" in der[:16]  # [0] EXPLICIT INTEGER 2 (v3)
    return base64.b64encode(
        der.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x07", 1)
    ).decode()


def _raw(text: str) -> Callable[[Document], str]:
    return lambda document: text


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        pytest.param(_raw("{not json"), "SPIFFE bundle is not valid JSON", id="malformed-json"),
        pytest.param(_raw(""), "SPIFFE bundle is not valid JSON", id="empty-document"),
        pytest.param(
            _raw("[]"), "SPIFFE bundle must be an object with a 'keys' list", id="top-level-array"
        ),
        pytest.param(
            _raw("null"), "SPIFFE bundle must be an object with a 'keys' list", id="top-level-null"
        ),
        pytest.param(
            lambda d: {k: v for k, v in d.items() if k != "keys"},
            "SPIFFE bundle must be an object with a 'keys' list",
            id="missing-keys-list",
        ),
        pytest.param(
            _set("keys", {"use": "x509-svid"}),
            "SPIFFE bundle must be an object with a 'keys' list",
            id="keys-not-a-list",
        ),
        pytest.param(_set("keys", ["x"]), "bundle key #1 is not an object", id="key-not-object"),
        pytest.param(
            _edit_jwt(lambda e: e.update(use="enc")),
            "has unknown use 'enc'",
            id="unknown-use",
        ),
        pytest.param(_edit_jwt(lambda e: e.pop("use")), "has no 'use'", id="missing-use"),
        pytest.param(
            _edit_x509(lambda e: e.update(kid="root-1")),
            "(x509-svid) must not have a 'kid'",
            id="x509-entry-with-kid",
        ),
        pytest.param(
            _edit_x509(lambda e: e.update(x5c=e["x5c"] * 2)),
            "(x509-svid) needs exactly one x5c",
            id="x5c-with-two-certs",
        ),
        pytest.param(
            _edit_x509(lambda e: e.update(x5c=[])),
            "(x509-svid) needs exactly one x5c",
            id="x5c-empty",
        ),
        pytest.param(
            _edit_x509(lambda e: e.pop("x5c")),
            "(x509-svid) needs exactly one x5c",
            id="x5c-missing",
        ),
        pytest.param(
            _edit_x509(lambda e: e.update(x5c=e["x5c"][0])),
            "(x509-svid) needs exactly one x5c",
            id="x5c-string-not-list",
        ),
        pytest.param(
            _edit_x509(lambda e: e.update(x5c=["!!not base64!!"])),
            "has a malformed certificate",
            id="x5c-bad-base64",
        ),
        pytest.param(
            _edit_x509(lambda e: e.update(x5c=[base64.b64encode(b"not a certificate").decode()])),
            "has a malformed certificate",
            id="x5c-not-a-certificate",
        ),
        pytest.param(
            _edit_x509(lambda e: e.update(x5c=[_with_unknown_version(e["x5c"][0])])),
            "has a malformed certificate",
            id="x5c-unknown-version-regression",
        ),
        pytest.param(
            _edit_jwt(lambda e: e.pop("kid")), "(jwt-svid) has no 'kid'", id="jwt-entry-without-kid"
        ),
        pytest.param(
            _edit_jwt(lambda e: e.update(kid="")), "(jwt-svid) has no 'kid'", id="jwt-empty-kid"
        ),
        pytest.param(
            _edit_jwt(lambda e: e.update(kid=7)), "(jwt-svid) has no 'kid'", id="jwt-kid-not-str"
        ),
        pytest.param(
            _edit_jwt(lambda e: e.update(kty="OKP")),
            "bundle key type 'OKP' is not supported",
            id="jwt-unsupported-kty",
        ),
        pytest.param(
            _edit_jwt(lambda e: e.pop("x")), "bundle key is malformed", id="jwt-ec-missing-x"
        ),
        pytest.param(
            _edit_jwt(lambda e: e.update(x=12)), "bundle key is malformed", id="jwt-ec-x-not-str"
        ),
        pytest.param(
            _edit_jwt(lambda e: e.update(crv="P-999")),
            "bundle key is malformed",
            id="jwt-ec-unknown-curve",
        ),
        pytest.param(
            _set("spiffe_sequence", -1),
            "spiffe_sequence must be a non-negative integer",
            id="negative-sequence",
        ),
        pytest.param(
            _set("spiffe_sequence", True),
            "spiffe_sequence must be a non-negative integer",
            id="boolean-sequence",
        ),
        pytest.param(
            _set("spiffe_sequence", 1.5),
            "spiffe_sequence must be a non-negative integer",
            id="float-sequence",
        ),
        pytest.param(
            _set("spiffe_sequence", "7"),
            "spiffe_sequence must be a non-negative integer",
            id="string-sequence",
        ),
        pytest.param(
            _set("spiffe_sequence", 2**64),
            "spiffe_sequence must be a non-negative integer of at most",
            id="sequence-beyond-uint64",
        ),
        pytest.param(
            _set("spiffe_refresh_hint", -5),
            "spiffe_refresh_hint must be a non-negative integer",
            id="negative-refresh-hint",
        ),
        pytest.param(
            _set("spiffe_refresh_hint", False),
            "spiffe_refresh_hint must be a non-negative integer",
            id="boolean-refresh-hint",
        ),
        pytest.param(
            _set("spiffe_refresh_hint", 10**20),
            "spiffe_refresh_hint must be a non-negative integer of at most",
            id="huge-refresh-hint-overflow-regression",
        ),
        pytest.param(
            _raw("[" * 100_000 + "]" * 100_000),
            "SPIFFE bundle is nested too deeply",
            id="deep-nesting-recursion-regression",
        ),
        pytest.param(
            _raw(json.dumps({"keys": [], "pad": "x" * MAX_PEM_BYTES})),
            "SPIFFE bundle is too large",
            id="oversized-document",
        ),
        pytest.param(
            _raw('{"keys": [], "spiffe_sequence": ' + "9" * 5000 + "}"),
            "SPIFFE bundle is not valid JSON",
            id="integer-with-5000-digits",
        ),
    ],
)
def test_malformed_spiffe_bundle_is_rejected(
    edit: Callable[[Document], object], fragment: str, document: Document, pki: Pki
) -> None:
    edited = edit(copy.deepcopy(document))
    data = edited if isinstance(edited, str) else json.dumps(edited)
    with pytest.raises(InvalidBundleError) as caught:
        TrustBundle.from_spiffe_json(pki.trust_domain, data)
    assert fragment in caught.value.message


def test_oversized_document_counts_bytes_not_characters(pki: Pki) -> None:
    # 400k three-byte characters: under the limit in characters, over it in bytes
    data = json.dumps({"keys": [], "pad": "€" * 400_000}, ensure_ascii=False)
    assert len(data) < MAX_PEM_BYTES < len(data.encode())
    with pytest.raises(InvalidBundleError, match="SPIFFE bundle is too large"):
        TrustBundle.from_spiffe_json(pki.trust_domain, data)


def test_jwt_entry_with_a_private_key_is_rejected(pki: Pki) -> None:
    private = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    document = {"keys": [{**private, "use": "jwt-svid", "kid": "k"}]}
    with pytest.raises(InvalidBundleError, match="bundle key must be a public key"):
        TrustBundle.from_spiffe_json(pki.trust_domain, json.dumps(document))


def test_unknown_top_level_members_are_ignored(document: Document, pki: Pki) -> None:
    document["spiffe_extra"] = {"anything": [1, 2, 3]}
    back = TrustBundle.from_spiffe_json(pki.trust_domain, json.dumps(document))
    assert back.sequence == 7
