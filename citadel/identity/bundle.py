"""Trust bundles: the X.509 roots and JWT keys of one trust domain.

Two encodings, both directions: concatenated PEM (X.509 roots only), and the SPIFFE bundle
format (a JWKS with ``spiffe_sequence`` and ``spiffe_refresh_hint``; X.509 entries carry
``use: x509-svid`` and one ``x5c``, JWT entries carry ``use: jwt-svid`` and a ``kid``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError as JwkError

from citadel.identity.errors import InvalidBundleError, InvalidCertificateError
from citadel.identity.keys import PublicKey
from citadel.identity.pem import MAX_PEM_BYTES, certificate_fingerprint, load_certificates_pem
from citadel.identity.spiffe_id import TrustDomain

__all__ = ["JwtAuthority", "TrustBundle"]

USE_X509 = "x509-svid"
USE_JWT = "jwt-svid"
# Bounds that keep hostile numbers out of timedelta (OverflowError) and out of peers that
# hold these fields in fixed-width integers.
MAX_SEQUENCE = 2**64 - 1
MAX_REFRESH_HINT_SECONDS = 2**31 - 1


@dataclass(frozen=True, slots=True)
class JwtAuthority:
    """A public JWT-SVID signing key and its ``kid``."""

    key_id: str
    public_key: PublicKey

    def __post_init__(self) -> None:
        if not self.key_id:
            raise ValueError("JWT authority needs a key id")


def _public_jwk(key: PublicKey) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))
    return dict(RSAAlgorithm.to_jwk(key, as_dict=True))


def _key_from_jwk(entry: Mapping[str, Any]) -> PublicKey:
    kty = entry.get("kty")
    # Outside the try below: InvalidBundleError is a ValueError and would be re-labelled.
    if kty not in ("EC", "RSA"):
        raise InvalidBundleError(f"bundle key type {str(kty)[:16]!r} is not supported")
    key: object
    try:
        if kty == "EC":
            key = ECAlgorithm.from_jwk(dict(entry))
        else:
            key = RSAAlgorithm.from_jwk(dict(entry))
    except (JwkError, ValueError, KeyError, TypeError) as exc:
        raise InvalidBundleError("bundle key is malformed") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise InvalidBundleError("bundle key must be a public key")
    return key


@dataclass(frozen=True, slots=True)
class TrustBundle:
    trust_domain: TrustDomain
    x509_authorities: tuple[x509.Certificate, ...] = ()
    jwt_authorities: tuple[JwtAuthority, ...] = ()
    sequence: int = 0
    refresh_hint: timedelta | None = field(default=None)

    # --- PEM -----------------------------------------------------------------------------
    def to_pem(self) -> str:
        return "".join(
            c.public_bytes(serialization.Encoding.PEM).decode("ascii")
            for c in self.x509_authorities
        )

    def to_der(self) -> bytes:
        """Concatenated DER roots, as the Workload API carries them."""
        return b"".join(c.public_bytes(serialization.Encoding.DER) for c in self.x509_authorities)

    @classmethod
    def from_pem(cls, trust_domain: TrustDomain, data: bytes | str) -> TrustBundle:
        try:
            roots = load_certificates_pem(data, what="trust bundle PEM")
        except InvalidCertificateError as exc:
            raise InvalidBundleError(exc.message) from exc
        return cls(trust_domain, tuple(roots))

    # --- SPIFFE JWKS ---------------------------------------------------------------------
    def to_spiffe_dict(self) -> dict[str, Any]:
        keys: list[dict[str, Any]] = []
        for cert in self.x509_authorities:
            jwk = _public_jwk(cert.public_key())  # type: ignore[arg-type]
            jwk["use"] = USE_X509
            jwk["x5c"] = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
            keys.append(jwk)
        for authority in self.jwt_authorities:
            jwk = _public_jwk(authority.public_key)
            jwk["use"] = USE_JWT
            jwk["kid"] = authority.key_id
            keys.append(jwk)
        document: dict[str, Any] = {"keys": keys, "spiffe_sequence": self.sequence}
        if self.refresh_hint is not None:
            document["spiffe_refresh_hint"] = int(self.refresh_hint.total_seconds())
        return document

    def to_spiffe_json(self) -> str:
        return json.dumps(self.to_spiffe_dict(), indent=2, sort_keys=True)

    def jwks_dict(self) -> dict[str, Any]:
        """Only the JWT keys, as a plain JWKS (what JWT validators consume)."""
        return {"keys": [k for k in self.to_spiffe_dict()["keys"] if k["use"] == USE_JWT]}

    @classmethod
    def from_spiffe_json(cls, trust_domain: TrustDomain, data: bytes | str) -> TrustBundle:
        """Parse the SPIFFE bundle format.

        Raises:
            InvalidBundleError: not JSON, oversized, or an entry breaks the format.
        """
        size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
        if size > MAX_PEM_BYTES:
            raise InvalidBundleError("SPIFFE bundle is too large")
        try:
            document = json.loads(data)
        except RecursionError as exc:  # deeply nested arrays/objects
            raise InvalidBundleError("SPIFFE bundle is nested too deeply") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidBundleError("SPIFFE bundle is not valid JSON") from exc
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise InvalidBundleError("SPIFFE bundle must be an object with a 'keys' list")
        roots: list[x509.Certificate] = []
        jwt_keys: list[JwtAuthority] = []
        for index, entry in enumerate(document["keys"]):
            if not isinstance(entry, dict):
                raise InvalidBundleError(f"bundle key #{index + 1} is not an object")
            use = entry.get("use")
            if use == USE_X509:
                roots.append(_x509_entry(entry, index))
            elif use == USE_JWT:
                kid = entry.get("kid")
                if not isinstance(kid, str) or not kid:
                    raise InvalidBundleError(f"bundle key #{index + 1} (jwt-svid) has no 'kid'")
                jwt_keys.append(JwtAuthority(kid, _key_from_jwk(entry)))
            elif use is None:
                raise InvalidBundleError(f"bundle key #{index + 1} has no 'use'")
            else:
                raise InvalidBundleError(
                    f"bundle key #{index + 1} has unknown use {str(use)[:32]!r}"
                )
        sequence = document.get("spiffe_sequence", 0)
        hint = document.get("spiffe_refresh_hint")
        if not _is_bounded_int(sequence, MAX_SEQUENCE):
            raise InvalidBundleError(
                f"spiffe_sequence must be a non-negative integer of at most {MAX_SEQUENCE}"
            )
        if hint is not None and not _is_bounded_int(hint, MAX_REFRESH_HINT_SECONDS):
            raise InvalidBundleError(
                "spiffe_refresh_hint must be a non-negative integer of at most "
                f"{MAX_REFRESH_HINT_SECONDS} seconds"
            )
        return cls(
            trust_domain,
            tuple(roots),
            tuple(jwt_keys),
            sequence,
            timedelta(seconds=hint) if hint is not None else None,
        )

    # --- set operations used by rotation -------------------------------------------------
    def fingerprints(self) -> frozenset[str]:
        return frozenset(certificate_fingerprint(c) for c in self.x509_authorities)

    def with_roots(self, roots: Sequence[x509.Certificate]) -> TrustBundle:
        return TrustBundle(
            self.trust_domain, tuple(roots), self.jwt_authorities, self.sequence, self.refresh_hint
        )


def _is_bounded_int(value: object, maximum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def _x509_entry(entry: Mapping[str, Any], index: int) -> x509.Certificate:
    chain = entry.get("x5c")
    if "kid" in entry:
        raise InvalidBundleError(f"bundle key #{index + 1} (x509-svid) must not have a 'kid'")
    if not isinstance(chain, list) or len(chain) != 1 or not isinstance(chain[0], str):
        raise InvalidBundleError(f"bundle key #{index + 1} (x509-svid) needs exactly one x5c")
    try:
        der = base64.b64decode(chain[0], validate=True)
        cert = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is not a ValueError
        raise InvalidBundleError(f"bundle key #{index + 1} has a malformed certificate") from exc
    return cert
