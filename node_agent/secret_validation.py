"""Checks that keep a bad secret from ever reaching Envoy, and PEM -> secret loaders.

Envoy NACKs a key that does not match its certificate, a garbage or empty chain, and an
empty or malformed trust bundle; worse, it *latches* the rejected secret and rebuilds the
TLS context from it on the next update of the other secret. Everything is therefore
checked here first: the chain parses, the key parses and matches the leaf, every
certificate is within its validity window, and a bundle holds at least one valid root.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from citadel.identity.errors import InvalidCertificateError, InvalidKeyError
from citadel.identity.keys import load_private_key_pem, private_key_to_pkcs8_pem, public_keys_equal
from citadel.identity.pem import (
    certificate_fingerprint,
    certificates_to_pem,
    load_certificates_pem,
    serial_hex,
)
from citadel.identity.x509_svid import spiffe_id_of
from node_agent.errors import SecretValidationError
from node_agent.secrets import Secret, TlsCertificateSecret, TrustBundleSecret

__all__ = [
    "SecretValidator",
    "ValidateSecret",
    "load_tls_secret",
    "load_trust_bundle_secret",
]

ValidateSecret = Callable[[Secret, datetime], None]


@dataclass(frozen=True, slots=True)
class _Window:
    valid_from: datetime
    valid_until: datetime
    crls_from: datetime | None = None
    crls_until: datetime | None = None


def _parse_chain(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        return load_certificates_pem(data, what=what)
    except InvalidCertificateError as exc:
        raise SecretValidationError(exc.message) from exc


def _tls_window(secret: TlsCertificateSecret) -> _Window:
    chain = _parse_chain(secret.cert_chain_pem, f"{secret.name} certificate chain")
    try:
        key = load_private_key_pem(secret.private_key_pem)
    except InvalidKeyError as exc:
        raise SecretValidationError(f"{secret.name} private key: {exc.message}") from exc
    leaf_key = chain[0].public_key()
    if not public_keys_equal(key, leaf_key):  # type: ignore[arg-type]
        raise SecretValidationError(
            f"{secret.name}: private key does not match the leaf certificate "
            f"(serial {serial_hex(chain[0])})"
        )
    return _Window(
        max(c.not_valid_before_utc for c in chain), min(c.not_valid_after_utc for c in chain)
    )


def _parse_crls(secret: TrustBundleSecret) -> list[x509.CertificateRevocationList]:
    crls = []
    for index, der in enumerate(secret.crls_der):
        try:
            crls.append(x509.load_der_x509_crl(der))
        except ValueError as exc:
            raise SecretValidationError(
                f"{secret.name}: CRL #{index + 1} does not parse: {exc}"
            ) from exc
    return crls


def _bundle_window(secret: TrustBundleSecret) -> _Window:
    roots = _parse_chain(secret.trusted_ca_pem, f"{secret.name} trust bundle")
    crls = _parse_crls(secret)
    ends = [c.next_update_utc for c in crls if c.next_update_utc is not None]
    return _Window(
        min(c.not_valid_before_utc for c in roots),
        max(c.not_valid_after_utc for c in roots),
        crls_from=max((c.last_update_utc for c in crls), default=None),
        crls_until=min(ends, default=None),
    )


class SecretValidator:
    """Validates secrets; the structural checks are memoised by content fingerprint.

    Pushing one rotation to a thousand streams then costs one parse, not a thousand.
    """

    def __init__(self, *, memo_size: int = 256) -> None:
        self._memo: OrderedDict[str, _Window | SecretValidationError] = OrderedDict()
        self._memo_size = memo_size
        self._lock = threading.Lock()

    def _window(self, secret: Secret) -> _Window:
        key = f"{type(secret).__name__}:{secret.fingerprint}"
        with self._lock:
            found = self._memo.get(key)
            if found is not None:
                self._memo.move_to_end(key)
        if found is None:
            try:
                found = (
                    _tls_window(secret)
                    if isinstance(secret, TlsCertificateSecret)
                    else _bundle_window(secret)
                )
            except SecretValidationError as exc:
                found = exc
            with self._lock:
                self._memo[key] = found
                while len(self._memo) > self._memo_size:
                    self._memo.popitem(last=False)
        if isinstance(found, SecretValidationError):
            raise SecretValidationError(found.message)
        return found

    def __call__(self, secret: Secret, now: datetime) -> None:
        """Raise :class:`SecretValidationError` unless ``secret`` is fit to push at ``now``."""
        window = self._window(secret)
        if now >= window.valid_until:
            what = (
                "a certificate in the chain"
                if isinstance(secret, TlsCertificateSecret)
                else ("every root in the bundle")
            )
            raise SecretValidationError(
                f"{secret.name}: {what} expired at {window.valid_until.isoformat()}"
            )
        if now < window.valid_from and isinstance(secret, TlsCertificateSecret):
            raise SecretValidationError(
                f"{secret.name}: a certificate in the chain is not valid before "
                f"{window.valid_from.isoformat()}"
            )
        # Envoy refuses every chain a CRL covers while that CRL is expired or not yet valid.
        if window.crls_until is not None and now >= window.crls_until:
            raise SecretValidationError(
                f"{secret.name}: a CRL expired (nextUpdate {window.crls_until.isoformat()})"
            )
        if window.crls_from is not None and now < window.crls_from:
            raise SecretValidationError(
                f"{secret.name}: a CRL is not valid before {window.crls_from.isoformat()}"
            )


def load_tls_secret(name: str, chain_pem: bytes, key_pem: bytes) -> TlsCertificateSecret:
    """Build a TLS certificate secret from PEM files' contents (not yet time-checked).

    Raises:
        SecretValidationError: the chain or key does not parse, or they do not match.
    """
    chain = _parse_chain(chain_pem, f"{name} certificate chain")
    try:
        key = load_private_key_pem(key_pem)
    except InvalidKeyError as exc:
        raise SecretValidationError(f"{name} private key: {exc.message}") from exc
    if not public_keys_equal(key, chain[0].public_key()):  # type: ignore[arg-type]
        raise SecretValidationError(
            f"{name}: private key does not match the leaf certificate "
            f"(serial {serial_hex(chain[0])})"
        )
    try:
        spiffe_id: str | None = str(spiffe_id_of(chain[0]))
    except InvalidCertificateError:
        spiffe_id = None
    return TlsCertificateSecret(
        name=name,
        cert_chain_pem=certificates_to_pem(chain).encode("ascii"),
        private_key_pem=private_key_to_pkcs8_pem(key),
        spiffe_id=spiffe_id,
        serial_hex=serial_hex(chain[0]),
        not_before=chain[0].not_valid_before_utc,
        not_after=chain[0].not_valid_after_utc,
    )


def load_trust_bundle_secret(name: str, bundle_pem: bytes) -> TrustBundleSecret:
    """Build a trust-bundle secret from concatenated PEM roots.

    Raises:
        SecretValidationError: empty, or a certificate does not parse.
    """
    roots = _parse_chain(bundle_pem, f"{name} trust bundle")
    return TrustBundleSecret(
        name=name,
        trusted_ca_pem=certificates_to_pem(roots).encode("ascii"),
        root_fingerprints=tuple(certificate_fingerprint(r) for r in roots),
        not_after=max(r.not_valid_after_utc for r in roots),
    )
