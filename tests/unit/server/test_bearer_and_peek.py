from __future__ import annotations

import pytest

from citadel.server.authn.bearer import bearer_token
from citadel.server.authn.jwt_peek import peek_jwt
from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError


def _call(*pairs: tuple[str, str]) -> CallContext:
    return CallContext.from_metadata(pairs)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("Authorization", "bearer  abc "),), "abc"),
        ((("authorization", "Basic dXNlcg=="),), None),
        ((), None),
    ],
    ids=["bearer", "case-and-spaces", "other-scheme", "absent"],
)
def test_bearer_token_is_read_from_the_authorization_header(
    pairs: tuple[tuple[str, str], ...], expected: str | None
) -> None:
    assert bearer_token(_call(*pairs), authenticator="t") == expected


@pytest.mark.parametrize(
    "pairs",
    [
        (("authorization", "Bearer a"), ("authorization", "Bearer b")),
        (("authorization", "Bearer "),),
        (("authorization", "Bearer " + "x" * 20000),),
    ],
    ids=["two-headers", "empty-token", "oversized"],
)
def test_unusable_authorization_headers_are_refused(pairs: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(CredentialRejectedError):
        bearer_token(_call(*pairs), authenticator="t")


def test_binary_metadata_is_ignored() -> None:
    call = CallContext.from_metadata([("x-bin", b"\x00"), ("clusterid", "c1")])
    assert call.metadata == (("clusterid", "c1"),)


def test_peek_reads_claims_without_verifying() -> None:
    token = "eyJhbGciOiJub25lIn0.eyJleHAiOjEwMCwiaXNzIjoiaSJ9."
    unverified = peek_jwt(token)
    assert unverified.header == {"alg": "none"}
    assert unverified.claims["iss"] == "i"
    assert unverified.expires_at is not None
    assert int(unverified.expires_at.timestamp()) == 100


@pytest.mark.parametrize(
    "token",
    ["abc", "a.b", "a.b.c.d", "%%%.e30.", "W10.e30.", ".e30."],
    ids=["one-part", "two-parts", "four-parts", "not-base64", "header-not-object", "empty-header"],
)
def test_peek_refuses_what_is_not_a_compact_jwt(token: str) -> None:
    with pytest.raises(ValueError):
        peek_jwt(token)


@pytest.mark.parametrize(
    "exp", ['"soon"', "true", "1e400", "null"], ids=["string", "bool", "overflow", "null"]
)
def test_peek_ignores_an_unusable_exp(exp: str) -> None:
    import base64

    payload = base64.urlsafe_b64encode(f'{{"exp":{exp}}}'.encode()).rstrip(b"=").decode()
    assert peek_jwt(f"e30.{payload}.").expires_at is None
