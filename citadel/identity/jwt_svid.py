"""JWT-SVIDs: minting through a signer handle, and strict validation (JWT-SVID.md).

Minting never touches a private key directly: it calls a :class:`JwtSigner`, which the CA
builds over its key manager's handle (:class:`KeyHandleJwtSigner` turns a key handle's DER
ECDSA signatures into the raw ``r || s`` form JOSE requires).

Validation is strict and fails closed:

* the compact token is at most :data:`MAX_JWT_SVID_BYTES`, three base64url parts, JSON
  objects without duplicate members;
* the header holds only ``alg``, ``kid`` and ``typ``; ``alg`` is one of RS/ES/PS
  256/384/512 (``none`` and HMAC are refused) and fits the key; ``typ``, when present, is
  ``JWT`` or ``JOSE``; ``kid`` is present and names a key of the trust bundle;
* the signature verifies;
* ``sub`` is a SPIFFE ID (of the expected trust domain, when one is given);
* ``aud`` is present and contains the validator's audience (other audiences may be
  present: the validator only needs to find itself);
* ``exp`` is required and in the future; ``nbf`` and ``iat``, when present, are not in
  the future; ``iss`` must match when the validator expects one. ``leeway`` applies to
  all three time checks.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from citadel.identity.bundle import JwtAuthority, TrustBundle
from citadel.identity.clock import utc
from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.jwt_errors import (
    InvalidJwtSvidError,
    JwtAlgorithmError,
    JwtAudienceError,
    JwtSignatureError,
    JwtSvidExpiredError,
    UnknownJwtKeyError,
)
from citadel.identity.keys import PrivateKey, PublicKey
from citadel.identity.spiffe_id import SpiffeId, TrustDomain

__all__ = [
    "ALLOWED_ALGORITHMS",
    "DEFAULT_LEEWAY",
    "MAX_JWT_SVID_BYTES",
    "JwtSigner",
    "JwtSvid",
    "KeyHandleJwtSigner",
    "PrivateKeyJwtSigner",
    "ecdsa_der_to_jose",
    "jwt_algorithm_for",
    "mint_jwt_svid",
    "validate_jwt_svid",
    "validate_jwt_svid_with_bundles",
]

MAX_JWT_SVID_BYTES = 16 * 1024
MAX_AUDIENCES = 32
MAX_AUDIENCE_CHARS = 1024
DEFAULT_LEEWAY = timedelta(seconds=30)
_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
_TYPES = frozenset({"JWT", "JOSE"})
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_EC_SIZES = {"secp256r1": 32, "secp384r1": 48, "secp521r1": 66}
_HASHES = {"256": ECAlgorithm.SHA256, "384": ECAlgorithm.SHA384, "512": ECAlgorithm.SHA512}
ALLOWED_ALGORITHMS = frozenset(
    f"{family}{bits}" for family in ("RS", "ES", "PS") for bits in ("256", "384", "512")
)


class JwtSigner(Protocol):
    """Signs JWS signing input with one key; the private key stays behind it."""

    @property
    def key_id(self) -> str:
        """The ``kid`` published with the public key in the JWT bundle."""
        ...

    @property
    def algorithm(self) -> str:
        """The JOSE ``alg`` this signer produces (``ES256``...)."""
        ...

    def sign(self, signing_input: bytes) -> bytes:
        """The raw JOSE signature (``r || s`` for ECDSA) over ``signing_input``."""
        ...


def jwt_algorithm_for(key: PublicKey | PrivateKey) -> str:
    """The ``alg`` Citadel signs with for a key: ES256 (P-256), ES384 (P-384), RS256 (RSA).

    These match the digests the CA's key handles use (SHA-384 for P-384, else SHA-256).

    Raises:
        ValueError: a curve or key type that has no JWT-SVID algorithm here.
    """
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        for alg, curve in _EC_CURVES.items():
            if key.curve.name == curve and alg != "ES512":
                return alg
        raise ValueError(f"no JWT algorithm for curve {key.curve.name}")
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RS256"
    raise ValueError(f"no JWT algorithm for {type(key).__name__}")


def ecdsa_der_to_jose(der: bytes, key_size_bytes: int) -> bytes:
    """Convert a DER ECDSA signature to JOSE's fixed-width ``r || s``.

    Raises:
        ValueError: not a DER ECDSA signature, or r/s do not fit ``key_size_bytes``.
    """
    if key_size_bytes <= 0:
        raise ValueError("key size must be positive")
    r, s = decode_dss_signature(der)
    limit = 1 << (8 * key_size_bytes)
    if not (0 < r < limit and 0 < s < limit):
        raise ValueError("ECDSA signature does not fit the key size")
    return r.to_bytes(key_size_bytes, "big") + s.to_bytes(key_size_bytes, "big")


def _ec_size(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> int:
    size = _EC_SIZES.get(key.curve.name)
    if size is None:
        raise ValueError(f"curve {key.curve.name} is not usable for JWT-SVIDs")
    return size


class KeyHandleJwtSigner:
    """A :class:`JwtSigner` over a key manager's handle (``Key.sign_bytes``).

    ``sign_bytes`` must sign with :func:`jwt_algorithm_for`'s digest and return DER for
    ECDSA (converted here to ``r || s``) or PKCS#1 v1.5 bytes for RSA (used as they are).
    """

    def __init__(
        self, key_id: str, public_key: PublicKey, sign_bytes: Callable[[bytes], bytes]
    ) -> None:
        if not key_id:
            raise ValueError("JWT signer needs a key id")
        self._key_id = key_id
        self._algorithm = jwt_algorithm_for(public_key)
        self._ec_size = (
            _ec_size(public_key) if isinstance(public_key, ec.EllipticCurvePublicKey) else 0
        )
        self._sign_bytes = sign_bytes

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def sign(self, signing_input: bytes) -> bytes:
        signature = self._sign_bytes(signing_input)
        if self._ec_size:
            return ecdsa_der_to_jose(signature, self._ec_size)
        return signature

    def __repr__(self) -> str:
        return f"KeyHandleJwtSigner(key_id={self._key_id!r}, algorithm={self._algorithm!r})"


class PrivateKeyJwtSigner:
    """A :class:`JwtSigner` over an in-process private key (software keys and tests).

    ``algorithm`` defaults to :func:`jwt_algorithm_for`; RSA keys may also use RS384/512
    and PS256/384/512, P-521 keys ES512.
    """

    def __init__(self, key_id: str, private_key: PrivateKey, algorithm: str | None = None) -> None:
        if not key_id:
            raise ValueError("JWT signer needs a key id")
        alg = algorithm or jwt_algorithm_for(private_key)
        if alg not in ALLOWED_ALGORITHMS:
            raise ValueError(f"algorithm {alg!r} is not a JWT-SVID algorithm")
        _check_key_fits(alg, private_key.public_key(), ValueError)
        self._key_id = key_id
        self._algorithm = alg
        self._key = private_key

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def authority(self) -> JwtAuthority:
        """The bundle entry validators need for tokens from this signer."""
        return JwtAuthority(self._key_id, self._key.public_key())

    def sign(self, signing_input: bytes) -> bytes:
        return _jws_algorithm(self._algorithm).sign(signing_input, self._key)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"PrivateKeyJwtSigner(key_id={self._key_id!r}, algorithm={self._algorithm!r})"


@dataclass(frozen=True, slots=True)
class JwtSvid:
    """A validated JWT-SVID (the token itself is not kept, so it cannot end up in logs)."""

    spiffe_id: SpiffeId
    audiences: tuple[str, ...]
    expiry: datetime
    claims: Mapping[str, Any] = field(hash=False, compare=False, repr=False)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8"))


def mint_jwt_svid(
    signer: JwtSigner,
    spiffe_id: SpiffeId,
    audiences: Sequence[str],
    *,
    ttl: timedelta,
    now: datetime,
    issuer: str | None = None,
) -> str:
    """Mint a compact JWT-SVID: header ``{alg, kid, typ: JWT}``, claims ``sub aud exp iat``.

    Raises:
        ValueError: no audience, an empty or oversized audience, a non-positive TTL, a
            trust-domain ID as subject, or a signer with a disallowed algorithm.
        TypeError: ``spiffe_id`` is not a SpiffeId or ``audiences`` is a plain str.
    """
    if not isinstance(spiffe_id, SpiffeId):
        raise TypeError("spiffe_id must be a SpiffeId")
    if spiffe_id.is_trust_domain_id:
        raise ValueError("a JWT-SVID subject must be a workload ID, not a trust-domain ID")
    if isinstance(audiences, str):
        raise TypeError("audiences must be a sequence of str, not a str")
    unique = list(dict.fromkeys(audiences))
    if not unique:
        raise ValueError("a JWT-SVID needs at least one audience")
    if len(unique) > MAX_AUDIENCES:
        raise ValueError(f"a JWT-SVID may carry at most {MAX_AUDIENCES} audiences")
    for audience in unique:
        if not isinstance(audience, str) or not audience or len(audience) > MAX_AUDIENCE_CHARS:
            raise ValueError(
                f"each audience must be a non-empty str of at most {MAX_AUDIENCE_CHARS} chars"
            )
    if ttl <= timedelta(0):
        raise ValueError("JWT-SVID TTL must be positive")
    if signer.algorithm not in ALLOWED_ALGORITHMS:
        raise ValueError(f"signer algorithm {signer.algorithm!r} is not a JWT-SVID algorithm")
    issued = utc(now)
    header = {"alg": signer.algorithm, "kid": signer.key_id, "typ": "JWT"}
    claims: dict[str, Any] = {
        "sub": str(spiffe_id),
        "aud": unique,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if issuer is not None:
        claims["iss"] = issuer
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}"
    signature = signer.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url(signature)}"


# --- validation --------------------------------------------------------------------------


def _jws_algorithm(alg: str) -> ECAlgorithm | RSAAlgorithm | RSAPSSAlgorithm:
    digest = _HASHES[alg[2:]]
    if alg.startswith("ES"):
        return ECAlgorithm(digest)
    if alg.startswith("PS"):
        return RSAPSSAlgorithm(digest)
    return RSAAlgorithm(digest)


def _check_key_fits(alg: str, key: PublicKey, error: type[Exception]) -> None:
    if alg.startswith("ES"):
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _EC_CURVES[alg]:
            raise error(f"algorithm {alg} does not fit the signing key")
    elif not isinstance(key, rsa.RSAPublicKey):
        raise error(f"algorithm {alg} does not fit the signing key")
    elif key.key_size < 2048:
        raise error(f"RSA key of {key.key_size} bits is too weak (minimum 2048)")


def _decode_segment(segment: str, what: str) -> bytes:
    if not _B64URL.match(segment) or len(segment) % 4 == 1:
        raise InvalidJwtSvidError(f"JWT {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidJwtSvidError(f"JWT {what} is not base64url") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key[:32]!r}")
        result[key] = value
    return result


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_unique_members,
            parse_constant=_reject_constant,
        )
    except RecursionError as exc:
        raise InvalidJwtSvidError(f"JWT {what} is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJwtSvidError(f"JWT {what} is not a valid JSON object: {exc}"[:200]) from exc
    if not isinstance(value, dict):
        raise InvalidJwtSvidError(f"JWT {what} is not a JSON object")
    return value


def _split(token: str) -> tuple[str, str, str]:
    if not isinstance(token, str):
        raise TypeError("token must be a str")
    if not token:
        raise InvalidJwtSvidError("JWT-SVID is empty")
    if len(token) > MAX_JWT_SVID_BYTES:
        raise InvalidJwtSvidError(f"JWT-SVID is larger than {MAX_JWT_SVID_BYTES} bytes")
    if not token.isascii():
        raise InvalidJwtSvidError("JWT-SVID must be ASCII (JWS compact serialization)")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidJwtSvidError(
            "JWT-SVID must be a JWS compact serialization (three '.'-separated parts)"
        )
    return parts[0], parts[1], parts[2]


def _header_checks(header: Mapping[str, Any]) -> tuple[str, str]:
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise JwtAlgorithmError("JWT header has no 'alg'")
    if alg not in ALLOWED_ALGORITHMS:
        raise JwtAlgorithmError(
            f"JWT algorithm {alg[:16]!r} is not allowed (RS, ES or PS with 256, 384 or 512)"
        )
    extra = sorted(set(header) - _HEADER_MEMBERS)
    if extra:
        raise InvalidJwtSvidError(
            f"JWT header member {extra[0][:32]!r} is not allowed (only alg, kid and typ)"
        )
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ not in _TYPES):
        raise InvalidJwtSvidError("JWT 'typ' must be 'JWT' or 'JOSE'")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise UnknownJwtKeyError("JWT header has no 'kid'")
    return alg, kid


def _numeric_date(claims: Mapping[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if value is None:
        if name in claims:
            raise InvalidJwtSvidError(f"JWT claim '{name}' must be a number")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidJwtSvidError(f"JWT claim '{name}' must be a number")
    try:
        number = float(value)  # an integer of hundreds of digits does not fit
    except OverflowError as exc:
        raise InvalidJwtSvidError(f"JWT claim '{name}' is out of range") from exc
    if not math.isfinite(number):
        raise InvalidJwtSvidError(f"JWT claim '{name}' must be a number")
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidJwtSvidError(f"JWT claim '{name}' is out of range") from exc


def _audiences(claims: Mapping[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if aud is None:
        raise JwtAudienceError("JWT has no 'aud' claim")
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not values:
        raise JwtAudienceError("JWT 'aud' must be a string or a non-empty list of strings")
    if not all(isinstance(v, str) and v for v in values):
        raise JwtAudienceError("JWT 'aud' must hold only non-empty strings")
    return tuple(values)


def _subject(claims: Mapping[str, Any], trust_domain: TrustDomain | None) -> SpiffeId:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidJwtSvidError("JWT has no 'sub' claim")
    try:
        spiffe_id = SpiffeId.parse(sub)
    except InvalidSpiffeIdError as exc:
        raise InvalidJwtSvidError(f"JWT 'sub' is not a SPIFFE ID: {exc.message}") from exc
    if trust_domain is not None and spiffe_id.trust_domain != trust_domain:
        raise InvalidJwtSvidError(
            f"JWT subject belongs to trust domain {spiffe_id.trust_domain}, not {trust_domain}"
        )
    return spiffe_id


def _unverified_claims(token: str) -> dict[str, Any]:
    _, payload, _ = _split(token)
    return _json_object(_decode_segment(payload, "payload"), "payload")


def validate_jwt_svid(
    token: str,
    audience: str,
    jwt_authorities: Sequence[JwtAuthority],
    *,
    now: datetime,
    leeway: timedelta = DEFAULT_LEEWAY,
    trust_domain: TrustDomain | None = None,
    issuer: str | None = None,
) -> JwtSvid:
    """Validate a JWT-SVID for ``audience`` against the JWT keys of one trust domain.

    Args:
        token: the compact JWS.
        audience: the value this validator identifies with; it must be in ``aud``.
        jwt_authorities: the trust domain's JWT keys (``kid`` and public key).
        now: the validation time (from the injected clock).
        leeway: tolerated clock skew for ``exp``, ``nbf`` and ``iat``.
        trust_domain: when given, ``sub`` must belong to it.
        issuer: when given, ``iss`` must equal it.

    Raises:
        InvalidJwtSvidError: (or a subclass) the message names the failed rule.
        TypeError / ValueError: misuse (a non-str token, an empty audience).
    """
    if not isinstance(audience, str) or not audience:
        raise ValueError("the validator's audience must be a non-empty str")
    if leeway < timedelta(0):
        raise ValueError("leeway must not be negative")
    header_b64, payload_b64, signature_b64 = _split(token)
    header = _json_object(_decode_segment(header_b64, "header"), "header")
    alg, kid = _header_checks(header)
    authority = next((a for a in jwt_authorities if a.key_id == kid), None)
    if authority is None:
        raise UnknownJwtKeyError(f"JWT key id {kid[:64]!r} is not in the trust bundle")
    _check_key_fits(alg, authority.public_key, JwtAlgorithmError)
    signature = _decode_segment(signature_b64, "signature")
    algorithm = _jws_algorithm(alg)
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    if not algorithm.verify(signing_input, authority.public_key, signature):  # type: ignore[arg-type]
        raise JwtSignatureError("JWT signature does not verify")

    claims = _json_object(_decode_segment(payload_b64, "payload"), "payload")
    spiffe_id = _subject(claims, trust_domain)
    audiences = _audiences(claims)
    if audience not in audiences:
        raise JwtAudienceError(f"JWT audience does not include {audience[:128]!r}")
    at = utc(now)
    expiry = _numeric_date(claims, "exp")
    if expiry is None:
        raise JwtSvidExpiredError("JWT has no 'exp' claim")
    if at - leeway >= expiry:  # not expiry + leeway: that overflows for year-9999 dates
        raise JwtSvidExpiredError(f"JWT-SVID expired at {expiry.isoformat()}")
    not_before = _numeric_date(claims, "nbf")
    if not_before is not None and at + leeway < not_before:
        raise JwtSvidExpiredError(f"JWT-SVID is not valid before {not_before.isoformat()}")
    issued_at = _numeric_date(claims, "iat")
    if issued_at is not None and at + leeway < issued_at:
        raise JwtSvidExpiredError("JWT-SVID is issued in the future")
    if issuer is not None and claims.get("iss") != issuer:
        raise InvalidJwtSvidError("JWT issuer does not match")
    return JwtSvid(spiffe_id, audiences, expiry, MappingProxyType(claims))


def validate_jwt_svid_with_bundles(
    token: str,
    audience: str,
    bundles: Mapping[TrustDomain, TrustBundle],
    *,
    now: datetime,
    leeway: timedelta = DEFAULT_LEEWAY,
    issuer: str | None = None,
) -> JwtSvid:
    """Validate with the bundle of the subject's trust domain (Workload API rule).

    The trust domain is read from the (not yet verified) ``sub`` only to choose the keys;
    :func:`validate_jwt_svid` then checks the verified ``sub`` belongs to that domain.

    Raises:
        InvalidJwtSvidError: as :func:`validate_jwt_svid`, or no bundle for the domain.
    """
    trust_domain = _subject(_unverified_claims(token), None).trust_domain
    bundle = bundles.get(trust_domain)
    if bundle is None or not bundle.jwt_authorities:
        raise UnknownJwtKeyError(f"no JWT keys are trusted for trust domain {trust_domain}")
    return validate_jwt_svid(
        token,
        audience,
        bundle.jwt_authorities,
        now=now,
        leeway=leeway,
        trust_domain=trust_domain,
        issuer=issuer,
    )
