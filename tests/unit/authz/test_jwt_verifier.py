from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from citadel.authz.errors import (
    JwksUnavailableError,
    TokenAlgorithmError,
    TokenAudienceError,
    TokenClaimError,
    TokenError,
    TokenExpiredError,
    TokenIssuerError,
    TokenMalformedError,
    TokenNotYetValidError,
    TokenSignatureError,
    TokenTooLargeError,
    UnknownKeyError,
)
from citadel.authz.jwks import FileJwks, JwkSet, StaticJwks
from citadel.authz.jwt_verifier import JwtVerifier, JwtVerifierConfig
from citadel.authz.policy import JwksFormat
from citadel.identity.clock import ManualClock
from tests.unit.authz.tokens import (
    AUDIENCE,
    ISSUER,
    Signer,
    b64url,
    hs256_with_secret,
    jwks_of,
    standard_claims,
    unsigned_token,
)

CONFIG = JwtVerifierConfig(issuer=ISSUER, audiences=frozenset({AUDIENCE, "other"}))


def _verifier(
    clock: ManualClock, *signers: Signer, config: JwtVerifierConfig = CONFIG
) -> JwtVerifier:
    return JwtVerifier(
        config, jwks=StaticJwks(JwkSet.parse(jwks_of(*signers), JwksFormat.JWKS)), clock=clock
    )


@pytest.mark.parametrize(
    "alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
)
def test_allowed_algorithms_verify(alg: str, clock: ManualClock) -> None:
    signer = Signer(alg, kid=f"k-{alg}")
    token = _verifier(clock, signer).verify(signer.token(standard_claims(clock.now())))
    assert token.issuer == ISSUER
    assert token.subject == "alice"
    assert token.audiences == (AUDIENCE,)
    assert token.algorithm == alg
    assert token.request_principal == f"{ISSUER}/alice"
    assert token.expires_at == clock.now() + timedelta(hours=1)


def test_audience_list_needs_one_accepted_entry(clock: ManualClock, signer: Signer) -> None:
    verifier = _verifier(clock, signer)
    ok = verifier.verify(signer.token(standard_claims(clock.now(), aud=["x", "other"])))
    assert ok.audiences == ("x", "other")
    with pytest.raises(TokenAudienceError):
        verifier.verify(signer.token(standard_claims(clock.now(), aud=["x", "y"])))


@pytest.mark.parametrize(
    ("offset", "error"),
    [
        (timedelta(hours=1, seconds=29), None),
        (timedelta(hours=1, seconds=30), TokenExpiredError),
        (timedelta(hours=2), TokenExpiredError),
    ],
    ids=["inside-leeway", "at-leeway-edge", "long-expired"],
)
def test_expiry_uses_the_injected_clock_and_leeway(
    clock: ManualClock, signer: Signer, offset: timedelta, error: type[Exception] | None
) -> None:
    token = signer.token(standard_claims(clock.now()))
    clock.advance(offset)
    verifier = _verifier(clock, signer)
    if error is None:
        verifier.verify(token)
    else:
        with pytest.raises(error):
            verifier.verify(token)


def test_not_before_and_issued_in_future_are_rejected(clock: ManualClock, signer: Signer) -> None:
    future = clock.now() + timedelta(minutes=5)
    verifier = _verifier(clock, signer)
    with pytest.raises(TokenNotYetValidError, match="nbf"):
        verifier.verify(signer.token(standard_claims(clock.now(), nbf=int(future.timestamp()))))
    with pytest.raises(TokenNotYetValidError, match="iat"):
        verifier.verify(signer.token(standard_claims(clock.now(), iat=int(future.timestamp()))))
    near = clock.now() + timedelta(seconds=20)
    verifier.verify(signer.token(standard_claims(clock.now(), nbf=int(near.timestamp()))))


def test_token_from_the_real_present_is_judged_by_the_manual_clock(signer: Signer) -> None:
    from datetime import UTC, datetime

    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    token = signer.token(standard_claims(datetime(2026, 6, 1, tzinfo=UTC)))
    with pytest.raises(TokenExpiredError):
        _verifier(clock, signer).verify(token)


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ({"aud": 5}, TokenClaimError, "'aud'"),
        ({"aud": []}, TokenClaimError, "'aud'"),
        ({"aud": ["citadel", 5]}, TokenClaimError, "'aud'"),
        ({"aud": None}, TokenClaimError, "'aud' is required"),
        ({"exp": "tomorrow"}, TokenClaimError, "'exp' must be a number"),
        ({"exp": True}, TokenClaimError, "'exp' must be a number"),
        ({"exp": None}, TokenClaimError, "'exp' is required"),
        ({"nbf": "now"}, TokenClaimError, "'nbf' must be a number"),
        ({"iat": [1]}, TokenClaimError, "'iat' must be a number"),
        ({"iss": 7}, TokenClaimError, "'iss'"),
        ({"sub": 7}, TokenClaimError, "'sub'"),
        ({"sub": ""}, TokenClaimError, "'sub'"),
        ({"iss": "https://evil.example"}, TokenIssuerError, "is not"),
        ({"aud": "someone-else"}, TokenAudienceError, "not accepted"),
    ],
    ids=[
        "aud-number",
        "aud-empty-list",
        "aud-list-with-number",
        "aud-missing",
        "exp-string",
        "exp-bool",
        "exp-missing",
        "nbf-string",
        "iat-list",
        "iss-number",
        "sub-number",
        "sub-empty",
        "wrong-issuer",
        "wrong-audience",
    ],
)
def test_bad_claims_are_rejected(
    clock: ManualClock,
    signer: Signer,
    override: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    claims = standard_claims(clock.now())
    claims.update(override)
    claims = {k: v for k, v in claims.items() if v is not None}
    with pytest.raises(error, match=message):
        _verifier(clock, signer).verify(signer.token(claims))


def test_null_exp_is_a_claim_error(clock: ManualClock, signer: Signer) -> None:
    claims = standard_claims(clock.now())
    claims["exp"] = None
    with pytest.raises(TokenClaimError, match="'exp'"):
        _verifier(clock, signer).verify(signer.token(claims))


def test_huge_exp_does_not_crash(clock: ManualClock, signer: Signer) -> None:
    token = _verifier(clock, signer).verify(signer.token(standard_claims(clock.now(), exp=1e300)))
    assert token.expires_at.year == 9999


@pytest.mark.parametrize(
    "header_alg",
    ["none", "HS256", "HS384", "HS512", "EdDSA", "RS1", "", None],
    ids=["none", "hs256", "hs384", "hs512", "eddsa", "rs1", "empty", "missing"],
)
def test_algorithms_outside_the_allow_list_are_rejected(
    clock: ManualClock, signer: Signer, header_alg: str | None
) -> None:
    import json

    header = {"typ": "JWT", "kid": signer.kid}
    if header_alg is not None:
        header["alg"] = header_alg
    token = f"{b64url(json.dumps(header).encode())}.{b64url(b'{}')}.sig"
    with pytest.raises(TokenAlgorithmError):
        _verifier(clock, signer).verify(token)


def test_hs256_keyed_with_the_public_key_is_rejected(clock: ManualClock, signer: Signer) -> None:
    token = hs256_with_secret(standard_claims(clock.now()), signer.public_pem(), kid=signer.kid)
    with pytest.raises(TokenAlgorithmError):
        _verifier(clock, signer).verify(token)


def test_unsigned_token_is_rejected(clock: ManualClock, signer: Signer) -> None:
    with pytest.raises(TokenAlgorithmError):
        _verifier(clock, signer).verify(
            unsigned_token(standard_claims(clock.now()), kid=signer.kid)
        )


def _verifier_without_jwk_alg(clock: ManualClock, *signers: Signer) -> JwtVerifier:
    document = {"keys": [s.public_jwk(with_alg=False) for s in signers]}
    return JwtVerifier(
        CONFIG, jwks=StaticJwks(JwkSet.parse(document, JwksFormat.JWKS)), clock=clock
    )


def test_header_alg_must_match_the_key_type(
    clock: ManualClock, signer: Signer, ec_signer: Signer
) -> None:
    claims = standard_claims(clock.now())
    ec_as_rsa = Signer("ES256", kid=signer.kid)  # EC signature labelled with the RSA key's kid
    with pytest.raises(TokenAlgorithmError, match="needs an EC key; key 'rsa-1' is not"):
        _verifier_without_jwk_alg(clock, signer).verify(ec_as_rsa.token(claims))
    rsa_as_ec = Signer("RS256", kid=ec_signer.kid)
    with pytest.raises(TokenAlgorithmError, match="needs an RSA key; key 'ec-1' is not"):
        _verifier_without_jwk_alg(clock, ec_signer).verify(rsa_as_ec.token(claims))
    es384 = Signer("ES384", kid=ec_signer.kid)
    with pytest.raises(TokenAlgorithmError, match="curve"):
        _verifier_without_jwk_alg(clock, ec_signer).verify(es384.token(claims))
    # Without a JWK alg, any RSA algorithm of the allow-list verifies with an RSA key.
    ps = Signer("PS256", kid=signer.kid)
    assert _verifier_without_jwk_alg(clock, signer).verify(ps.token(claims)).algorithm == "PS256"


def test_jwk_alg_pins_the_algorithm(clock: ManualClock, signer: Signer) -> None:
    with pytest.raises(TokenAlgorithmError, match="does not match key"):
        _verifier(clock, signer).verify(signer.token(standard_claims(clock.now()), alg="PS256"))


def test_unknown_kid_is_rejected(clock: ManualClock, signer: Signer) -> None:
    other = Signer("RS256", kid="not-published")
    with pytest.raises(UnknownKeyError, match="not-published"):
        _verifier(clock, signer).verify(other.token(standard_claims(clock.now())))


def test_missing_kid_is_rejected(clock: ManualClock, signer: Signer) -> None:
    import jwt

    token = jwt.encode(standard_claims(clock.now()), signer.key, algorithm="RS256")
    with pytest.raises(TokenMalformedError, match="kid"):
        _verifier(clock, signer).verify(token)


def test_signature_from_another_key_with_same_kid_is_rejected(
    clock: ManualClock, signer: Signer
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    impostor = Signer("RS256", kid=signer.kid)
    impostor.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(TokenSignatureError):
        _verifier(clock, signer).verify(impostor.token(standard_claims(clock.now())))


def test_tampered_payload_is_rejected(clock: ManualClock, signer: Signer) -> None:
    head, _, sig = signer.token(standard_claims(clock.now())).split(".")
    forged = b64url(
        b'{"iss":"https://issuer.example","sub":"root","aud":"citadel","exp":9999999999}'
    )
    with pytest.raises(TokenSignatureError):
        _verifier(clock, signer).verify(f"{head}.{forged}.{sig}")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.???.x",
        f"{b64url(b'[1]')}.{b64url(b'{}')}.x",
        f"{b64url(b'{')}.e30.x",
    ],
    ids=["empty", "two-parts", "four-parts", "not-base64", "header-not-object", "header-not-json"],
)
def test_malformed_tokens_are_rejected(clock: ManualClock, signer: Signer, token: str) -> None:
    with pytest.raises(TokenMalformedError):
        _verifier(clock, signer).verify(token)


def test_duplicate_json_members_are_rejected(clock: ManualClock, signer: Signer) -> None:
    header = b64url(b'{"alg":"RS256","kid":"rsa-1","alg":"none"}')
    with pytest.raises(TokenMalformedError):
        _verifier(clock, signer).verify(f"{header}.e30.x")


def test_crit_header_and_odd_typ_are_rejected(clock: ManualClock, signer: Signer) -> None:
    claims = standard_claims(clock.now())
    with pytest.raises(TokenMalformedError, match="critical"):
        _verifier(clock, signer).verify(signer.token(claims, headers={"crit": ["exp"], "exp": 1}))
    with pytest.raises(TokenMalformedError, match="typ"):
        _verifier(clock, signer).verify(signer.token(claims, headers={"typ": "at+jwt"}))
    _verifier(clock, signer).verify(signer.token(claims, headers={"typ": "JOSE"}))


def test_oversized_token_is_rejected_before_parsing(clock: ManualClock, signer: Signer) -> None:
    token = signer.token(standard_claims(clock.now(), pad="x" * 9000))
    with pytest.raises(TokenTooLargeError, match="8192"):
        _verifier(clock, signer).verify(token)


def test_deeply_nested_payload_is_malformed_not_a_crash(clock: ManualClock, signer: Signer) -> None:
    config = JwtVerifierConfig(
        issuer=ISSUER, audiences=frozenset({AUDIENCE}), max_token_bytes=65536
    )
    payload = b64url(b"[" * 20000 + b"]" * 20000)
    header = b64url(b'{"alg":"RS256","kid":"rsa-1"}')
    with pytest.raises(TokenError):
        _verifier(clock, signer, config=config).verify(f"{header}.{payload}.x")


def test_missing_jwks_file_fails_closed(clock: ManualClock, signer: Signer, tmp_path: Any) -> None:
    verifier = JwtVerifier(CONFIG, jwks=FileJwks(tmp_path / "absent.json"), clock=clock)
    with pytest.raises(JwksUnavailableError):
        verifier.verify(signer.token(standard_claims(clock.now())))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": "", "audiences": frozenset({"a"})},
        {"issuer": "i", "audiences": frozenset()},
        {"issuer": "i", "audiences": frozenset({"a"}), "leeway": timedelta(hours=1)},
        {"issuer": "i", "audiences": frozenset({"a"}), "algorithms": frozenset({"HS256"})},
    ],
    ids=["empty-issuer", "no-audience", "huge-leeway", "hmac-algorithm"],
)
def test_config_misuse_is_a_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JwtVerifierConfig(**kwargs)


def test_verify_rejects_non_string_token(clock: ManualClock, signer: Signer) -> None:
    with pytest.raises(TypeError):
        _verifier(clock, signer).verify(b"abc")  # type: ignore[arg-type]


def test_token_types_are_configurable(clock: ManualClock, signer: Signer) -> None:
    claims = standard_claims(clock.now())
    token = signer.token(claims, headers={"typ": "at+jwt"})
    with pytest.raises(TokenMalformedError, match="typ 'at\\+jwt' is not accepted"):
        _verifier(clock, signer).verify(token)
    config = JwtVerifierConfig(
        issuer=ISSUER, audiences=frozenset({AUDIENCE}), token_types=frozenset({"AT+JWT"})
    )
    assert _verifier(clock, signer, config=config).verify(token).subject == "alice"
