"""Obtains the workload certificate from the CA and keeps it fresh.

One renewal: take the trusted roots (:class:`~node_agent.trust_store.TrustStore`: the
configured root file until the CA's bundle is accepted, which also publishes ``ROOTCA``),
generate a new key locally (it never leaves the node), build a CSR, call the CA with the
configured credential, verify the answer against those roots, then publish ``default`` to
the shared cache and write the optional output files. The next renewal is scheduled at
``rotate_at`` of the *issued* certificate. A failure keeps the cached certificate, is
logged and counted, and is retried with capped exponential backoff (never later than the
cached certificate's expiry).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography import x509

from citadel.identity.clock import Clock
from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.keys import KeyType, generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.spiffe_id import SpiffeId
from node_agent.cert_writer import CertWriter
from node_agent.credentials import CallAuth, Credential, SvidCredential
from node_agent.errors import AgentError, CaUnreachableError, IssuedChainError
from node_agent.issued_chain import verify_issued_chain
from node_agent.metrics import CSR_RESULTS, AgentMetrics
from node_agent.rotation import BackoffPolicy, RotationPolicy, backoff_delay, retry_at, rotate_at
from node_agent.scheduler import Scheduler
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import ValidateSecret
from node_agent.secrets import DEFAULT_CERTIFICATE, DEFAULT_ROOT, TlsCertificateSecret
from node_agent.trust_store import TrustStore

__all__ = ["CertificateRotator", "CsrSigner", "RotatorSettings"]

_log = logging.getLogger(__name__)


class CsrSigner(Protocol):
    def create_certificate(
        self, csr_pem: str, *, ttl: timedelta | None, auth: CallAuth, roots_pem: bytes
    ) -> list[str]: ...


class TrustedRoots(Protocol):
    def trusted_roots(self, now: datetime) -> tuple[list[x509.Certificate], bytes]:
        """Raises TrustBundleError when no usable root is known."""
        ...

    def reload_file(self, now: datetime) -> None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class RotatorSettings:
    spiffe_id: SpiffeId
    root_bundle_path: Path
    key_type: KeyType = KeyType.EC_P256
    ttl: timedelta | None = None
    rotation: RotationPolicy = field(default_factory=RotationPolicy)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    renew_with_certificate: bool = True
    certificate_name: str = DEFAULT_CERTIFICATE
    root_name: str = DEFAULT_ROOT


@dataclass(frozen=True, slots=True)
class _Current:
    secret: TlsCertificateSecret

    def usable_at(self, now: datetime) -> bool:
        return self.secret.not_before <= now < self.secret.not_after


class CertificateRotator:
    TASK = "renew-certificate"

    def __init__(
        self,
        settings: RotatorSettings,
        *,
        signer: CsrSigner,
        bootstrap: Credential,
        cache: SecretCache,
        scheduler: Scheduler,
        clock: Clock,
        metrics: AgentMetrics,
        validator: ValidateSecret,
        rng: random.Random | None = None,
        writer: CertWriter | None = None,
        trust: TrustedRoots | None = None,
        on_untrusted_chain: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._trust: TrustedRoots = (
            trust
            if trust is not None
            else TrustStore(
                root_file=settings.root_bundle_path,
                cache=cache,
                validator=validator,
                metrics=metrics,
                root_name=settings.root_name,
            )
        )
        self._on_untrusted_chain = on_untrusted_chain
        self._signer = signer
        self._bootstrap = bootstrap
        self._cache = cache
        self._scheduler = scheduler
        self._clock = clock
        self._metrics = metrics
        self._validate = validator
        self._rng = rng if rng is not None else random.SystemRandom()
        self._writer = writer
        self._current: _Current | None = None
        self._failures = 0
        self._lock = threading.Lock()  # one renewal at a time
        self.last_error: AgentError | None = None
        self.ca_unreachable = False
        self.last_credential: str | None = None
        self.next_renewal: datetime | None = None

    # --- public --------------------------------------------------------------------------
    def start(self) -> None:
        """Schedule the first renewal now."""
        self.request_renewal()

    def request_renewal(self) -> None:
        now = self._clock.now()
        self.next_renewal = now
        self._scheduler.schedule(self.TASK, now, self.renew)

    def refresh_trust_bundle(self) -> None:
        """The configured root bundle changed (see :meth:`TrustStore.reload_file`)."""
        self._trust.reload_file(self._clock.now())

    @property
    def current(self) -> TlsCertificateSecret | None:
        current = self._current
        return current.secret if current is not None else None

    def renew(self) -> bool:
        """One renewal attempt; schedules the next one either way. True on success."""
        with self._lock:
            now = self._clock.now()
            try:
                secret = self._obtain(now)
            except AgentError as exc:
                self._failed(exc, now)
                return False
            except Exception as exc:  # a bug must not stop rotation: count, log, retry
                _log.exception("certificate renewal failed unexpectedly")
                self._failed(AgentError(f"unexpected error: {type(exc).__name__}"), now)
                return False
            self._succeeded(secret, now)
            return True

    # --- steps ---------------------------------------------------------------------------
    def _credential(self, now: datetime) -> Credential:
        current = self._current
        if self.settings.renew_with_certificate and current is not None and current.usable_at(now):
            return SvidCredential(current.secret.cert_chain_pem, current.secret.private_key_pem)
        return self._bootstrap

    def _obtain(self, now: datetime) -> TlsCertificateSecret:
        roots, roots_pem = self._trust.trusted_roots(now)
        key = generate_private_key(self.settings.key_type)
        csr_pem = csr_to_pem(build_csr(key, self.settings.spiffe_id))
        credential = self._credential(now)
        auth = credential.call_auth()
        chain = self._signer.create_certificate(
            csr_pem, ttl=self.settings.ttl, auth=auth, roots_pem=roots_pem
        )
        checked_at = self._clock.now()
        svid = verify_issued_chain(
            chain, expected=self.settings.spiffe_id, key=key, roots=roots, now=checked_at
        )
        secret = TlsCertificateSecret(
            name=self.settings.certificate_name,
            cert_chain_pem=svid.chain_pem(),
            private_key_pem=private_key_to_pkcs8_pem(key),
            spiffe_id=str(svid.spiffe_id),
            serial_hex=svid.serial_hex,
            not_before=svid.not_before,
            not_after=svid.not_after,
        )
        self._validate(secret, checked_at)
        if self._writer is not None:
            try:
                self._writer.write(
                    chain_pem=secret.cert_chain_pem,
                    key_pem=secret.private_key_pem,
                    roots_pem=roots_pem,
                )
            except OSError as exc:  # the SDS path must not suffer from a full disk
                _log.error("cannot write certificates to %s: %s", self._writer.directory, exc)
        self.last_credential = auth.kind
        return secret

    def _succeeded(self, secret: TlsCertificateSecret, now: datetime) -> None:
        self._current = _Current(secret)
        self._failures = 0
        self.last_error = None
        self._cache.publish(secret)
        self._metrics.csr_requests.labels("success").inc()
        self._metrics.rotations.inc()
        self.ca_unreachable = False
        self._metrics.ca_unreachable.set(0)
        self._metrics.renewal_failing.set(0)
        policy = self.settings.rotation
        at = rotate_at(
            secret.not_before,
            secret.not_after,
            policy.ratio,
            policy.jitter_fraction,
            self._rng.uniform(-1.0, 1.0),
        )
        at = max(at, now)
        self.next_renewal = at
        self._scheduler.schedule(self.TASK, at, self.renew)
        _log.info(
            "certificate issued for %s serial=%s not_after=%s (asked with %s); next renewal at %s",
            secret.spiffe_id,
            secret.serial_hex,
            secret.not_after.isoformat(),
            self.last_credential,
            at.isoformat(),
        )

    def _failed(self, exc: AgentError, now: datetime) -> None:
        self.last_error = exc
        if isinstance(exc, IssuedChainError) and self._on_untrusted_chain is not None:
            self._on_untrusted_chain()  # perhaps signed under a root not fetched yet
        result = exc.kind if exc.kind in CSR_RESULTS else "error"
        self._metrics.csr_requests.labels(result).inc()
        self.ca_unreachable = isinstance(exc, CaUnreachableError)
        self._metrics.ca_unreachable.set(1 if self.ca_unreachable else 0)
        self._metrics.renewal_failing.set(1)
        delay = backoff_delay(self._failures, self.settings.backoff, self._rng.uniform(-1.0, 1.0))
        self._failures += 1
        current = self._current
        not_after = current.secret.not_after if current is not None else None
        at = retry_at(now, delay, not_after)
        self.next_renewal = at
        self._scheduler.schedule(self.TASK, at, self.renew)
        seconds = (at - now).total_seconds()
        if current is not None and current.usable_at(now):
            _log.warning(
                "certificate renewal failed (%s: %s); still serving the cached certificate "
                "serial=%s valid until %s; retry %d in %.1fs",
                exc.kind,
                exc.message,
                current.secret.serial_hex,
                current.secret.not_after.isoformat(),
                self._failures,
                seconds,
            )
        elif current is not None:
            _log.error(
                "certificate renewal failed (%s: %s); the cached certificate serial=%s EXPIRED "
                "at %s and is no longer served; retry %d in %.1fs",
                exc.kind,
                exc.message,
                current.secret.serial_hex,
                current.secret.not_after.isoformat(),
                self._failures,
                seconds,
            )
        else:
            _log.error(
                "cannot obtain a certificate (%s: %s); retry %d in %.1fs",
                exc.kind,
                exc.message,
                self._failures,
                seconds,
            )
