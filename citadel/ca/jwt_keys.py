"""The CA's JWT-SVID signing keys: a current key, a next one, and the JWKS that publishes them.

Keys live in the key manager (only a handle signs through ``Key.sign_bytes``); each has an
authority record of kind ``"jwt"`` whose ``certificate_pem`` is the public key and whose id
is both the key-manager id and the JWT ``kid``. Rotation follows the same thresholds as the
X.509 authorities (:mod:`citadel.ca.rotation_schedule`), with overlap:

* at half the current key's life the next key is created ``prepared``: published in the
  JWKS but not signing, so validators learn it before the first token appears;
* at five sixths it becomes ``active`` (signing) and the old key ``retired``: still
  published until its ``not_after``, long after the last token it signed has expired.

Several CA processes may share one database: changes are made under a store lock, and each
process re-reads the records at least every ``refresh_interval``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cryptography.hazmat.primitives import serialization

from citadel.ca.authority_records import new_key_id
from citadel.ca.errors import CaNotReadyError, KeyManagerError
from citadel.ca.keymanager.base import Key, KeyManager
from citadel.ca.rotation_schedule import rotation_due
from citadel.identity.bundle import JwtAuthority
from citadel.identity.clock import Clock
from citadel.identity.jwt_svid import KeyHandleJwtSigner, jwt_algorithm_for, mint_jwt_svid
from citadel.identity.keys import KeyType, PublicKey, key_type_of, public_key_fingerprint
from citadel.identity.spiffe_id import SpiffeId
from citadel.store.records import AuthorityRecord

__all__ = [
    "JWT_KIND",
    "JwtKeyPolicy",
    "JwtKeySet",
    "JwtKeyStore",
    "MintedJwtSvid",
    "published_jwt_authorities",
]

_log = logging.getLogger(__name__)
JWT_KIND = "jwt"
PUBLISHED_STATES = ("prepared", "active", "retired")
LOCK_NAME = "jwt-keys"
LOCK_TTL = timedelta(minutes=1)


class JwtKeyStore(Protocol):
    """What the key set needs from the repository."""

    def list_authorities(
        self, kind: str | None = None, states: Sequence[str] | None = None
    ) -> list[AuthorityRecord]: ...

    def save_authority(self, record: AuthorityRecord) -> AuthorityRecord: ...

    def set_authority_state(self, authority_id: str, state: str, at: datetime) -> object: ...

    def append_audit(
        self, action: str, subject: str, payload: dict[str, object], at: datetime
    ) -> object: ...

    def try_acquire_lock(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool: ...

    def release_lock(self, name: str, holder: str) -> bool: ...


@dataclass(frozen=True, kw_only=True)
class JwtKeyPolicy:
    """How JWT-SVID keys are made and used.

    Attributes:
        key_type: ES256 (P-256) by default; P-384 gives ES384, RSA gives RS256.
        key_lifetime: how long one key may sign (rotation points are fractions of it).
        token_ttl: the lifetime of minted JWT-SVIDs (short: 5 minutes).
        max_token_ttl: the longest lifetime a caller may ask for.
        refresh_interval: how stale this process's view of the keys may become.
    """

    key_type: KeyType = KeyType.EC_P256
    key_lifetime: timedelta = timedelta(hours=24)
    token_ttl: timedelta = timedelta(minutes=5)
    max_token_ttl: timedelta = timedelta(hours=1)
    refresh_interval: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.token_ttl <= timedelta(0) or self.max_token_ttl < self.token_ttl:
            raise ValueError("need 0 < token_ttl <= max_token_ttl")
        # The retired key stays published for a sixth of its life: tokens must expire first.
        if self.key_lifetime / 6 <= self.max_token_ttl:
            raise ValueError("key_lifetime must exceed six times max_token_ttl")
        if self.refresh_interval <= timedelta(0):
            raise ValueError("refresh_interval must be positive")


@dataclass(frozen=True, slots=True)
class MintedJwtSvid:
    """A minted token (never logged) with what may be logged about it."""

    token: str
    spiffe_id: SpiffeId
    key_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _PublishedKey:
    record: AuthorityRecord
    public_key: PublicKey


def _public_key_of(record: AuthorityRecord) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(record.certificate_pem.encode("ascii"))
        key_type_of(key)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise CaNotReadyError(f"the stored public key of JWT key {record.id} is damaged") from exc
    if public_key_fingerprint(key) != record.fingerprint_sha256:  # type: ignore[arg-type]
        raise CaNotReadyError(f"the stored public key of JWT key {record.id} does not match")
    return key  # type: ignore[return-value]


def published_jwt_authorities(
    records: Sequence[AuthorityRecord], now: datetime
) -> tuple[JwtAuthority, ...]:
    """The JWT keys validators must trust at ``now``: prepared, active, and retired ones
    that have not reached their ``not_after``, oldest first.

    Raises:
        CaNotReadyError: a stored public key is damaged.
    """
    published = sorted(
        (
            r
            for r in records
            if r.kind == JWT_KIND and r.state in PUBLISHED_STATES and now < r.not_after
        ),
        key=lambda r: (r.created_at, r.id),
    )
    return tuple(JwtAuthority(r.id, _public_key_of(r)) for r in published)


def _newest(records: Sequence[AuthorityRecord]) -> AuthorityRecord | None:
    return max(records, key=lambda r: (r.activated_at or r.created_at, r.id), default=None)


class JwtKeySet:
    """Keeps a signing key (and its successor) and mints JWT-SVIDs. Thread-safe."""

    def __init__(
        self,
        *,
        store: JwtKeyStore,
        key_manager: KeyManager,
        clock: Clock,
        policy: JwtKeyPolicy | None = None,
    ) -> None:
        self._store = store
        self._keys = key_manager
        self._clock = clock
        self.policy = policy if policy is not None else JwtKeyPolicy()
        self._lock = threading.Lock()
        self._records: tuple[AuthorityRecord, ...] = ()
        self._handles: dict[str, Key] = {}
        self._loaded_at: datetime | None = None

    # --- public ---------------------------------------------------------------------------
    def authorities(self) -> tuple[JwtAuthority, ...]:
        """The JWKS keys (see :func:`published_jwt_authorities`), after any due rotation."""
        with self._lock:
            self._maintain_if_stale()
            return published_jwt_authorities(self._records, self._clock.now())

    def mint(
        self, spiffe_id: SpiffeId, audiences: Sequence[str], ttl: timedelta | None = None
    ) -> MintedJwtSvid:
        """Mint a JWT-SVID with the active key.

        Raises:
            ValueError: bad audiences, a TTL that is not positive or above the maximum.
            CaNotReadyError / KeyManagerError: no usable signing key.
        """
        lifetime = self.policy.token_ttl if ttl is None else ttl
        if not timedelta(0) < lifetime <= self.policy.max_token_ttl:
            raise ValueError(
                f"JWT-SVID lifetime must be positive and at most {self.policy.max_token_ttl}"
            )
        with self._lock:
            self._maintain_if_stale()
            signer = self._signer()
        now = self._clock.now()
        token = mint_jwt_svid(signer, spiffe_id, audiences, ttl=lifetime, now=now)
        expires_at = datetime.fromtimestamp(int((now + lifetime).timestamp()), now.tzinfo)
        return MintedJwtSvid(
            token=token, spiffe_id=spiffe_id, key_id=signer.key_id, expires_at=expires_at
        )

    def maintain(self) -> None:
        """Re-read the keys and carry out any due step (first key, prepare, activate)."""
        with self._lock:
            self._maintain()

    # --- internals -----------------------------------------------------------------------
    def _maintain_if_stale(self) -> None:
        now = self._clock.now()
        if self._loaded_at is None or now - self._loaded_at >= self.policy.refresh_interval:
            self._maintain()
            return
        active = self._active()
        if active is None or self._step_due(active, now):
            self._maintain()

    def _load(self) -> None:
        self._records = tuple(self._store.list_authorities(kind=JWT_KIND))
        self._loaded_at = self._clock.now()

    def _active(self) -> AuthorityRecord | None:
        now = self._clock.now()
        return _newest([r for r in self._records if r.state == "active" and now < r.not_after])

    def _prepared(self) -> AuthorityRecord | None:
        now = self._clock.now()
        return _newest([r for r in self._records if r.state == "prepared" and now < r.not_after])

    def _step_due(self, active: AuthorityRecord, now: datetime) -> bool:
        due = rotation_due(active.not_before, active.not_after, now)
        prepared = self._prepared()
        return (due.prepare and prepared is None) or (due.activate and prepared is not None)

    def _maintain(self) -> None:
        self._load()
        now = self._clock.now()
        active = self._active()
        if active is not None and not self._step_due(active, now):
            return
        holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        if not self._store.try_acquire_lock(LOCK_NAME, holder, LOCK_TTL, now):
            _log.debug("another process is rotating the JWT keys; using the stored ones")
            return
        try:
            self._load()  # another process may have acted before we took the lock
            self._rotate(now)
            self._load()
        finally:
            self._store.release_lock(LOCK_NAME, holder)

    def _rotate(self, now: datetime) -> None:
        active = self._active()
        prepared = self._prepared()
        if active is None:
            if prepared is not None:
                self._activate(prepared, None, now)
            else:
                self._activate(self._create("active", now), None, now)
            return
        due = rotation_due(active.not_before, active.not_after, now)
        if due.prepare and prepared is None:
            prepared = self._create("prepared", now)
        if due.activate and prepared is not None:
            self._activate(prepared, active, now)

    def _create(self, state: str, now: datetime) -> AuthorityRecord:
        key_id = new_key_id(JWT_KIND, now)
        key = self._keys.generate_key(key_id, self.policy.key_type)
        public_key = key.public_key()
        pem = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
        record = AuthorityRecord(
            id=key_id,
            kind=JWT_KIND,
            state=state,
            certificate_pem=pem,
            key_ref=key_id,
            serial_hex="",
            fingerprint_sha256=public_key_fingerprint(public_key),
            parent_id=None,
            not_before=now,
            not_after=now + self.policy.key_lifetime,
            created_at=now,
            activated_at=now if state == "active" else None,
        )
        try:
            self._store.save_authority(record)
        except BaseException:
            try:
                self._keys.delete_key(key_id)
            except KeyManagerError:
                _log.warning("JWT key %s could not be removed after a failed save", key_id)
            raise
        self._handles[key_id] = key
        self._store.append_audit(
            f"jwt_key_{state}",
            key_id,
            {"sha256": record.fingerprint_sha256, "not_after": record.not_after.isoformat()},
            now,
        )
        _log.info(
            "JWT-SVID key %s created (%s, %s, sha256 %s) valid until %s",
            key_id,
            state,
            jwt_algorithm_for(public_key),
            record.fingerprint_sha256,
            record.not_after.isoformat(),
        )
        return record

    def _activate(
        self, record: AuthorityRecord, previous: AuthorityRecord | None, now: datetime
    ) -> None:
        if record.state != "active":
            self._store.set_authority_state(record.id, "active", now)
            self._store.append_audit("jwt_key_activate", record.id, {}, now)
        if previous is not None:
            self._store.set_authority_state(previous.id, "retired", now)
            self._store.append_audit("jwt_key_retire", previous.id, {}, now)
        _log.info(
            "JWT-SVID key %s is now signing%s",
            record.id,
            f" (key {previous.id} retired, still published)" if previous is not None else "",
        )

    def _signer(self) -> KeyHandleJwtSigner:
        active = self._active()
        if active is None:
            raise CaNotReadyError("no JWT-SVID signing key is active")
        key = self._handles.get(active.key_ref)
        if key is None:
            try:
                key = self._keys.get_key(active.key_ref)
            except KeyManagerError as exc:
                raise CaNotReadyError(
                    f"the JWT-SVID key {active.id} is missing from the key store"
                ) from exc
            if public_key_fingerprint(key.public_key()) != active.fingerprint_sha256:
                raise CaNotReadyError(f"the JWT-SVID key {active.id} does not match its record")
            self._handles[active.key_ref] = key
        return KeyHandleJwtSigner(active.id, key.public_key(), key.sign_bytes)
