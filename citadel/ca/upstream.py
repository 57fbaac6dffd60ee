"""Intermediates signed by an upstream CA: export a CSR, import the signed certificate.

1. :func:`create_intermediate_csr` makes a new key in the key manager (its id starts with
   ``upstream-``: it is *pending* until its certificate is imported), and returns a CSR for
   a CA certificate of this trust domain (CA, path length 0, keyCertSign + cRLSign, the
   trust-domain SPIFFE ID) signed by that key. The operator has it signed upstream.
2. :func:`import_intermediate` installs the signed certificate as the *next* intermediate:
   it must be a signing certificate of this trust domain, valid now, match a pending key,
   and chain to a trusted root: one already in the trust bundle, or a self-signed root in
   the chain file. A new root joins the bundle as a prepared root (a superset: nothing
   leaves it), so activation follows the usual rotation (``activate --root`` after the
   propagation delay; ``activate --intermediate`` when the root was already trusted).

Nothing is changed when a check fails.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from citadel.ca.authority import INTERMEDIATE_COMMON_NAME, is_self_signed
from citadel.ca.authority_errors import (
    AlreadyPreparedError,
    NoPendingKeyError,
    UpstreamImportError,
)
from citadel.ca.authority_records import (
    PENDING_UPSTREAM_KIND,
    authority_record,
    new_key_id,
    short_id,
)
from citadel.ca.ca_chain import check_ca_certificate, verify_ca_chain
from citadel.ca.config import CaConfig
from citadel.ca.csr_der import build_signed_csr
from citadel.ca.errors import KeyManagerError
from citadel.ca.external_key import external_key_ref
from citadel.ca.keymanager.base import KeyManager
from citadel.ca.rotation.lock import RotationLock
from citadel.ca.rotation.policy import RotationPolicy
from citadel.identity.clock import Clock
from citadel.identity.errors import ChainVerificationError, InvalidCertificateError
from citadel.identity.keys import public_keys_equal
from citadel.identity.pem import certificate_fingerprint, load_certificates_pem
from citadel.store.records import AuthorityRecord
from citadel.store.repository import Repository

__all__ = [
    "PendingIntermediate",
    "UpstreamImport",
    "create_intermediate_csr",
    "import_intermediate",
]

_log = logging.getLogger(__name__)
PENDING_PREFIX = PENDING_UPSTREAM_KIND + "-"


@dataclass(frozen=True)
class PendingIntermediate:
    key_id: str
    csr: x509.CertificateSigningRequest

    @property
    def csr_pem(self) -> bytes:
        return self.csr.public_bytes(Encoding.PEM)


@dataclass(frozen=True, kw_only=True)
class UpstreamImport:
    authority_id: str
    root_id: str
    root_added: bool

    @property
    def message(self) -> str:
        if self.root_added:
            return (
                f"imported intermediate {self.authority_id} under the new root {self.root_id}, "
                "which is in the trust bundle now; activate both after the propagation delay "
                "with 'citadel ca rotate activate --root'"
            )
        return (
            f"imported intermediate {self.authority_id} under root {self.root_id}; start "
            "signing with it with 'citadel ca rotate activate --intermediate'"
        )


def _csr_extensions(config: CaConfig) -> list[x509.Extension[x509.ExtensionType]]:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    values: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (usage, True),
        (
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(str(config.trust_domain.id))]
            ),
            False,
        ),
    ]
    return [x509.Extension(value.oid, critical, value) for value, critical in values]


def create_intermediate_csr(
    *, repository: Repository, key_manager: KeyManager, clock: Clock, config: CaConfig
) -> PendingIntermediate:
    """Create a pending key and a CSR for a new intermediate (audited).

    Raises:
        KeyManagerError, SigningError: the key cannot be made or cannot sign.
    """
    now = clock.now()
    key_id = new_key_id(PENDING_UPSTREAM_KIND, now)
    key = key_manager.generate_key(key_id, config.key_type)
    try:
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Citadel"),
                x509.NameAttribute(
                    NameOID.COMMON_NAME, f"{INTERMEDIATE_COMMON_NAME} {short_id(key_id)}"
                ),
            ]
        )
        csr = build_signed_csr(key, subject, _csr_extensions(config))
        repository.append_audit(
            "ca.upstream.csr",
            key_id,
            {"key_type": key.key_type.value, "subject": subject.rfc4514_string()},
            now,
        )
    except BaseException:
        with contextlib.suppress(KeyManagerError):
            key_manager.delete_key(key_id)
        raise
    _log.info("created pending upstream key %s and its CSR", key_id)
    return PendingIntermediate(key_id, csr)


def _parse(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        return load_certificates_pem(data, what=what)
    except InvalidCertificateError as exc:
        raise UpstreamImportError(exc.message) from exc


def _pending_key(
    cert: x509.Certificate, key_manager: KeyManager, records: list[AuthorityRecord]
) -> str:
    used = {r.key_ref for r in records}
    pending = [k for k in key_manager.list_keys() if k.startswith(PENDING_PREFIX) and k not in used]
    for key_id in pending:
        key = key_manager.get_key(key_id)
        if public_keys_equal(key.public_key(), cert.public_key()):  # type: ignore[arg-type]
            return key_id
    if not pending:
        raise NoPendingKeyError(
            "there is no pending key: create one and its CSR with 'citadel ca intermediate-csr' "
            "and have that CSR signed"
        )
    raise NoPendingKeyError(
        f"the certificate's public key matches none of the {len(pending)} pending key(s) from "
        "'citadel ca intermediate-csr'; was it issued for another CSR?"
    )


def _trusted_path(
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    bundle: list[x509.Certificate],
    now: datetime,
) -> tuple[x509.Certificate, ...]:
    own = certificate_fingerprint(cert)
    others = [c for c in chain if certificate_fingerprint(c) != own]
    chain_roots = [c for c in others if is_self_signed(c)]
    middle = [c for c in others if not is_self_signed(c)]
    try:
        return verify_ca_chain(cert, middle, [*bundle, *chain_roots], at=now)
    except ChainVerificationError as exc:
        raise UpstreamImportError(
            f"the certificate does not chain to a trusted root (one in the trust bundle, or a "
            f"self-signed root in the chain file): {exc.message}"
        ) from exc


def import_intermediate(
    cert_pem: bytes,
    chain_pem: bytes,
    *,
    repository: Repository,
    key_manager: KeyManager,
    clock: Clock,
    config: CaConfig,
    policy: RotationPolicy | None = None,
) -> UpstreamImport:
    """Install an upstream-signed intermediate as the next one (see the module docstring).

    Raises:
        UpstreamImportError: malformed, not a CA of this trust domain, not valid now,
            already imported, or not chained to a trusted root.
        NoPendingKeyError: it matches no pending key.
        AlreadyPreparedError: its root is new while another new root is already prepared.
        RotationBusyError: a rotation step runs elsewhere.
    """
    certs = _parse(cert_pem, "intermediate certificate")
    if len(certs) != 1:
        raise UpstreamImportError(
            f"the certificate file must hold one certificate, not {len(certs)}"
        )
    cert = certs[0]
    chain = _parse(chain_pem, "chain file") if chain_pem.strip() else []
    now = clock.now()
    try:
        check_ca_certificate(cert, config.trust_domain, now)
    except InvalidCertificateError as exc:
        raise UpstreamImportError(
            f"the certificate cannot serve as an intermediate: {exc.message}"
        ) from exc
    policy = policy or RotationPolicy()
    with RotationLock(repository, clock, ttl=policy.lock_ttl).held():
        records = repository.list_authorities()
        by_print = {r.fingerprint_sha256: r for r in records}
        if certificate_fingerprint(cert) in by_print:
            raise UpstreamImportError(
                f"this certificate is already installed as authority "
                f"{by_print[certificate_fingerprint(cert)].id}"
            )
        key_id = _pending_key(cert, key_manager, records)
        bundle_records = [
            r for r in records if r.kind == "root" and r.state in ("active", "prepared")
        ]
        bundle = [load_certificates_pem(r.certificate_pem)[0] for r in bundle_records]
        path = _trusted_path(cert, chain, bundle, now)
        root_print = certificate_fingerprint(path[-1])
        root_record = next((r for r in bundle_records if r.fingerprint_sha256 == root_print), None)
        if root_record is None and any(r.state == "prepared" for r in bundle_records):
            raise AlreadyPreparedError(
                "another new root is already prepared; activate or roll it back before "
                "importing an intermediate under a new root"
            )
        return _install(repository, cert, path, key_id, root_record, now)


def _install(
    repository: Repository,
    cert: x509.Certificate,
    path: tuple[x509.Certificate, ...],
    key_id: str,
    root_record: AuthorityRecord | None,
    now: datetime,
) -> UpstreamImport:
    root_added = root_record is None
    if root_record is None:
        root_record = repository.save_authority(
            authority_record(
                authority_id=new_key_id("upstream-root", now),
                kind="root",
                cert=path[-1],
                key_ref=external_key_ref(path[-1]),
                parent_id=None,
                state="prepared",
                now=now,
            )
        )
    parent_id = root_record.id
    known = {r.fingerprint_sha256: r for r in repository.list_authorities()}
    for middle in reversed(path[1:-1]):
        existing = known.get(certificate_fingerprint(middle))
        if existing is None:
            existing = repository.save_authority(
                authority_record(
                    authority_id=new_key_id("upstream-chain", now),
                    kind="intermediate",
                    cert=middle,
                    key_ref=external_key_ref(middle),
                    parent_id=parent_id,
                    state="active",
                    now=now,
                )
            )
        parent_id = existing.id
    record = repository.save_authority(
        authority_record(
            authority_id=key_id.replace(PENDING_PREFIX, "intermediate-", 1),
            kind="intermediate",
            cert=cert,
            key_ref=key_id,
            parent_id=parent_id,
            state="prepared",
            now=now,
        )
    )
    result = UpstreamImport(authority_id=record.id, root_id=root_record.id, root_added=root_added)
    repository.append_audit(
        "ca.upstream.import",
        record.id,
        {
            "serial": record.serial_hex,
            "sha256": record.fingerprint_sha256,
            "key_ref": key_id,
            "root": root_record.id,
            "root_added": root_added,
        },
        now,
    )
    _log.info("%s", result.message)
    return result
