"""Keeping ``ROOTCA`` in step with the CA: roots being rotated in and out, and CRLs.

Every ``interval`` (2 s by default, shortened by up to 20 % of jitter, never lengthened)
the agent asks the CA's agent API for the bundle, over mTLS with its own certificate,
naming the answer it already holds; an unchanged answer is a few bytes. A changed answer
is taken only if:

1. its roots are a superset or a subset of the trusted ones
   (:func:`~node_agent.trust_bundle.root_transition`);
2. when the roots change, the CA's serving chain verifies with the *offered* roots (a
   probe call over a channel that trusts only them), so the agent never drops the root
   that vouches for the CA itself;
3. its CRLs pass :func:`~node_agent.trust_bundle.plan_crls`;
4. the resulting ``ROOTCA`` passes the push validation.

Otherwise the agent keeps what it trusts, logs why, and asks again next time. With each
request the agent acknowledges the bundle version it serves, which ``citadel ca rotate
status`` counts.

Revocation latency: a revocation reaches the CA's CRLs within its watch interval (3 s),
then the agents within ``interval``, then Envoy within milliseconds of the push: at most
about 5 s with the defaults. A held call (long-poll or stream) would shave the agent's
share, but the CA's gRPC server runs one thread per call, so it would hold a CA thread per
agent; a 2 s poll over a kept-alive HTTP/2 channel costs one small RPC per agent (about a
millisecond of CA time; an unchanged answer carries no bundle).

CRLs about to expire (``nextUpdate`` within ``crl_margin``) that could not be refreshed,
because the CA is unreachable, are withdrawn from ``ROOTCA``: Envoy refuses every chain a
stale CRL covers, so availability wins over revocation until the CA is back.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509

from citadel.identity.clock import Clock
from citadel.identity.errors import InvalidCertificateError
from citadel.identity.pem import certificates_to_pem, load_certificates_pem
from citadel.identity.spiffe_id import TrustDomain
from node_agent.agent_api_channel import MtlsMaterial
from node_agent.bundle_client import FetchedBundle
from node_agent.errors import AgentError, BundleRejectedError, CaRejectedError, CaUnreachableError
from node_agent.metrics import AgentMetrics
from node_agent.rotation import BackoffPolicy, backoff_delay
from node_agent.scheduler import Scheduler
from node_agent.secrets import TlsCertificateSecret
from node_agent.trust_bundle import plan_crls, root_transition
from node_agent.trust_store import TrustStore

__all__ = ["DEFAULT_REFRESH_INTERVAL", "BundleRefresher", "BundleSource"]

_log = logging.getLogger(__name__)
DEFAULT_REFRESH_INTERVAL = timedelta(seconds=2)
DEFAULT_CRL_MARGIN = timedelta(minutes=2)
JITTER = 0.2
# Codes meaning "this CA does not serve the bundle to this agent": ask rarely.
_NOT_SERVED = frozenset({"UNIMPLEMENTED", "PERMISSION_DENIED", "UNAUTHENTICATED"})

OwnCertificate = Callable[[], TlsCertificateSecret | None]


class BundleSource(Protocol):
    def fetch(
        self,
        material: MtlsMaterial,
        *,
        trust_domain: TrustDomain,
        acknowledged_version: str = "",
        known_state: str = "",
    ) -> FetchedBundle | None: ...

    def probe(self, material: MtlsMaterial) -> None: ...


def _intermediates(own: TlsCertificateSecret) -> list[x509.Certificate]:
    try:
        chain = load_certificates_pem(own.cert_chain_pem)
    except InvalidCertificateError:
        return []
    return [c for c in chain[1:] if c.issuer != c.subject]


class BundleRefresher:
    """Runs on the agent's scheduler (task ``refresh-trust-bundle``)."""

    TASK = "refresh-trust-bundle"

    def __init__(
        self,
        *,
        source: BundleSource,
        trust: TrustStore,
        own_certificate: OwnCertificate,
        trust_domain: TrustDomain,
        scheduler: Scheduler,
        clock: Clock,
        metrics: AgentMetrics,
        interval: timedelta = DEFAULT_REFRESH_INTERVAL,
        backoff: BackoffPolicy | None = None,
        crl_margin: timedelta = DEFAULT_CRL_MARGIN,
        rng: random.Random | None = None,
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError("bundle refresh interval must be positive")
        self._source = source
        self._trust = trust
        self._own = own_certificate
        self._trust_domain = trust_domain
        self._scheduler = scheduler
        self._clock = clock
        self._metrics = metrics
        self.interval = interval
        self._backoff = backoff or BackoffPolicy(
            initial=interval, maximum=max(interval, timedelta(seconds=60))
        )
        self._crl_margin = crl_margin
        self._rng = rng if rng is not None else random.SystemRandom()
        self._lock = threading.Lock()
        self._failures = 0
        self._reported: str | None = None
        self.last_error: AgentError | None = None
        self.last_refresh: datetime | None = None
        self.next_refresh: datetime | None = None

    # --- scheduling ----------------------------------------------------------------------
    def start(self) -> None:
        self.request_refresh()

    def stop(self) -> None:
        self._scheduler.cancel(self.TASK)

    def request_refresh(self) -> None:
        """Refresh as soon as the scheduler can (e.g. an issued chain did not verify)."""
        self._schedule(self._clock.now())

    def _schedule(self, at: datetime) -> None:
        until = self._trust.crl_plan.valid_until
        if until is not None:
            at = min(at, until - self._crl_margin)
        self.next_refresh = at
        self._scheduler.schedule(self.TASK, at, self.run)

    def _after_interval(self, now: datetime) -> datetime:
        """Spread the agents' polls, but never wait longer than ``interval``."""
        return now + self.interval * (1.0 - JITTER * self._rng.uniform(0.0, 1.0))

    # --- one refresh ---------------------------------------------------------------------
    def run(self) -> bool:
        """One poll; True when ``ROOTCA`` changed. Always schedules the next one."""
        with self._lock:
            now = self._clock.now()
            own = self._own()
            if own is None or not own.not_before <= now < own.not_after:
                self._withdraw_expiring_crls(now)  # no certificate to ask with
                self._schedule(self._after_interval(now))
                return False
            try:
                changed = self._refresh(own, now)
            except BundleRejectedError as exc:
                self._rejected(exc, now)
                return False
            except AgentError as exc:
                self._failed(exc, now)
                return False
            self._failures = 0
            self.last_error = None
            self._reported = None
            self.last_refresh = now
            self._schedule(self._after_interval(now))
            return changed

    def _refresh(self, own: TlsCertificateSecret, now: datetime) -> bool:
        material = MtlsMaterial(
            chain_pem=own.cert_chain_pem,
            key_pem=own.private_key_pem,
            roots_pem=self._trust.roots_pem() or self._trusted_pem(now),
        )
        answer = self._source.fetch(
            material,
            trust_domain=self._trust_domain,
            acknowledged_version=self._trust.version(),
            known_state=self._trust.ca_state,
        )
        if answer is None:
            self._metrics.bundle_refreshes.labels("unchanged").inc()
            return False
        offered = answer.bundle.x509_authorities
        change = root_transition(self._trust.roots(), offered)
        if change.changed:
            probe = replace(material, roots_pem=certificates_to_pem(list(offered)).encode("ascii"))
            try:
                self._source.probe(probe)
            except (CaUnreachableError, CaRejectedError) as exc:
                raise BundleRejectedError(
                    f"the CA's bundle ({change.describe()}) is not taken: the CA's serving "
                    f"certificate could not be verified with it ({exc.message})"
                ) from exc
        plan = plan_crls(offered, answer.crls, own_intermediates=_intermediates(own), now=now)
        if plan.note:
            _log.warning("trust bundle from the CA: %s", plan.note)
        changed = self._trust.accept(offered, plan, state=answer.state, now=now)
        self._metrics.bundle_refreshes.labels("changed" if changed else "unchanged").inc()
        if change.changed:
            _log.info(
                "trust bundle from the CA accepted (%s): version %s",
                change.describe(),
                self._trust.version(),
            )
        return changed

    def _trusted_pem(self, now: datetime) -> bytes:
        return self._trust.trusted_roots(now)[1]

    # --- failures ------------------------------------------------------------------------
    def _report(self, level: int, text: str) -> None:
        """Log a failure once until it changes or a refresh succeeds."""
        if text != self._reported:
            self._reported = text
            _log.log(level, "%s", text)

    def _rejected(self, exc: BundleRejectedError, now: datetime) -> None:
        self.last_error = exc
        self._metrics.bundle_refreshes.labels("rejected").inc()
        self._report(
            logging.ERROR,
            f"trust bundle from the CA rejected, keeping the current one: {exc.message}",
        )
        self._withdraw_expiring_crls(now)
        self._schedule(self._after_interval(now))

    def _failed(self, exc: AgentError, now: datetime) -> None:
        self.last_error = exc
        self._metrics.bundle_refreshes.labels("failed").inc()
        if isinstance(exc, CaRejectedError) and exc.code in _NOT_SERVED:
            delay = self._backoff.maximum
            self._report(
                logging.WARNING,
                f"the CA does not serve its trust bundle to this agent ({exc.message}); "
                f"ROOTCA keeps the current roots; asking again every {delay.total_seconds():g}s",
            )
        else:
            delay = backoff_delay(self._failures, self._backoff, self._rng.uniform(-1.0, 1.0))
            self._failures += 1
            self._report(
                logging.WARNING,
                f"trust bundle refresh failed ({exc.kind}: {exc.message}); retrying",
            )
        self._withdraw_expiring_crls(now)
        self._schedule(now + delay)

    def _withdraw_expiring_crls(self, now: datetime) -> None:
        until = self._trust.crl_plan.valid_until
        if until is not None and now >= until - self._crl_margin:
            self._trust.drop_crls(
                f"they expire at {until.isoformat()} and no fresh ones could be fetched; "
                "revocation is not checked until the CA is reachable again"
            )
