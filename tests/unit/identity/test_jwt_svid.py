"""JWT-SVIDs: minting through signer handles and strict validation (JWT-SVID.md)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.utils import der_to_raw_signature

from citadel.identity.bundle import JwtAuthority, TrustBundle
from citadel.identity.jwt_errors import (
    InvalidJwtSvidError,
    JwtAlgorithmError,
    JwtAudienceError,
    JwtSignatureError,
    JwtSvidExpiredError,
    UnknownJwtKeyError,
)
from citadel.identity.jwt_svid import (
    MAX_JWT_SVID_BYTES,
    JwtSigner,
    KeyHandleJwtSigner,
    PrivateKeyJwtSigner,
    ecdsa_der_to_jose,
    jwt_algorithm_for,
    mint_jwt_svid,
    validate_jwt_svid,
    validate_jwt_svid_with_bundles,
)
from citadel.identity.keys import KeyType, generate_private_key
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from tests.conftest import FIXED_NOW

TD = TrustDomain("example.org")
OTHER_TD = TrustDomain("other.org")
WEB = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")
TTL = timedelta(minutes=5)


@pytest.fixture(scope="module")
def signer() -> PrivateKeyJwtSigner:
    return PrivateKeyJwtSigner("key-1", generate_private_key(KeyType.EC_P256))


@pytest.fixture(scope="module")
def authorities(signer: PrivateKeyJwtSigner) -> tuple[JwtAuthority, ...]:
    return (signer.authority(),)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: object) -> str:
    return _b64(json.dumps(value).encode("utf-8"))


def forge(signer: JwtSigner, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A token with exactly this header and these claims, signed by ``signer``."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    return f"{signing_input}.{_b64(signer.sign(signing_input.encode('ascii')))}"


def good_claims(**overrides: Any) -> dict[str, Any]:
    now = int(FIXED_NOW.timestamp())
    claims: dict[str, Any] = {"sub": str(WEB), "aud": ["billing"], "iat": now, "exp": now + 300}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def good_header(signer: JwtSigner, **overrides: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": signer.algorithm, "kid": signer.key_id, "typ": "JWT"}
    header.update(overrides)
    return {k: v for k, v in header.items() if v is not None}


def validate(token: str, authorities: tuple[JwtAuthority, ...], **kwargs: Any) -> Any:
    kwargs.setdefault("now", FIXED_NOW)
    return validate_jwt_svid(token, "billing", authorities, **kwargs)


# --- minting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "algorithm", "expected_alg"),
    [
        (KeyType.EC_P256, None, "ES256"),
        (KeyType.EC_P384, None, "ES384"),
        (KeyType.RSA_2048, None, "RS256"),
        (KeyType.RSA_2048, "PS256", "PS256"),
        (KeyType.RSA_2048, "RS512", "RS512"),
    ],
    ids=["p256-es256", "p384-es384", "rsa-rs256", "rsa-ps256", "rsa-rs512"],
)
def test_minted_token_validates_with_the_signers_public_key(
    key_type: KeyType, algorithm: str | None, expected_alg: str
) -> None:
    signer = PrivateKeyJwtSigner("kid-a", generate_private_key(key_type), algorithm)
    token = mint_jwt_svid(signer, WEB, ["billing", "audit"], ttl=TTL, now=FIXED_NOW)
    svid = validate_jwt_svid(token, "audit", [signer.authority()], now=FIXED_NOW)
    assert svid.spiffe_id == WEB
    assert svid.audiences == ("billing", "audit")
    assert svid.expiry == FIXED_NOW + TTL
    assert jwt.get_unverified_header(token) == {"alg": expected_alg, "kid": "kid-a", "typ": "JWT"}


def test_minted_claims_are_exactly_sub_aud_iat_exp(signer: PrivateKeyJwtSigner) -> None:
    token = mint_jwt_svid(signer, WEB, ["billing"], ttl=TTL, now=FIXED_NOW)
    claims = jwt.decode(token, options={"verify_signature": False})
    now = int(FIXED_NOW.timestamp())
    assert claims == {"sub": str(WEB), "aud": ["billing"], "iat": now, "exp": now + 300}


def test_minted_token_verifies_with_pyjwt_as_an_independent_validator(
    signer: PrivateKeyJwtSigner,
) -> None:
    token = mint_jwt_svid(signer, WEB, ["billing"], ttl=TTL, now=FIXED_NOW, issuer="citadel")
    pem = signer.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    claims = jwt.decode(
        token,
        pem,
        algorithms=["ES256"],
        audience="billing",
        issuer="citadel",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["sub"] == str(WEB)


@pytest.mark.parametrize(
    "key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048], ids=["p256", "p384", "rsa"]
)
def test_key_handle_signer_turns_der_signatures_into_valid_jose(key_type: KeyType) -> None:
    """The CA's key handles sign bytes with DER ECDSA / PKCS#1 v1.5 and the matching digest."""
    private_key = generate_private_key(key_type)

    def sign_bytes(data: bytes) -> bytes:
        digest = hashes.SHA384() if key_type is KeyType.EC_P384 else hashes.SHA256()
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            return private_key.sign(data, ec.ECDSA(digest))
        from cryptography.hazmat.primitives.asymmetric import padding

        return private_key.sign(data, padding.PKCS1v15(), digest)

    signer = KeyHandleJwtSigner("ca-jwt-1", private_key.public_key(), sign_bytes)
    assert signer.algorithm == jwt_algorithm_for(private_key)
    token = mint_jwt_svid(signer, WEB, ["billing"], ttl=TTL, now=FIXED_NOW)
    authority = JwtAuthority("ca-jwt-1", private_key.public_key())
    assert validate(token, (authority,)).spiffe_id == WEB


def test_ecdsa_der_to_jose_matches_pyjwt_conversion() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    der = key.sign(b"data", ec.ECDSA(hashes.SHA384()))
    assert ecdsa_der_to_jose(der, 48) == der_to_raw_signature(der, key.curve)
    assert len(ecdsa_der_to_jose(der, 48)) == 96


def test_ecdsa_der_to_jose_rejects_values_wider_than_the_key() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        ecdsa_der_to_jose(encode_dss_signature(2**256, 1), 32)


@pytest.mark.parametrize(
    ("audiences", "ttl", "error", "match"),
    [
        ([], TTL, ValueError, "at least one audience"),
        (["billing", ""], TTL, ValueError, "non-empty"),
        (["a"] * 1 + [f"a{i}" for i in range(40)], TTL, ValueError, "at most 32"),
        (["billing"], timedelta(0), ValueError, "TTL must be positive"),
        ("billing", TTL, TypeError, "not a str"),
    ],
    ids=["no-audience", "empty-audience", "too-many-audiences", "zero-ttl", "str-audiences"],
)
def test_minting_rejects_misuse(
    signer: PrivateKeyJwtSigner,
    audiences: Any,
    ttl: timedelta,
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        mint_jwt_svid(signer, WEB, audiences, ttl=ttl, now=FIXED_NOW)


def test_minting_for_a_trust_domain_id_is_refused(signer: PrivateKeyJwtSigner) -> None:
    with pytest.raises(ValueError, match="not a trust-domain ID"):
        mint_jwt_svid(signer, TD.id, ["billing"], ttl=TTL, now=FIXED_NOW)


# --- validation: the named bad inputs -----------------------------------------------------


def test_token_signed_by_an_unknown_key_is_rejected(
    authorities: tuple[JwtAuthority, ...],
) -> None:
    stranger = PrivateKeyJwtSigner("stranger", generate_private_key(KeyType.EC_P256))
    token = mint_jwt_svid(stranger, WEB, ["billing"], ttl=TTL, now=FIXED_NOW)
    with pytest.raises(UnknownJwtKeyError, match="'stranger' is not in the trust bundle"):
        validate(token, authorities)


def test_token_with_a_known_kid_but_another_key_fails_the_signature_check(
    authorities: tuple[JwtAuthority, ...],
) -> None:
    impostor = PrivateKeyJwtSigner("key-1", generate_private_key(KeyType.EC_P256))
    token = mint_jwt_svid(impostor, WEB, ["billing"], ttl=TTL, now=FIXED_NOW)
    with pytest.raises(JwtSignatureError, match="does not verify"):
        validate(token, authorities)


def test_alg_none_is_rejected(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    token = f"{_segment({'alg': 'none', 'kid': 'key-1'})}.{_segment(good_claims())}."
    with pytest.raises(JwtAlgorithmError, match="'none' is not allowed"):
        validate(token, authorities)


def test_hmac_with_the_public_key_as_secret_is_rejected(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    """The classic key-confusion attack: HS256 keyed with the published public key."""
    pem = signer.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "kid": "key-1", "typ": "JWT"}
    signing_input = f"{_segment(header)}.{_segment(good_claims())}"
    import hmac

    mac = hmac.new(pem, signing_input.encode(), "sha256").digest()
    with pytest.raises(JwtAlgorithmError, match="'HS256' is not allowed"):
        validate(f"{signing_input}.{_b64(mac)}", authorities)


def test_expired_token_is_rejected(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    token = mint_jwt_svid(signer, WEB, ["billing"], ttl=TTL, now=FIXED_NOW)
    later = FIXED_NOW + TTL + timedelta(seconds=31)
    with pytest.raises(JwtSvidExpiredError, match="expired at"):
        validate(token, authorities, now=later)


def test_token_within_the_leeway_after_exp_is_accepted(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    token = mint_jwt_svid(signer, WEB, ["billing"], ttl=TTL, now=FIXED_NOW)
    assert validate(token, authorities, now=FIXED_NOW + TTL + timedelta(seconds=29))


def test_token_at_exp_without_leeway_is_rejected(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    token = mint_jwt_svid(signer, WEB, ["billing"], ttl=TTL, now=FIXED_NOW)
    with pytest.raises(JwtSvidExpiredError):
        validate(token, authorities, now=FIXED_NOW + TTL, leeway=timedelta(0))


def test_token_for_another_audience_is_rejected(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    token = mint_jwt_svid(signer, WEB, ["reports"], ttl=TTL, now=FIXED_NOW)
    with pytest.raises(JwtAudienceError, match="does not include 'billing'"):
        validate(token, authorities)


def test_oversized_token_is_rejected_before_parsing(
    authorities: tuple[JwtAuthority, ...],
) -> None:
    token = "a" * (MAX_JWT_SVID_BYTES + 1)
    with pytest.raises(InvalidJwtSvidError, match="larger than"):
        validate(token, authorities)


def test_tampered_payload_fails_the_signature_check(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    token = mint_jwt_svid(signer, WEB, ["billing"], ttl=TTL, now=FIXED_NOW)
    header, _, signature = token.split(".")
    evil = _segment(good_claims(sub="spiffe://example.org/admin"))
    with pytest.raises(JwtSignatureError):
        validate(f"{header}.{evil}.{signature}", authorities)


@pytest.mark.parametrize(
    ("header", "error", "match"),
    [
        ({"alg": None}, JwtAlgorithmError, "no 'alg'"),
        ({"alg": "ES256K"}, JwtAlgorithmError, "not allowed"),
        ({"alg": "EdDSA"}, JwtAlgorithmError, "not allowed"),
        ({"alg": "ES384"}, JwtAlgorithmError, "does not fit the signing key"),
        ({"alg": "RS256"}, JwtAlgorithmError, "does not fit the signing key"),
        ({"kid": None}, UnknownJwtKeyError, "no 'kid'"),
        ({"kid": ""}, UnknownJwtKeyError, "no 'kid'"),
        ({"typ": "at+jwt"}, InvalidJwtSvidError, "'typ' must be"),
        ({"jku": "https://evil.example/jwks"}, InvalidJwtSvidError, "'jku' is not allowed"),
        ({"crit": ["exp"]}, InvalidJwtSvidError, "'crit' is not allowed"),
    ],
    ids=[
        "no-alg",
        "es256k",
        "eddsa",
        "alg-for-another-curve",
        "rsa-alg-with-ec-key",
        "no-kid",
        "empty-kid",
        "bad-typ",
        "jku-header",
        "crit-header",
    ],
)
def test_bad_header_is_rejected(
    signer: PrivateKeyJwtSigner,
    authorities: tuple[JwtAuthority, ...],
    header: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    token = forge(signer, good_header(signer, **header), good_claims())
    with pytest.raises(error, match=match):
        validate(token, authorities)


def test_typ_jose_is_accepted(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    token = forge(signer, good_header(signer, typ="JOSE"), good_claims())
    assert validate(token, authorities).spiffe_id == WEB


def test_missing_typ_is_accepted(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    header = {"alg": "ES256", "kid": "key-1"}
    assert validate(forge(signer, header, good_claims()), authorities).spiffe_id == WEB


_NOW = int(FIXED_NOW.timestamp())


@pytest.mark.parametrize(
    ("claims", "error", "match"),
    [
        (good_claims(exp=None), JwtSvidExpiredError, "no 'exp'"),
        (good_claims(aud=None), JwtAudienceError, "no 'aud'"),
        (good_claims(aud=[]), JwtAudienceError, "non-empty list"),
        (good_claims(aud=["billing", 7]), JwtAudienceError, "only non-empty strings"),
        (good_claims(aud={"billing": 1}), JwtAudienceError, "string or a non-empty list"),
        (good_claims(sub=None), InvalidJwtSvidError, "no 'sub'"),
        (good_claims(sub="web"), InvalidJwtSvidError, "'sub' is not a SPIFFE ID"),
        (good_claims(sub="spiffe://EXAMPLE.org/web"), InvalidJwtSvidError, "lowercase"),
        (good_claims(exp="tomorrow"), InvalidJwtSvidError, "'exp' must be a number"),
        (good_claims(exp=True), InvalidJwtSvidError, "'exp' must be a number"),
        (good_claims(exp=10**30), InvalidJwtSvidError, "'exp' is out of range"),
        (good_claims(nbf=_NOW + 3600), JwtSvidExpiredError, "not valid before"),
        (good_claims(iat=_NOW + 3600), JwtSvidExpiredError, "issued in the future"),
    ],
    ids=[
        "no-exp",
        "no-aud",
        "empty-aud-list",
        "non-string-aud",
        "object-aud",
        "no-sub",
        "sub-not-spiffe",
        "sub-uppercase-td",
        "string-exp",
        "bool-exp",
        "huge-exp",
        "nbf-in-future",
        "iat-in-future",
    ],
)
def test_bad_claims_are_rejected(
    signer: PrivateKeyJwtSigner,
    authorities: tuple[JwtAuthority, ...],
    claims: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        validate(forge(signer, good_header(signer), claims), authorities)


def test_single_string_audience_is_accepted(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    token = forge(signer, good_header(signer), good_claims(aud="billing"))
    assert validate(token, authorities).audiences == ("billing",)


def test_issuer_is_checked_when_expected(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    token = mint_jwt_svid(signer, WEB, ["billing"], ttl=TTL, now=FIXED_NOW, issuer="other")
    with pytest.raises(InvalidJwtSvidError, match="issuer does not match"):
        validate(token, authorities, issuer="citadel")


def _raw(header: bytes, payload: bytes) -> str:
    return f"{_b64(header)}.{_b64(payload)}.AAAA"


@pytest.mark.parametrize(
    ("token", "match"),
    [
        ("", "empty"),
        ("abc.def", "three '.'-separated parts"),
        ("a.b.c.d", "three '.'-separated parts"),
        ("é.b.c", "ASCII"),
        ("!!!.e30.AAAA", "header is not base64url"),
        ("eyJ=.e30.AAAA", "header is not base64url"),
        (_raw(b"not json", b"{}"), "header is not a valid JSON object"),
        (_raw(b"[1, 2]", b"{}"), "header is not a JSON object"),
        (_raw(b'{"alg":"ES256","alg":"none","kid":"key-1"}', b"{}"), "duplicate member"),
        (_raw(b"[" * 5000 + b"]" * 5000, b"{}"), "nested too deeply|not a JSON object"),
    ],
    ids=[
        "empty",
        "two-parts",
        "four-parts",
        "non-ascii",
        "bad-base64",
        "base64-padding",
        "header-not-json",
        "header-array",
        "duplicate-header-member",
        "deeply-nested-header",
    ],
)
def test_malformed_token_is_rejected_with_a_typed_error(
    authorities: tuple[JwtAuthority, ...], token: str, match: str
) -> None:
    with pytest.raises(InvalidJwtSvidError, match=match):
        validate(token, authorities)


def test_duplicate_claim_is_rejected(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    header = _segment(good_header(signer))
    payload = _b64(
        b'{"sub":"spiffe://example.org/ns/default/sa/web","aud":["billing"],'
        b'"exp":1,"exp":99999999999}'
    )
    signing_input = f"{header}.{payload}"
    token = f"{signing_input}.{_b64(signer.sign(signing_input.encode()))}"
    with pytest.raises(InvalidJwtSvidError, match="duplicate member 'exp'"):
        validate(token, authorities)


def test_nan_exp_is_rejected(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    header = _segment(good_header(signer))
    payload = _b64(b'{"sub":"spiffe://example.org/w","aud":["billing"],"exp":NaN}')
    signing_input = f"{header}.{payload}"
    token = f"{signing_input}.{_b64(signer.sign(signing_input.encode()))}"
    with pytest.raises(InvalidJwtSvidError, match="constant NaN"):
        validate(token, authorities)


def test_weak_rsa_authority_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point)
    signer = PrivateKeyJwtSigner.__new__(PrivateKeyJwtSigner)  # bypass the constructor check
    signer._key_id, signer._algorithm, signer._key = "weak", "RS256", weak
    token = forge(signer, good_header(signer), good_claims())
    with pytest.raises(JwtAlgorithmError, match="too weak"):
        validate(token, (JwtAuthority("weak", weak.public_key()),))


def test_trust_domain_of_the_subject_must_match_when_given(
    signer: PrivateKeyJwtSigner, authorities: tuple[JwtAuthority, ...]
) -> None:
    token = mint_jwt_svid(signer, WEB, ["billing"], ttl=TTL, now=FIXED_NOW)
    with pytest.raises(InvalidJwtSvidError, match=r"trust domain example\.org, not other\.org"):
        validate(token, authorities, trust_domain=OTHER_TD)


def test_validator_needs_an_audience(authorities: tuple[JwtAuthority, ...]) -> None:
    with pytest.raises(ValueError, match="audience"):
        validate_jwt_svid("a.b.c", "", authorities, now=FIXED_NOW)


# --- validation with several trust domains (the Workload API's rule) -----------------------


def test_bundle_of_the_subjects_trust_domain_is_used(signer: PrivateKeyJwtSigner) -> None:
    other_signer = PrivateKeyJwtSigner("key-1", generate_private_key(KeyType.EC_P256))
    bundles = {
        TD: TrustBundle(TD, jwt_authorities=(signer.authority(),)),
        OTHER_TD: TrustBundle(OTHER_TD, jwt_authorities=(other_signer.authority(),)),
    }
    foreign = OTHER_TD.spiffe_id("/api")
    token = mint_jwt_svid(other_signer, foreign, ["billing"], ttl=TTL, now=FIXED_NOW)
    svid = validate_jwt_svid_with_bundles(token, "billing", bundles, now=FIXED_NOW)
    assert svid.spiffe_id == foreign


def test_a_key_of_one_domain_cannot_vouch_for_a_subject_of_another(
    signer: PrivateKeyJwtSigner,
) -> None:
    """Same kid in both bundles: a token from example.org's key claiming an other.org
    subject is checked against other.org's key and fails."""
    other_signer = PrivateKeyJwtSigner("key-1", generate_private_key(KeyType.EC_P256))
    bundles = {
        TD: TrustBundle(TD, jwt_authorities=(signer.authority(),)),
        OTHER_TD: TrustBundle(OTHER_TD, jwt_authorities=(other_signer.authority(),)),
    }
    token = mint_jwt_svid(signer, OTHER_TD.spiffe_id("/api"), ["billing"], ttl=TTL, now=FIXED_NOW)
    with pytest.raises(JwtSignatureError):
        validate_jwt_svid_with_bundles(token, "billing", bundles, now=FIXED_NOW)


def test_subject_from_an_untrusted_domain_is_rejected(signer: PrivateKeyJwtSigner) -> None:
    bundles = {TD: TrustBundle(TD, jwt_authorities=(signer.authority(),))}
    token = mint_jwt_svid(signer, OTHER_TD.spiffe_id("/api"), ["billing"], ttl=TTL, now=FIXED_NOW)
    with pytest.raises(UnknownJwtKeyError, match="no JWT keys are trusted for trust domain other"):
        validate_jwt_svid_with_bundles(token, "billing", bundles, now=FIXED_NOW)
