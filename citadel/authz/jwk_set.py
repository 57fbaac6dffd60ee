"""JSON Web Key Sets: the key type, parsing, the source protocol and the in-memory source.

The SPIFFE format (a JWT bundle) uses only keys with ``use: jwt-svid``; the plain format
uses keys whose ``use`` is absent or ``sig``. Private key material makes the set invalid.
The file and URL sources live in :mod:`citadel.authz.jwks_file` and
:mod:`citadel.authz.jwks_url`; :mod:`citadel.authz.jwks` re-exports all of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError as JwtInvalidKeyError

from citadel.authz.errors import JwksError, UnknownKeyError
from citadel.authz.policy import JwksFormat

__all__ = [
    "ALLOWED_ALGORITHMS",
    "MAX_JWKS_BYTES",
    "JwkKey",
    "JwkSet",
    "JwksSource",
    "PublicKey",
    "StaticJwks",
]

ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
MAX_JWKS_BYTES = 1 << 20
_MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class JwkKey:
    """One usable verification key. ``alg`` is the JWK's own ``alg`` member, if any."""

    kid: str
    key: PublicKey
    alg: str | None = None


def _key_from_entry(entry: Mapping[str, Any]) -> PublicKey:
    kty = entry.get("kty")
    try:
        if kty == "RSA":
            rsa_key = RSAAlgorithm.from_jwk(dict(entry))
            if not isinstance(rsa_key, rsa.RSAPublicKey):
                raise JwksError("RSA key is not a public key")
            if rsa_key.key_size < _MIN_RSA_BITS:
                raise JwksError(f"RSA key is shorter than {_MIN_RSA_BITS} bits")
            return rsa_key
        if kty == "EC":
            if entry.get("crv") not in _CURVES:
                raise JwksError("EC key curve must be P-256, P-384 or P-521")
            ec_key = ECAlgorithm.from_jwk(dict(entry))
            if not isinstance(ec_key, ec.EllipticCurvePublicKey):
                raise JwksError("EC key is not a public key")
            return ec_key
    except (JwtInvalidKeyError, ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, JwksError):
            raise
        raise JwksError(f"{kty} key is malformed") from exc
    raise JwksError(f"unsupported key type {kty!r}")


def _usable(entry: Mapping[str, Any], fmt: JwksFormat) -> bool:
    use = entry.get("use")
    if fmt is JwksFormat.SPIFFE:
        return use == "jwt-svid"
    return use is None or use == "sig"


@dataclass(frozen=True)
class JwkSet:
    """Verification keys by ``kid``."""

    keys: Mapping[str, JwkKey]

    @classmethod
    def parse(cls, document: bytes | str | Mapping[str, Any], fmt: JwksFormat) -> JwkSet:
        """Parse a JWKS or SPIFFE bundle document.

        Keys of other types, uses or algorithms are skipped; a malformed usable key, a
        duplicate ``kid`` or any private key material makes the whole document invalid.

        Raises:
            JwksError: the message says what is wrong (it never quotes key material).
        """
        if isinstance(document, bytes | str):
            if len(document) > MAX_JWKS_BYTES:
                raise JwksError(f"JWKS is larger than {MAX_JWKS_BYTES} bytes")
            try:
                document = json.loads(document)
            except (ValueError, RecursionError) as exc:
                raise JwksError("JWKS is not valid JSON") from exc
        if not isinstance(document, Mapping):
            raise JwksError("JWKS must be a JSON object")
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise JwksError("JWKS must have a 'keys' list")
        keys: dict[str, JwkKey] = {}
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise JwksError(f"keys[{index}] is not an object")
            if _PRIVATE_MEMBERS & entry.keys():
                raise JwksError(f"keys[{index}] contains private key material")
            if not _usable(entry, fmt) or entry.get("kty") not in ("RSA", "EC"):
                continue
            kid = entry.get("kid")
            alg = entry.get("alg")
            if not isinstance(kid, str) or not kid:
                if fmt is JwksFormat.SPIFFE:
                    raise JwksError(f"keys[{index}] (jwt-svid) has no 'kid'")
                continue
            if alg is not None and (not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS):
                continue
            if kid in keys:
                raise JwksError(f"keys[{index}] repeats kid {kid!r}")
            try:
                key = _key_from_entry(entry)
            except JwksError as exc:
                raise JwksError(f"keys[{index}] (kid {kid!r}): {exc.message}") from exc
            keys[kid] = JwkKey(kid=kid, key=key, alg=alg)
        return cls(MappingProxyType(keys))

    def get(self, kid: str) -> JwkKey:
        """The key for ``kid``. Raises UnknownKeyError."""
        found = self.keys.get(kid)
        if found is None:
            raise UnknownKeyError(f"no verification key has kid {kid!r}")
        return found


class JwksSource(Protocol):
    def key(self, kid: str) -> JwkKey:
        """The key for ``kid``.

        Raises:
            UnknownKeyError: no key has that ``kid``.
            JwksUnavailableError: the keys could not be obtained.
        """
        ...


class StaticJwks:
    def __init__(self, keys: JwkSet) -> None:
        self._keys = keys

    def key(self, kid: str) -> JwkKey:
        return self._keys.get(kid)
