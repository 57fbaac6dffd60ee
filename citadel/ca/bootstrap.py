"""Creating the CA's authorities on first start, and loading them on every start.

``initialise_authorities`` makes (or imports) the root, makes the signing intermediate, puts
their keys in the key manager and their certificates in the repository as active
authorities. ``load_authorities`` reads them back and checks that every key is present and
matches its certificate and that the intermediate chains to its root.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.ca.authority import (
    Authority,
    check_importable_root,
    new_intermediate_certificate,
    new_root_certificate,
)
from citadel.ca.config import CaConfig
from citadel.ca.errors import (
    CaAlreadyInitialisedError,
    CaNotInitialisedError,
    CaNotReadyError,
    KeyManagerError,
    KeyNotFoundError,
    RootImportError,
)
from citadel.ca.external_key import ExternalKey, is_external_key_ref
from citadel.ca.keymanager.base import Key, KeyManager, key_matches_certificate
from citadel.identity.clock import Clock
from citadel.identity.errors import InvalidCertificateError, InvalidKeyError
from citadel.identity.keys import PrivateKey, load_private_key_pem
from citadel.identity.pem import certificate_fingerprint, load_certificates_pem, serial_hex
from citadel.identity.spiffe_id import TrustDomain
from citadel.store.records import AuthorityRecord
from citadel.store.repository import Repository

__all__ = [
    "LoadedAuthorities",
    "RootImport",
    "bundle_roots",
    "initialise_authorities",
    "is_initialised",
    "load_authorities",
    "parse_root_import",
]

_log = logging.getLogger(__name__)
X509_KINDS = ("root", "intermediate")
BUNDLE_STATES = ("active", "prepared")
BOOTSTRAP_LOCK = "ca-bootstrap"
BOOTSTRAP_LOCK_TTL = timedelta(minutes=2)


@dataclass(frozen=True)
class RootImport:
    """An operator's existing root: certificate PEM, private key PEM and its passphrase."""

    certificate_pem: bytes
    key_pem: bytes = field(repr=False)
    key_passphrase: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class LoadedAuthorities:
    """The active signer and the trust bundle's roots."""

    signer: Authority
    roots: tuple[x509.Certificate, ...]
    root: Authority


def is_initialised(repository: Repository) -> bool:
    """True once any root or intermediate authority has been stored (in any state)."""
    return any(r.kind in X509_KINDS for r in repository.list_authorities())


def _new_key_id(kind: str, now: datetime) -> str:
    return f"{kind}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def _record(
    kind: str, cert: x509.Certificate, key: Key, parent_id: str | None, now: datetime
) -> AuthorityRecord:
    return AuthorityRecord(
        id=key.key_id,
        kind=kind,
        state="active",
        certificate_pem=cert.public_bytes(Encoding.PEM).decode("ascii"),
        key_ref=key.key_id,
        serial_hex=serial_hex(cert),
        fingerprint_sha256=certificate_fingerprint(cert),
        parent_id=parent_id,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        created_at=now,
        activated_at=now,
    )


def parse_root_import(
    root: RootImport, config: CaConfig, now: datetime
) -> tuple[x509.Certificate, PrivateKey]:
    """Parse and check an operator root; returns (certificate, private key).

    Raises:
        RootImportError: the PEMs are malformed, the key does not match, or the root
            cannot serve (see :func:`check_importable_root`).
    """
    try:
        certs = load_certificates_pem(root.certificate_pem, what="root certificate PEM")
    except InvalidCertificateError as exc:
        raise RootImportError(exc.message) from exc
    if len(certs) != 1:
        raise RootImportError(f"root certificate PEM must hold one certificate, found {len(certs)}")
    try:
        private_key = load_private_key_pem(root.key_pem, password=root.key_passphrase)
    except InvalidKeyError as exc:
        raise RootImportError(f"root key: {exc.message}") from exc
    check_importable_root(
        certs[0],
        private_key,
        trust_domain=config.trust_domain,
        now=now,
        min_remaining=config.default_ttl,
    )
    return certs[0], private_key


def initialise_authorities(
    repository: Repository,
    key_manager: KeyManager,
    config: CaConfig,
    clock: Clock,
    *,
    root_import: RootImport | None = None,
) -> LoadedAuthorities:
    """Create the root (or import the operator's) and the signing intermediate.

    Raises:
        CaAlreadyInitialisedError: authorities already exist, or another process holds the
            bootstrap lock.
        RootImportError: the operator's root cannot be used.
        KeyManagerError: keys cannot be stored.
        StoreError: the records cannot be saved.
    """
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    if not repository.try_acquire_lock(BOOTSTRAP_LOCK, holder, BOOTSTRAP_LOCK_TTL, clock.now()):
        raise CaAlreadyInitialisedError("another process is initialising this CA right now")
    try:
        if is_initialised(repository):
            raise CaAlreadyInitialisedError(
                "the CA is already initialised; its root and intermediate exist"
            )
        return _create(repository, key_manager, config, clock, root_import)
    finally:
        repository.release_lock(BOOTSTRAP_LOCK, holder)


def _create(
    repository: Repository,
    key_manager: KeyManager,
    config: CaConfig,
    clock: Clock,
    root_import: RootImport | None,
) -> LoadedAuthorities:
    now = clock.now()
    created: list[str] = []
    try:
        root_id = _new_key_id("root", now)
        if root_import is not None:
            root_cert, private_key = parse_root_import(root_import, config, now)
            root_key = key_manager.import_key(root_id, private_key)
            created.append(root_id)
        else:
            root_key = key_manager.generate_key(root_id, config.key_type)
            created.append(root_id)
            root_cert = new_root_certificate(
                root_key,
                trust_domain=config.trust_domain,
                now=now,
                ttl=config.root_ttl,
                skew=config.skew,
            )
        root = Authority(root_cert, root_key)
        intermediate_id = _new_key_id("intermediate", now)
        intermediate_key = key_manager.generate_key(intermediate_id, config.key_type)
        created.append(intermediate_id)
        intermediate_cert = new_intermediate_certificate(
            intermediate_key,
            root,
            trust_domain=config.trust_domain,
            now=now,
            ttl=config.intermediate_ttl,
            skew=config.skew,
        )
        repository.save_authority(_record("root", root_cert, root_key, None, now))
        repository.save_authority(
            _record("intermediate", intermediate_cert, intermediate_key, root_id, now)
        )
    except BaseException:
        for key_id in created:
            with contextlib.suppress(KeyManagerError):
                key_manager.delete_key(key_id)
        raise
    _log.info(
        "initialised CA for %s: root %s (sha256 %s), intermediate %s (sha256 %s)",
        config.trust_domain,
        serial_hex(root_cert),
        certificate_fingerprint(root_cert),
        serial_hex(intermediate_cert),
        certificate_fingerprint(intermediate_cert),
    )
    signer = Authority(intermediate_cert, intermediate_key, (root_cert,))
    return LoadedAuthorities(signer=signer, roots=(root_cert,), root=root)


def _certificate(record: AuthorityRecord) -> x509.Certificate:
    try:
        certs = load_certificates_pem(record.certificate_pem)
    except InvalidCertificateError as exc:
        raise CaNotReadyError(
            f"the stored certificate of authority {record.id} is damaged: {exc.message}"
        ) from exc
    cert = certs[0]
    if len(certs) != 1 or certificate_fingerprint(cert) != record.fingerprint_sha256:
        raise CaNotReadyError(
            f"the stored certificate of authority {record.id} does not match its fingerprint"
        )
    return cert


def _key(key_manager: KeyManager, record: AuthorityRecord, cert: x509.Certificate) -> Key:
    if is_external_key_ref(record.key_ref):  # a plug-in/upstream CA above ours: verify only
        return ExternalKey(cert)
    try:
        key = key_manager.get_key(record.key_ref)
    except KeyNotFoundError as exc:
        raise CaNotReadyError(
            f"the key of {record.kind} authority {record.id} is missing from the key store"
        ) from exc
    if not key_matches_certificate(key, cert):
        raise CaNotReadyError(
            f"the key of {record.kind} authority {record.id} does not match its certificate"
        )
    return key


def _check_trust_domain(cert: x509.Certificate, trust_domain: TrustDomain) -> None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("spiffe://") and uri != str(trust_domain.id):
            raise CaNotReadyError(
                f"this CA was initialised for trust domain {uri.removeprefix('spiffe://')}, "
                f"not {trust_domain}; set the trust domain to match"
            )


def _newest(records: list[AuthorityRecord]) -> AuthorityRecord:
    return max(records, key=lambda r: (r.activated_at or r.created_at, r.created_at))


def load_authorities(
    repository: Repository, key_manager: KeyManager, clock: Clock, trust_domain: TrustDomain
) -> LoadedAuthorities:
    """Load the active intermediate (the signer), its chain, and the bundle roots.

    Raises:
        CaNotReadyError: not initialised, initialised for another trust domain, or a
            certificate or key is missing, damaged or inconsistent, or the signer expired.
        KeyManagerError: a key exists but cannot be decrypted (wrong passphrase).
    """
    records = repository.list_authorities(states=list(BUNDLE_STATES))
    active_intermediates = [
        r
        for r in records
        if r.kind == "intermediate" and r.state == "active" and not is_external_key_ref(r.key_ref)
    ]
    bundle_records = [r for r in records if r.kind == "root"]
    if not active_intermediates or not bundle_records:
        raise CaNotInitialisedError("the CA is not initialised; run 'citadel init' first")
    signer_record = _newest(active_intermediates)
    signer_cert = _certificate(signer_record)
    _check_trust_domain(signer_cert, trust_domain)
    signer_key = _key(key_manager, signer_record, signer_cert)
    chain: list[x509.Certificate] = []
    child_record, child_cert = signer_record, signer_cert
    root_authority: Authority | None = None
    while child_record.parent_id is not None:
        if len(chain) > 8:
            raise CaNotReadyError("authority chain is too long or has a loop")
        parent_record = repository.get_authority(child_record.parent_id)
        parent_cert = _certificate(parent_record)
        try:
            child_cert.verify_directly_issued_by(parent_cert)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            raise CaNotReadyError(
                f"authority {child_record.id} is not signed by its parent {parent_record.id}"
            ) from exc
        chain.append(parent_cert)
        if parent_record.parent_id is None:
            root_key = _key(key_manager, parent_record, parent_cert)
            root_authority = Authority(parent_cert, root_key)
        child_record, child_cert = parent_record, parent_cert
    if root_authority is None:
        raise CaNotReadyError(f"authority {signer_record.id} has no root")
    roots = tuple(_certificate(r) for r in sorted(bundle_records, key=lambda r: r.created_at))
    if root_authority.fingerprint not in {certificate_fingerprint(c) for c in roots}:
        raise CaNotReadyError("the signer's root is not in the trust bundle (not active)")
    signer = Authority(signer_cert, signer_key, tuple(chain))
    if signer.not_after <= clock.now():
        raise CaNotReadyError(
            f"the signing intermediate expired at {signer.not_after:%Y-%m-%d %H:%M}Z"
        )
    return LoadedAuthorities(signer=signer, roots=roots, root=root_authority)


def bundle_roots(repository: Repository) -> tuple[x509.Certificate, ...]:
    """The roots of the trust bundle (active and prepared), oldest first, without keys."""
    records = repository.list_authorities(kind="root", states=list(BUNDLE_STATES))
    roots = [r for r in records if r.kind == "root"]
    return tuple(_certificate(r) for r in sorted(roots, key=lambda r: r.created_at))
