"""Signing authorities: a CA certificate, the key that signs for it, and its path to a root.

Also the making of the CA's own certificates (a self-signed root and an intermediate signed
by it) and the checks an operator-supplied root must pass before it is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from citadel.ca.errors import RootImportError
from citadel.ca.keymanager.base import Key, key_matches_certificate
from citadel.identity.errors import InvalidCertificateError, InvalidKeyError
from citadel.identity.keys import PrivateKey, key_type_of, public_keys_equal
from citadel.identity.pem import certificate_fingerprint, serial_hex
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.identity.x509_svid import validate_signing_certificate
from citadel.identity.x509_templates import CaSpec, ca_builder

__all__ = [
    "Authority",
    "check_importable_root",
    "is_self_signed",
    "new_intermediate_certificate",
    "new_root_certificate",
]

ROOT_COMMON_NAME = "Citadel Root CA"
INTERMEDIATE_COMMON_NAME = "Citadel Intermediate CA"


@dataclass(frozen=True, slots=True)
class Authority:
    """A certificate the CA can sign with.

    Attributes:
        cert: the signing certificate.
        key: the key-manager handle of its private key (never the key itself).
        chain_to_root: the certificates above ``cert``, nearest first, root last;
            empty when ``cert`` is itself the root.
    """

    cert: x509.Certificate
    key: Key
    chain_to_root: tuple[x509.Certificate, ...] = ()
    fingerprint: str = field(init=False, repr=False, compare=False)
    not_before: datetime = field(init=False, repr=False, compare=False)
    not_after: datetime = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not key_matches_certificate(self.key, self.cert):
            raise ValueError(f"key {self.key.key_id} does not match its certificate")
        object.__setattr__(self, "fingerprint", certificate_fingerprint(self.cert))
        object.__setattr__(self, "not_before", self.cert.not_valid_before_utc)
        object.__setattr__(self, "not_after", self.cert.not_valid_after_utc)

    @property
    def serial_hex(self) -> str:
        return serial_hex(self.cert)

    @property
    def root(self) -> x509.Certificate:
        return self.chain_to_root[-1] if self.chain_to_root else self.cert

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """What goes between an issued leaf and the root: this cert and any CA above it."""
        if not self.chain_to_root:
            return ()
        return (self.cert, *self.chain_to_root[:-1])


def is_self_signed(cert: x509.Certificate) -> bool:
    """Subject equals issuer and the signature verifies with the certificate's own key."""
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _common_name(base: str, tag: str) -> str:
    """Rotated authorities add a short tag, so two generations never share an issuer name
    (CRLs and chain building then always find the right one)."""
    return f"{base} {tag}" if tag else base


def new_root_certificate(
    key: Key,
    *,
    trust_domain: TrustDomain,
    now: datetime,
    ttl: timedelta,
    skew: timedelta,
    tag: str = "",
) -> x509.Certificate:
    """A self-signed root for ``trust_domain`` valid from ``now - skew`` for ``ttl``."""
    spec = CaSpec(
        trust_domain=trust_domain,
        common_name=_common_name(ROOT_COMMON_NAME, tag),
        public_key=key.public_key(),
        not_before=now - skew,
        not_after=now + ttl,
    )
    return key.sign_certificate(ca_builder(spec, None))


def new_intermediate_certificate(
    key: Key,
    parent: Authority,
    *,
    trust_domain: TrustDomain,
    now: datetime,
    ttl: timedelta,
    skew: timedelta,
    tag: str = "",
) -> x509.Certificate:
    """An intermediate that signs leaves only (path length 0), clamped to its parent's life."""
    spec = CaSpec(
        trust_domain=trust_domain,
        common_name=_common_name(INTERMEDIATE_COMMON_NAME, tag),
        public_key=key.public_key(),
        not_before=max(now - skew, parent.not_before),
        not_after=min(now + ttl, parent.not_after),
        path_length=0,
    )
    return parent.key.sign_certificate(ca_builder(spec, parent.cert))


def check_importable_root(
    cert: x509.Certificate,
    private_key: PrivateKey,
    *,
    trust_domain: TrustDomain,
    now: datetime,
    min_remaining: timedelta,
) -> None:
    """Check that an operator's root can serve as this CA's root.

    Raises:
        RootImportError: the message names the first rule the root breaks.
    """
    try:
        key_type_of(private_key)
    except InvalidKeyError as exc:
        raise RootImportError(f"root key is not usable: {exc.message}") from exc
    cert_key = cert.public_key()
    try:
        key_type_of(cert_key)
    except InvalidKeyError as exc:
        raise RootImportError(f"root certificate key is not usable: {exc.message}") from exc
    if not public_keys_equal(private_key, cert_key):  # type: ignore[arg-type]
        raise RootImportError("root key does not match the root certificate")
    try:
        validate_signing_certificate(cert)
    except InvalidCertificateError as exc:
        raise RootImportError(f"root certificate cannot sign: {exc.message}") from exc
    if not is_self_signed(cert):
        raise RootImportError("root certificate is not self-signed")
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    if constraints.path_length is not None and constraints.path_length < 1:
        raise RootImportError(
            "root certificate path length is 0, so it cannot sign an intermediate"
        )
    for root_td in _spiffe_trust_domains(cert):
        if root_td != trust_domain:
            raise RootImportError(
                f"root certificate belongs to trust domain {root_td}, not {trust_domain}"
            )
    if cert.not_valid_before_utc > now:
        raise RootImportError("root certificate is not valid yet")
    if cert.not_valid_after_utc <= now + min_remaining:
        hours = int(min_remaining.total_seconds() // 3600)
        raise RootImportError(
            f"root certificate expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z; "
            f"it must stay valid for at least {hours}h"
        )


def _spiffe_trust_domains(cert: x509.Certificate) -> set[TrustDomain]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    found = set()
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("spiffe://"):
            found.add(SpiffeId.parse(uri).trust_domain)  # validated as signing cert above
    return found
