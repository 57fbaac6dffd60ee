"""Revoking leaf certificates (by serial or by SPIFFE ID) and signing intermediates.

Leaves: the repository marks the certificate revoked and appends the audit event in one
transaction; the CRL of the intermediate that signed it lists it from the next refresh, and
:class:`citadel.ca.revocation_index.RevocationIndex` refuses it for mTLS renewal.

An intermediate: if it is the one signing, a replacement under the current root is prepared
(or the prepared one taken) and activated first, so issuance never stops. The intermediate
is then recorded as a certificate its root issued (if it was not yet), revoked there (so the
root's CRL lists it) and its authority moves to ``revoked``. Its leaves are *not* revoked one
by one: they fall with their chain. Relying parties that check CRLs for the whole chain
refuse them, Citadel's mTLS check refuses any leaf an revoked authority signed, and
workloads renew through their platform credential onto the new intermediate.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from citadel.ca.authority_errors import (
    AlreadyRevokedError,
    ExternalAuthorityError,
    UnknownSerialError,
)
from citadel.ca.authority_records import is_own
from citadel.ca.revocation_reasons import parse_reason
from citadel.ca.rotation.slots import AuthoritySlots, Slot
from citadel.ca.rotation.steps import AuthorityRotation, StepResult
from citadel.identity.clock import Clock
from citadel.identity.spiffe_id import SpiffeId
from citadel.store.errors import ConflictError, NotFoundError
from citadel.store.records import AuthorityRecord, IssuanceInput, IssuedCertificateRecord
from citadel.store.repository import Repository

__all__ = ["IntermediateRevocation", "Revoker", "normalise_serial_hex"]

_log = logging.getLogger(__name__)
MAX_PER_IDENTITY = 10_000
INTERMEDIATE_REQUESTER = "citadel:ca"


def normalise_serial_hex(text: str) -> str:
    """Lowercase hex without ``0x``, colons or leading zeros (how serials are stored).

    Raises:
        UnknownSerialError: not a hexadecimal serial of at most 20 octets.
    """
    value = str(text).strip().lower().replace(":", "").removeprefix("0x")
    if not value or len(value) > 40 or any(c not in "0123456789abcdef" for c in value):
        raise UnknownSerialError(f"{str(text)[:48]!r} is not a hexadecimal certificate serial")
    return value.lstrip("0") or "0"


@dataclass(frozen=True)
class IntermediateRevocation:
    revoked: AuthorityRecord
    replacement: StepResult | None


class Revoker:
    def __init__(
        self,
        *,
        repository: Repository,
        clock: Clock,
        rotation: AuthorityRotation | None = None,
        on_revoked: Callable[[str], None] | None = None,
    ) -> None:
        self._repo = repository
        self._clock = clock
        self._rotation = rotation
        self._on_revoked = on_revoked

    def _notify(self, serial: str) -> None:
        if self._on_revoked is not None:
            self._on_revoked(serial)

    # ------------------------------------------------------------------ leaves

    def revoke_serial(self, serial: str, reason: str) -> IssuedCertificateRecord:
        """Revoke one issued certificate.

        Raises:
            InvalidReasonError: not an RFC 5280 reason name.
            UnknownSerialError: no certificate with this serial was issued.
            AlreadyRevokedError: it is revoked already.
        """
        why = parse_reason(reason)
        key = normalise_serial_hex(serial)
        now = self._clock.now()
        try:
            record = self._repo.revoke_certificate(key, why, now)
        except NotFoundError as exc:
            raise UnknownSerialError(self._unknown_serial_message(key)) from exc
        except ConflictError as exc:
            raise AlreadyRevokedError(self._already_revoked_message(key)) from exc
        _log.info("revoked certificate serial %s of %s (%s)", key, record.spiffe_id, why)
        self._notify(key)
        return record

    def _unknown_serial_message(self, serial: str) -> str:
        for authority in self._repo.list_authorities():
            if authority.serial_hex == serial and authority.kind == "intermediate":
                return (
                    f"serial {serial} is intermediate authority {authority.id}, not a workload "
                    "certificate; revoke it with 'citadel ca revoke-intermediate'"
                )
        return f"no certificate with serial {serial} was issued by this CA"

    def _already_revoked_message(self, serial: str) -> str:
        try:
            record = self._repo.get_certificate(serial)
        except NotFoundError:
            return f"certificate {serial} is already revoked"
        when = record.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ") if record.revoked_at else "-"
        return (
            f"certificate {serial} was already revoked at {when} "
            f"({record.revocation_reason or 'unspecified'})"
        )

    def revoke_spiffe_id(self, spiffe_id: SpiffeId, reason: str) -> list[IssuedCertificateRecord]:
        """Revoke every unexpired certificate issued to ``spiffe_id``.

        Raises:
            InvalidReasonError: not an RFC 5280 reason name.
            UnknownSerialError: no unexpired certificate was issued to it.
            AlreadyRevokedError: all of them are revoked already.
        """
        why = parse_reason(reason)
        now = self._clock.now()
        text = str(spiffe_id)
        mine = [
            r
            for r in self._repo.list_certificates(spiffe_id_prefix=text, limit=MAX_PER_IDENTITY)
            if r.spiffe_id == text and r.not_after > now
        ]
        if not mine:
            raise UnknownSerialError(f"no unexpired certificate was issued to {text}")
        pending = [r for r in mine if not r.is_revoked]
        if not pending:
            raise AlreadyRevokedError(
                f"all {len(mine)} unexpired certificate(s) of {text} are already revoked"
            )
        revoked = []
        for record in pending:
            try:
                revoked.append(self._repo.revoke_certificate(record.serial_hex, why, now))
            except ConflictError:
                continue  # revoked concurrently
            self._notify(record.serial_hex)
        _log.info("revoked %d certificate(s) of %s (%s)", len(revoked), text, why)
        return revoked

    # ------------------------------------------------------------- intermediates

    def revoke_intermediate(self, serial_or_id: str, reason: str) -> IntermediateRevocation:
        """Revoke a signing intermediate; replace it first if it is the one signing.

        Raises:
            InvalidReasonError: not an RFC 5280 reason name.
            UnknownSerialError: no intermediate authority has this serial or id.
            AlreadyRevokedError: it is revoked already.
            ExternalAuthorityError: it, or the root that would sign its replacement, is held
                by another CA.
        """
        why = parse_reason(reason)
        rotation = self._rotation
        if rotation is None:
            raise ValueError("revoking an intermediate needs the Revoker's rotation")
        with rotation.lock.held():
            slots = rotation.slots()
            target = self._find_intermediate(slots, serial_or_id)
            if target.state == "revoked":
                raise AlreadyRevokedError(f"intermediate {target.id} is already revoked")
            if not is_own(target):
                raise ExternalAuthorityError(
                    f"intermediate {target.id} belongs to another CA; revoke it there"
                )
            root = slots.root_of(target)
            replacement = None
            if target.id == slots.signer.id:
                replacement = self._replace_signer(rotation, slots)
            now = self._clock.now()
            self._record_as_issued(target, root, str(rotation.trust_domain.id))
            with contextlib.suppress(ConflictError):  # its row may be revoked already
                self._repo.revoke_certificate(target.serial_hex, why, now)
            revoked = self._repo.set_authority_state(target.id, "revoked", now)
            self._repo.append_audit(
                "ca.revoke_intermediate",
                target.id,
                {
                    "serial": target.serial_hex,
                    "sha256": target.fingerprint_sha256,
                    "root": root.id,
                    "reason": why,
                    "replacement": list(replacement.authority_ids) if replacement else [],
                },
                now,
            )
        _log.warning("revoked intermediate %s (serial %s): %s", target.id, target.serial_hex, why)
        self._notify(target.serial_hex)
        return IntermediateRevocation(revoked=revoked, replacement=replacement)

    def _find_intermediate(self, slots: AuthoritySlots, serial_or_id: str) -> AuthorityRecord:
        wanted = str(serial_or_id).strip()
        try:
            serial = normalise_serial_hex(wanted)
        except UnknownSerialError:
            serial = None
        for record in slots.records:
            if record.kind == "intermediate" and (
                record.id == wanted or record.serial_hex == serial
            ):
                return record
        raise UnknownSerialError(f"no intermediate authority has serial or id {wanted[:80]!r}")

    @staticmethod
    def _replace_signer(rotation: AuthorityRotation, slots: AuthoritySlots) -> StepResult:
        if slots.next_intermediate is None:
            if not is_own(slots.root):
                raise ExternalAuthorityError(
                    f"the signing intermediate cannot be replaced: root {slots.root.id} is held "
                    "by another CA; install a new intermediate (plug-in directory or 'citadel "
                    "ca import') before revoking this one"
                )
            rotation.prepare(Slot.INTERMEDIATE, trigger="revocation")
        # forced: the signer is compromised; waiting for its replacement's CRL to spread
        # would keep it signing
        return rotation.activate(Slot.INTERMEDIATE, force=True, trigger="revocation")

    def _record_as_issued(
        self, target: AuthorityRecord, root: AuthorityRecord, trust_domain_id: str
    ) -> None:
        try:
            self._repo.get_certificate(target.serial_hex)
            return
        except NotFoundError:
            pass
        self._repo.record_issuances(
            [
                IssuanceInput(
                    serial_hex=target.serial_hex,
                    spiffe_id=trust_domain_id,
                    not_before=target.not_before,
                    not_after=target.not_after,
                    fingerprint_sha256=target.fingerprint_sha256,
                    issuer_fingerprint=root.fingerprint_sha256,
                    requester=INTERMEDIATE_REQUESTER,
                    metadata={"kind": "intermediate-ca", "authority_id": target.id},
                    certificate_pem=target.certificate_pem,
                    issued_at=target.created_at,
                )
            ]
        )
