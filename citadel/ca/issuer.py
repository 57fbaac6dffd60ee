"""The issuer: signs X509-SVIDs for proven identities and records each one before returning.

The identity in :class:`SignParams` comes from the authenticated caller, never from the CSR.
Every leaf is re-validated against the X509-SVID rules after signing (cheaply when the signed
leaf is exactly the template's, see :meth:`LeafTemplate.is_issued_leaf`; otherwise with the
full :func:`validate_x509_svid_leaf`), and its issuance record is committed (through the
group committer, so concurrent callers share one transaction) before :meth:`Issuer.issue`
returns. If the record cannot be committed, no certificate is returned.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.ca.authority import Authority
from citadel.ca.errors import CaNotReadyError, SigningError
from citadel.ca.group_commit import CommitFailed, GroupCommitter
from citadel.ca.issued_chain import IssuedChain
from citadel.ca.leaf_template import LeafTemplate, der_to_pem
from citadel.ca.serials import next_serial
from citadel.ca.ttl import leaf_validity, resolve_ttl
from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import Clock
from citadel.identity.errors import InvalidCertificateError, InvalidSpiffeIdError
from citadel.identity.keys import PublicKey, key_type_of
from citadel.identity.pem import certificates_to_pem
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.identity.x509_svid import validate_x509_svid_leaf
from citadel.store.errors import StoreUnavailableError
from citadel.store.records import IssuanceInput

__all__ = ["IssuanceRecorder", "IssuedChain", "Issuer", "SignParams"]

_log = logging.getLogger(__name__)
MAX_METADATA_ENTRIES = 32
MAX_METADATA_CHARS = 1024
MAX_REQUESTER_CHARS = 1024


def _storable(text: str) -> bool:
    """Text every database backend stores intact (no NUL, no lone surrogates), so that one
    caller's odd input can never fail the whole group-commit batch it lands in."""
    if "\x00" in text:
        return False
    if text.isascii():  # no surrogates possible
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class IssuanceRecorder(Protocol):
    """Where issuance records go (the repository); one durable transaction per call."""

    def record_issuances(self, batch: Sequence[IssuanceInput]) -> object: ...


_NO_METADATA: Mapping[str, str] = MappingProxyType({})


def _empty_metadata() -> Mapping[str, str]:
    return _NO_METADATA


@dataclass(frozen=True, kw_only=True)
class SignParams:
    """What to sign, decided by the caller's authenticated identity.

    Attributes:
        spiffe_id: the identity to certify (the proven caller's, never the CSR's).
        ttl: the requested lifetime; None or zero means the default.
        requester: who asked (log-safe; for the audit record), e.g. ``mtls:spiffe://...``.
        metadata: small string map stored with the issuance record.
        dns_names: extra DNS SANs, only when policy allows them.
    """

    spiffe_id: SpiffeId
    ttl: timedelta | None = None
    requester: str
    metadata: Mapping[str, str] = field(default_factory=_empty_metadata)
    dns_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.spiffe_id, SpiffeId):
            raise TypeError("spiffe_id must be a SpiffeId")
        if self.ttl is not None and not isinstance(self.ttl, timedelta):
            raise TypeError("ttl must be a timedelta or None")
        if not isinstance(self.requester, str) or not self.requester:
            raise ValueError("requester must be a non-empty str")
        if len(self.requester) > MAX_REQUESTER_CHARS or not _storable(self.requester):
            raise ValueError("requester is too long or holds NUL or unencodable characters")
        if self.metadata is not _NO_METADATA:  # the default needs no checking or copying
            if len(self.metadata) > MAX_METADATA_ENTRIES:
                raise ValueError(f"metadata holds more than {MAX_METADATA_ENTRIES} entries")
            for key, value in self.metadata.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise TypeError("metadata keys and values must be str")
                if len(key) + len(value) > MAX_METADATA_CHARS:
                    raise ValueError("metadata entry is too long")
                if not (_storable(key) and _storable(value)):
                    raise ValueError("metadata holds NUL or unencodable characters")
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        if type(self.dns_names) is not tuple:
            object.__setattr__(self, "dns_names", tuple(self.dns_names))


@dataclass(frozen=True, slots=True)
class _SigningState:
    """Everything about the current signer that is computed once, not per certificate."""

    authority: Authority
    template: LeafTemplate
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    intermediates_pem: tuple[str, ...]
    roots_pem: str
    bundle: TrustBundle


def _signing_state(
    authority: Authority, roots: Sequence[x509.Certificate], trust_domain: TrustDomain, seq: int
) -> _SigningState:
    if not roots:
        raise CaNotReadyError("the trust bundle has no root")
    intermediates = authority.intermediates
    return _SigningState(
        authority=authority,
        template=LeafTemplate(authority.cert),
        roots=tuple(roots),
        intermediates=intermediates,
        intermediates_pem=tuple(
            cert.public_bytes(Encoding.PEM).decode("ascii") for cert in intermediates
        ),
        roots_pem=certificates_to_pem(tuple(roots)),
        bundle=TrustBundle(trust_domain, tuple(roots), sequence=seq),
    )


class Issuer:
    """Signs workload certificates with the active intermediate."""

    def __init__(
        self,
        *,
        signer: Authority,
        roots: Sequence[x509.Certificate],
        trust_domain: TrustDomain,
        recorder: IssuanceRecorder,
        clock: Clock,
        default_ttl: timedelta = timedelta(hours=24),
        max_ttl: timedelta = timedelta(days=90),
        skew: timedelta = timedelta(minutes=2),
        max_batch: int = 512,
        commit_timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        if default_ttl <= timedelta(0) or max_ttl < default_ttl:
            raise ValueError("need 0 < default_ttl <= max_ttl")
        if skew < timedelta(0):
            raise ValueError("skew must not be negative")
        self._trust_domain = trust_domain
        self._clock = clock
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._skew = skew
        self._sequence = 1
        self._state = _signing_state(signer, roots, trust_domain, self._sequence)
        self._committer: GroupCommitter[IssuanceInput] = GroupCommitter(
            recorder.record_issuances,
            max_batch=max_batch,
            wait_timeout=commit_timeout,
            name="citadel-issuance-commit",
        )

    @property
    def trust_domain(self) -> TrustDomain:
        return self._trust_domain

    @property
    def default_ttl(self) -> timedelta:
        return self._default_ttl

    @property
    def max_ttl(self) -> timedelta:
        return self._max_ttl

    @property
    def signer(self) -> Authority:
        return self._state.authority

    def trust_bundle(self) -> TrustBundle:
        """The roots workloads should trust (active, and prepared ones during rotation)."""
        return self._state.bundle

    def update_authorities(self, signer: Authority, roots: Sequence[x509.Certificate]) -> None:
        """Switch to a new signer and/or root set (rotation); later calls use them."""
        self._sequence += 1
        self._state = _signing_state(signer, roots, self._trust_domain, self._sequence)

    def issue(self, public_key: PublicKey, params: SignParams) -> IssuedChain:
        """Sign a leaf for ``public_key`` with the identity in ``params`` and record it.

        Raises:
            InvalidSpiffeIdError: the SPIFFE ID is outside this trust domain or has no path.
            InvalidKeyError: the public key is of a type or size Citadel does not accept.
            TtlError: the requested TTL is negative or above the maximum.
            CaNotReadyError: the issuer is closed or its signer has expired.
            SigningError: signing failed or produced an invalid X509-SVID.
            StoreUnavailableError: the issuance could not be recorded; nothing was issued.
        """
        if self._committer.closed:
            raise CaNotReadyError("the issuer is closed")
        state = self._state
        spiffe_id = params.spiffe_id
        if spiffe_id.trust_domain != self._trust_domain:
            raise InvalidSpiffeIdError(
                f"SPIFFE ID {spiffe_id} is not in trust domain {self._trust_domain}"
            )
        if spiffe_id.is_trust_domain_id:
            raise InvalidSpiffeIdError("a workload SPIFFE ID must have a path")
        key_type = key_type_of(public_key)
        ttl = resolve_ttl(params.ttl, default=self._default_ttl, maximum=self._max_ttl)
        authority = state.authority
        now = self._clock.now()
        not_before, not_after = leaf_validity(
            now=now,
            ttl=ttl,
            skew=self._skew,
            signer_not_before=authority.not_before,
            signer_not_after=authority.not_after,
        )
        serial = next_serial()
        builder = state.template.builder(
            spiffe_id=spiffe_id,
            public_key=public_key,
            key_type=key_type,
            not_before=not_before,
            not_after=not_after,
            serial=serial,
            dns_names=params.dns_names,
        )
        leaf = authority.key.sign_certificate(builder)
        if not state.template.is_issued_leaf(
            leaf, spiffe_id=spiffe_id, key_type=key_type, dns_names=params.dns_names
        ):
            # Not the template's leaf (a key manager that changes what it signs?): the full
            # X509-SVID check decides.
            try:
                validate_x509_svid_leaf(leaf)
            except InvalidCertificateError as exc:
                raise SigningError(f"signed leaf is not a valid X509-SVID: {exc.message}") from exc
        serial_text = format(serial, "x")
        der = leaf.public_bytes(Encoding.DER)
        leaf_pem = der_to_pem(der)
        record = IssuanceInput(
            serial_hex=serial_text,
            spiffe_id=str(spiffe_id),
            not_before=not_before,
            not_after=not_after,
            fingerprint_sha256=hashlib.sha256(der).hexdigest(),
            issuer_fingerprint=authority.fingerprint,
            requester=params.requester,
            metadata=dict(params.metadata),
            certificate_pem=leaf_pem,
            issued_at=now,
        )
        self._commit(record)
        return IssuedChain(
            leaf,
            state.intermediates,
            state.roots,
            serial_text,
            spiffe_id,
            leaf_pem=leaf_pem,
            intermediates_pem=state.intermediates_pem,
            roots_pem=state.roots_pem,
        )

    def _commit(self, record: IssuanceInput) -> None:
        try:
            self._committer.submit(record)
        except CommitFailed as exc:
            if exc.cause is None and self._committer.closed:
                raise CaNotReadyError("the issuer is closed") from exc
            detail = exc.cause.__class__.__name__ if exc.cause is not None else str(exc)
            _log.warning(
                "issuance of serial %s for %s not recorded (%s); certificate withheld",
                record.serial_hex,
                record.spiffe_id,
                detail,
            )
            raise StoreUnavailableError(
                "the issuance could not be recorded, so no certificate was issued"
            ) from (exc.cause or exc)

    def close(self) -> None:
        """Commit queued records, then refuse further signing."""
        self._committer.close()
