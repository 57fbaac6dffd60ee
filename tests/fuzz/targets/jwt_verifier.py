"""JWT and JWKS parsing of the authz layer (``citadel.authz.jwt_verifier``, ``jwk_set``).

Only the authz layer's typed errors may escape: TokenError (and JwksUnavailableError) from
``JwtVerifier.verify``/``peek_issuer``, JwksError from ``JwkSet.parse``. An input is used
as the raw token, as ``<header JSON> NUL <claims JSON>`` signed with a trusted key, and as
a JWKS document (both formats). An accepted token must carry the configured issuer, one of
the audiences and an ``exp`` after the validation time (minus the leeway).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from citadel.authz.errors import AuthenticationError, JwksError
from citadel.authz.jwk_set import JwkKey, JwkSet, StaticJwks
from citadel.authz.jwt_verifier import JwtVerifier, JwtVerifierConfig, peek_issuer
from citadel.authz.policy import JwksFormat
from citadel.identity.clock import ManualClock
from citadel.identity.jwt_svid import PrivateKeyJwtSigner

__all__ = ["ISSUER", "NOW", "one_input", "seeds"]

ISSUER = "https://issuer.fuzz.example"
AUDIENCES = frozenset({"citadel", "other"})
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
_EC = ec.generate_private_key(ec.SECP256R1())
_SIGNER = PrivateKeyJwtSigner("ec", _EC)
_JWKS = JwkSet({"ec": JwkKey(kid="ec", key=_EC.public_key(), alg="ES256")})
VERIFIER = JwtVerifier(
    JwtVerifierConfig(issuer=ISSUER, audiences=AUDIENCES),
    jwks=StaticJwks(_JWKS),
    clock=ManualClock(NOW),
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signed(header: bytes, claims: bytes) -> str:
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    return f"{signing_input}.{_b64(_SIGNER.sign(signing_input.encode('ascii')))}"


def _verify(token: str) -> None:
    with contextlib.suppress(AuthenticationError):
        peek_issuer(token)
    try:
        verified = VERIFIER.verify(token)
    except AuthenticationError:
        return
    assert verified.issuer == ISSUER, verified
    assert AUDIENCES & set(verified.audiences), verified
    leeway = VERIFIER.config.leeway
    assert verified.expires_at > NOW - leeway, verified


def _jwks(data: bytes) -> None:
    for fmt in JwksFormat:
        try:
            parsed = JwkSet.parse(data, fmt)
        except JwksError:
            continue
        for kid, key in parsed.keys.items():
            assert kid == key.kid and kid, parsed


def one_input(data: bytes) -> None:
    _verify(data.decode("utf-8", errors="surrogateescape"))
    header, _, claims = data.partition(b"\0")
    _verify(_signed(header, claims))
    _jwks(data)


def seeds() -> Iterable[bytes]:
    exp = int((NOW + timedelta(minutes=5)).timestamp())
    claims = {"iss": ISSUER, "sub": "alice", "aud": ["citadel"], "exp": exp, "nbf": exp - 600}
    header = {"alg": "ES256", "kid": "ec", "typ": "JWT"}
    h, c = json.dumps(header).encode(), json.dumps(claims).encode()
    yield h + b"\0" + c
    yield _signed(h, c).encode("ascii")
    ec_jwk = json.loads(ECAlgorithm.to_jwk(_EC.public_key()))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    yield json.dumps({"keys": [{**ec_jwk, "kid": "ec", "use": "sig", "alg": "ES256"}]}).encode()
    spiffe = [{**ec_jwk, "kid": "a", "use": "jwt-svid"}, {**rsa_jwk, "kid": "b", "use": "jwt-svid"}]
    yield json.dumps({"keys": spiffe}).encode()
