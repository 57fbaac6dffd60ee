"""Hostile JWTs and JWKS documents get the authz layer's typed errors, nothing else.

Properties over JOSE headers and claims (signed with a trusted key, so the checks behind the
signature are reached), raw token text and JWKS documents; and the replay of every crash
the coverage-guided fuzzer (tests/fuzz/fuzz_jwt_verifier.py) found:

* ``jwt_verifier/crash-e313ced8…``: a token whose signature part held non-ASCII characters
  (lone surrogates) reached PyJWT, whose ``str.encode("utf-8")`` raised
  ``UnicodeEncodeError`` instead of a TokenError. ``JwtVerifier`` now refuses non-ASCII
  tokens (a JWS compact serialization is ASCII) with TokenMalformedError.

The time properties found one more: an integer ``exp``/``nbf``/``iat`` of hundreds of
digits overflowed ``math.isfinite`` (``OverflowError``); it is now a TokenClaimError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citadel.authz.errors import TokenClaimError, TokenMalformedError
from tests.fuzz.strategies import (
    FUZZ_SETTINGS,
    crasher_files,
    jose_claims,
    jose_header,
    jose_times,
    json_bytes,
    json_values,
)
from tests.fuzz.targets import jwt_verifier as target

HEADERS = jose_header(["ES256", "ES384", "RS256", "PS256", "HS256", "none"], ["ec", "rsa"])
CLAIMS = jose_claims(["alice", ""], ["citadel", "other", "nobody"], [target.ISSUER, "evil"])


@pytest.mark.parametrize("path", crasher_files("jwt_verifier"), ids=lambda p: p.name[:14])
def test_jwt_verifier_crasher_is_replayed_without_an_untyped_error(path: Path) -> None:
    target.one_input(path.read_bytes())


@pytest.mark.parametrize(
    "tail", ["\udc80\udcff", "é", "\u202e"], ids=["lone-surrogates", "latin", "bidi-control"]
)
def test_a_non_ascii_token_is_malformed(tail: str) -> None:
    token = target._signed(b'{"alg":"ES256","kid":"ec"}', b'{"iss":"x"}') + tail
    with pytest.raises(TokenMalformedError, match="ASCII"):
        target.VERIFIER.verify(token)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_a_time_claim_too_large_for_a_float_is_a_claim_error(claim: str) -> None:
    claims = {"iss": target.ISSUER, "sub": "a", "aud": "citadel", "exp": 1780000000, claim: 10**400}
    token = target._signed(b'{"alg":"ES256","kid":"ec"}', json_bytes(claims))
    with pytest.raises(TokenClaimError, match="out of range"):
        target.VERIFIER.verify(token)


@FUZZ_SETTINGS
@given(HEADERS, CLAIMS)
def test_any_signed_header_and_claims_verify_or_get_a_token_error(
    header: dict[str, Any], claims: dict[str, Any]
) -> None:
    target.one_input(json_bytes(header) + b"\0" + json_bytes(claims))


@FUZZ_SETTINGS
@given(jose_times("alice", "citadel", target.ISSUER))
def test_any_times_in_valid_claims_verify_or_get_a_token_error(claims: dict[str, Any]) -> None:
    target.one_input(json_bytes({"alg": "ES256", "kid": "ec"}) + b"\0" + json_bytes(claims))


@FUZZ_SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_as_a_token_or_jwks_get_a_typed_error(data: bytes) -> None:
    target.one_input(data)


JWK_MEMBERS = st.sampled_from(["kty", "kid", "use", "alg", "crv", "x", "y", "n", "e", "d"])


@FUZZ_SETTINGS
@given(st.lists(st.dictionaries(JWK_MEMBERS, json_values), max_size=3))
def test_any_jwks_document_parses_or_gets_a_jwks_error(keys: list[dict[str, Any]]) -> None:
    target.one_input(json_bytes({"keys": keys}))
