"""Hostile JWT-SVIDs get InvalidJwtSvidError (or a subclass), never another exception.

Properties over JOSE headers and claims signed by a trusted key (so the claim checks are
reached) and over raw tokens; they found two bugs, kept here as regression cases:

* a header ``typ`` that is not a string (``"typ": []``) was looked up in a set:
  ``TypeError: unhashable type`` — before the signature was even checked, so from anyone;
* an ``exp`` near the end of year 9999 overflowed ``expiry + leeway``: ``OverflowError``
  (the comparison is now made on the validation time's side);
* an integer time claim of hundreds of digits (``"exp": 1000...0``) overflowed
  ``math.isfinite``: ``OverflowError`` (now "out of range").
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citadel.identity.jwt_errors import InvalidJwtSvidError, JwtSvidExpiredError
from citadel.identity.jwt_svid import validate_jwt_svid
from tests.fuzz.strategies import FUZZ_SETTINGS, jose_claims, jose_header, jose_times, json_bytes
from tests.fuzz.targets import jwt_svid as target

SUBJECTS = ["spiffe://example.org/ns/a/sa/b", "spiffe://other.org/x", "spiffe://example.org"]
HEADERS = jose_header(["ES256", "PS256", "RS256", "ES384", "HS256", "none"], ["ec", "rsa"])
CLAIMS = jose_claims(SUBJECTS, [target.AUDIENCE, "someone-else"], ["https://iss"])
VALID_CLAIMS = {
    "sub": SUBJECTS[0],
    "aud": [target.AUDIENCE],
    "exp": int(target.NOW.timestamp()) + 300,
}


def _validate(header: dict[str, Any], claims: dict[str, Any]) -> object:
    token = target.signed_token(json_bytes(header), json_bytes(claims))
    return validate_jwt_svid(token, target.AUDIENCE, target.AUTHORITIES, now=target.NOW)


@pytest.mark.parametrize(
    "typ", [["JWT"], {"a": 1}, 7, None], ids=["list", "object", "number", "null"]
)
def test_a_typ_that_is_not_a_string_is_refused(typ: object) -> None:
    header = {"alg": "ES256", "kid": "ec", "typ": typ}
    if typ is None:  # a null typ counts as absent
        assert _validate(header, VALID_CLAIMS)
        return
    with pytest.raises(InvalidJwtSvidError, match="typ"):
        _validate(header, VALID_CLAIMS)


@pytest.mark.parametrize(
    ("exp", "error"),
    [
        (253402300799, None),
        (253402300799.9, None),
        (-62135596800, JwtSvidExpiredError),
        (10**400, InvalidJwtSvidError),
        (-(10**400), InvalidJwtSvidError),
    ],
    ids=["end-of-9999", "end-of-9999-fraction", "year-1", "huge-int", "huge-negative-int"],
)
def test_an_exp_at_the_edge_of_the_calendar_is_handled(
    exp: float, error: type[Exception] | None
) -> None:
    claims = {**VALID_CLAIMS, "exp": exp, "nbf": -62135596800}
    if error is None:
        assert _validate({"alg": "ES256", "kid": "ec"}, claims)
    else:
        with pytest.raises(error):
            _validate({"alg": "ES256", "kid": "ec"}, claims)


@FUZZ_SETTINGS
@given(HEADERS, CLAIMS)
def test_any_signed_header_and_claims_validate_or_get_an_invalid_jwt_svid_error(
    header: dict[str, Any], claims: dict[str, Any]
) -> None:
    target.one_input(json_bytes(header) + b"\0" + json_bytes(claims))


@FUZZ_SETTINGS
@given(jose_times(SUBJECTS[0], target.AUDIENCE, "https://iss"))
def test_any_times_in_valid_claims_validate_or_get_an_invalid_jwt_svid_error(
    claims: dict[str, Any],
) -> None:
    target.one_input(json_bytes({"alg": "ES256", "kid": "ec"}) + b"\0" + json_bytes(claims))


@FUZZ_SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_as_a_token_get_an_invalid_jwt_svid_error(data: bytes) -> None:
    target.one_input(data)
