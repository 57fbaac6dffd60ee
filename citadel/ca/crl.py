"""Certificate revocation lists, one per issuing authority, signed in the key manager.

:class:`CrlPublisher` keeps a signed CRL for every authority whose key Citadel holds and
that may still vouch for valid certificates: each active or prepared intermediate (its
revoked leaves) and each root in the trust bundle (its revoked intermediates). It re-signs a
CRL when the revocations behind it change, and before ``nextUpdate`` comes close. A relying
party that checks every certificate of a chain (Envoy without ``only_verify_leaf_cert_crl``)
needs a CRL for each CA in it, which is why :meth:`CrlPublisher.current_crls` returns them all.

* ``nextUpdate`` = ``thisUpdate`` + ``next_update`` (1 h by default); ``thisUpdate`` is
  backdated by the clock skew.
* The CRL number is ``max(previous + 1, thisUpdate in epoch milliseconds)``: strictly
  increasing in a process and, since it follows the clock, across restarts and replicas.
* Entries of certificates that have expired are left out (RFC 5280 5.1.2.6 allows it).
* CRLs from a plug-in CA directory (``ca-crl.pem``) are published alongside, as they are.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.ca.authority_records import certificate_of, is_own
from citadel.ca.keymanager.base import KeyManager
from citadel.ca.revocation_reasons import reason_flag
from citadel.errors import CitadelError
from citadel.identity.clock import Clock
from citadel.store.records import AuthorityRecord, IssuedCertificateRecord
from citadel.store.repository import Repository

__all__ = ["CrlPublisher", "RevokedEntry", "SignedCrl", "build_crl", "crl_pem_bundle"]

_log = logging.getLogger(__name__)
DEFAULT_NEXT_UPDATE = timedelta(hours=1)
DEFAULT_SKEW = timedelta(minutes=2)
SIGNING_STATES = ("active", "prepared")


@dataclass(frozen=True)
class RevokedEntry:
    serial_hex: str
    revoked_at: datetime
    reason: str | None


@dataclass(frozen=True)
class SignedCrl:
    issuer_id: str
    issuer_fingerprint: str
    number: int
    this_update: datetime
    next_update: datetime
    entries: frozenset[str]
    der: bytes

    @property
    def pem(self) -> str:
        return x509.load_der_x509_crl(self.der).public_bytes(Encoding.PEM).decode("ascii")


def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def build_crl(
    issuer: x509.Certificate,
    entries: Sequence[RevokedEntry],
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> x509.CertificateRevocationListBuilder:
    """An unsigned CRL for ``issuer``: CRL number, AKI, and a reason code per entry (left
    out for ``unspecified``, as RFC 5280 5.3.1 recommends)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_authority_key_identifier(issuer), critical=False)
    )
    for entry in sorted(entries, key=lambda e: e.serial_hex):
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(entry.serial_hex, 16))
            .revocation_date(entry.revoked_at)
        )
        flag = reason_flag(entry.reason)
        if flag is not x509.ReasonFlags.unspecified:
            revoked = revoked.add_extension(x509.CRLReason(flag), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder


class CrlPublisher:
    """Signs and caches the CRLs that agents hand to Envoy and to workloads."""

    def __init__(
        self,
        *,
        repository: Repository,
        key_manager: KeyManager,
        clock: Clock,
        next_update: timedelta = DEFAULT_NEXT_UPDATE,
        skew: timedelta = DEFAULT_SKEW,
    ) -> None:
        if next_update <= timedelta(0):
            raise ValueError("next_update must be positive")
        self._repository = repository
        self._keys = key_manager
        self._clock = clock
        self._next_update = next_update
        self._skew = skew
        self._crls: dict[str, SignedCrl] = {}
        self._numbers: dict[str, int] = {}
        self._external: tuple[bytes, ...] = ()
        self._published: tuple[bytes, ...] = ()
        self._lock = threading.Lock()

    # -------------------------------------------------------------- reading

    def current_crls(self) -> list[bytes]:
        """Every current CRL as DER: one per issuing authority, then any plug-in CRLs."""
        return list(self._published)

    def crl_for(self, issuer_fingerprint: str) -> SignedCrl | None:
        return self._crls.get(issuer_fingerprint)

    @property
    def version(self) -> str:
        """Changes whenever any published CRL does (a version for SDS pushes)."""
        digest = hashlib.sha256()
        for der in self._published:
            digest.update(hashlib.sha256(der).digest())
        return digest.hexdigest()[:16]

    def set_external_crls(self, crls: Sequence[x509.CertificateRevocationList]) -> None:
        """Publish CRLs signed elsewhere (a plug-in CA's ``ca-crl.pem``) alongside ours."""
        with self._lock:
            self._external = tuple(crl.public_bytes(Encoding.DER) for crl in crls)
            self._publish()

    # -------------------------------------------------------------- signing

    def refresh(self) -> bool:
        """Re-sign what changed or is getting old; True when the published set changed.

        A CRL that cannot be signed (a key not readable) is logged and its previous version
        kept until it can.
        """
        now = self._clock.now()
        authorities = [
            r
            for r in self._repository.list_authorities(states=list(SIGNING_STATES))
            if r.kind in ("root", "intermediate") and is_own(r)
        ]
        revoked = self._revocations(now)
        with self._lock:
            before = self._published
            fresh: dict[str, SignedCrl] = {}
            for authority in authorities:
                entries = revoked.get(authority.fingerprint_sha256, {})
                signed = self._current_or_new(authority, entries, now)
                if signed is not None:
                    fresh[authority.fingerprint_sha256] = signed
            self._crls = fresh
            self._publish()
            return self._published != before

    def _revocations(self, now: datetime) -> Mapping[str, Mapping[str, RevokedEntry]]:
        grouped: dict[str, dict[str, RevokedEntry]] = defaultdict(dict)
        record: IssuedCertificateRecord
        for record in self._repository.list_revocations():
            if record.revoked_at is None or record.not_after <= now:
                continue
            grouped[record.issuer_fingerprint][record.serial_hex] = RevokedEntry(
                record.serial_hex, record.revoked_at, record.revocation_reason
            )
        return grouped

    def _current_or_new(
        self, authority: AuthorityRecord, entries: Mapping[str, RevokedEntry], now: datetime
    ) -> SignedCrl | None:
        cached = self._crls.get(authority.fingerprint_sha256)
        if (
            cached is not None
            and cached.entries == frozenset(entries)
            and now < cached.this_update + self._skew + self._next_update / 2
        ):
            return cached
        try:
            return self._sign(authority, list(entries.values()), now)
        except CitadelError as exc:
            _log.warning("CRL of authority %s not signed: %s", authority.id, exc.message)
            return cached

    def _sign(
        self, authority: AuthorityRecord, entries: Sequence[RevokedEntry], now: datetime
    ) -> SignedCrl:
        issuer = certificate_of(authority)
        key = self._keys.get_key(authority.key_ref)
        this_update = now - self._skew
        next_update = now + self._next_update
        number = max(
            self._numbers.get(authority.fingerprint_sha256, 0) + 1,
            int(now.timestamp() * 1000),
        )
        crl = key.sign_crl(
            build_crl(
                issuer, entries, number=number, this_update=this_update, next_update=next_update
            )
        )
        self._numbers[authority.fingerprint_sha256] = number
        _log.info(
            "signed CRL #%d of %s %s with %d entries",
            number,
            authority.kind,
            authority.id,
            len(entries),
        )
        return SignedCrl(
            issuer_id=authority.id,
            issuer_fingerprint=authority.fingerprint_sha256,
            number=number,
            this_update=this_update,
            next_update=next_update,
            entries=frozenset(e.serial_hex for e in entries),
            der=crl.public_bytes(Encoding.DER),
        )

    def _publish(self) -> None:
        ordered = sorted(self._crls.values(), key=lambda c: c.issuer_id)
        self._published = (*(c.der for c in ordered), *self._external)


def crl_pem_bundle(crls: Sequence[bytes]) -> str:
    """Concatenated PEM of DER CRLs (what Envoy's ``validation_context.crl`` accepts)."""
    return "".join(
        x509.load_der_x509_crl(der).public_bytes(Encoding.PEM).decode("ascii") for der in crls
    )
