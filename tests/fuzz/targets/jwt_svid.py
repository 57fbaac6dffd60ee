"""JWT-SVID validation (``citadel.identity.jwt_svid``): only InvalidJwtSvidError may escape.

An input is used twice:

* decoded as the compact token itself (UTF-8, invalid bytes as lone surrogates);
* as ``<header JSON> NUL <claims JSON>``: the two parts are base64url-encoded and properly
  signed with a trusted key, so the checks behind the signature are reached too. What is
  accepted must name the validator's audience, a SPIFFE ID of the trust domain and an
  expiry after the validation time (minus the leeway).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from citadel.identity.bundle import TrustBundle
from citadel.identity.jwt_errors import InvalidJwtSvidError
from citadel.identity.jwt_svid import (
    DEFAULT_LEEWAY,
    PrivateKeyJwtSigner,
    validate_jwt_svid,
    validate_jwt_svid_with_bundles,
)
from citadel.identity.keys import KeyType, generate_private_key
from citadel.identity.spiffe_id import TrustDomain

__all__ = ["AUDIENCE", "NOW", "one_input", "seeds", "signed_token"]

TRUST_DOMAIN = TrustDomain("example.org")
AUDIENCE = "spiffe://example.org/ns/fuzz/sa/validator"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SIGNERS = {
    "ec": PrivateKeyJwtSigner("ec", generate_private_key(KeyType.EC_P256)),
    "rsa": PrivateKeyJwtSigner("rsa", generate_private_key(KeyType.RSA_2048), "PS256"),
}
AUTHORITIES = tuple(signer.authority() for signer in SIGNERS.values())
BUNDLES = {TRUST_DOMAIN: TrustBundle(TRUST_DOMAIN, (), AUTHORITIES)}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed_token(header: bytes, claims: bytes, signer_id: str = "ec") -> str:
    """``header`` and ``claims`` (any bytes) as a token with a valid signature."""
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    return f"{signing_input}.{_b64(SIGNERS[signer_id].sign(signing_input.encode('ascii')))}"


def _validate(token: str) -> None:
    try:
        svid = validate_jwt_svid(token, AUDIENCE, AUTHORITIES, now=NOW, trust_domain=TRUST_DOMAIN)
    except InvalidJwtSvidError:
        svid = None
    if svid is not None:
        assert AUDIENCE in svid.audiences, svid
        assert svid.spiffe_id.trust_domain == TRUST_DOMAIN, svid
        assert svid.expiry > NOW - DEFAULT_LEEWAY, svid
    with contextlib.suppress(InvalidJwtSvidError):
        validate_jwt_svid_with_bundles(token, AUDIENCE, BUNDLES, now=NOW)


def one_input(data: bytes) -> None:
    _validate(data.decode("utf-8", errors="surrogateescape"))
    header, _, claims = data.partition(b"\0")
    _validate(signed_token(header, claims, "rsa" if data[:1] == b"r" else "ec"))


def seeds() -> Iterable[bytes]:
    exp = int((NOW + timedelta(minutes=5)).timestamp())
    claims = {"sub": "spiffe://example.org/ns/a/sa/b", "aud": [AUDIENCE], "exp": exp}
    for header in (
        {"alg": "ES256", "kid": "ec", "typ": "JWT"},
        {"alg": "PS256", "kid": "rsa"},
        {"alg": "ES256", "kid": "ec", "typ": "JOSE"},
    ):
        h, c = json.dumps(header).encode(), json.dumps(claims).encode()
        yield h + b"\0" + c
        yield signed_token(h, c, str(header["kid"])).encode("ascii")
    yield b'{"alg":"ES256","kid":"ec"}\0{"sub":"spiffe://example.org/x","aud":"a","exp":1e300}'
