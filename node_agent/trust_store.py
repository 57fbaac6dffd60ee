"""The roots (and CRLs) the agent trusts, and the ``ROOTCA`` secret made from them.

Until the CA's own bundle has been accepted once, the configured root file is the trust
anchor: it is re-read for every CSR and whenever it changes, and published as ``ROOTCA``.
From the first accepted CA bundle on (see :mod:`node_agent.bundle_refresh`), the agent
trusts what it accepted from the CA through the rules of :mod:`node_agent.trust_bundle`
(roots added or removed one step at a time, never swapped) and the file is no longer read:
it only bootstraps. ``ROOTCA`` then carries the CA's roots, prepared ones included, and its
CRLs; every version is validated before it reaches the cache (and so Envoy and the
Workload API, which follow the cache's notifications).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509

from citadel.identity.errors import InvalidCertificateError
from citadel.identity.pem import MAX_PEM_BYTES, certificates_to_pem, load_certificates_pem
from node_agent.errors import BundleRejectedError, SecretValidationError, TrustBundleError
from node_agent.metrics import AgentMetrics
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import ValidateSecret, load_trust_bundle_secret
from node_agent.secrets import DEFAULT_ROOT, TrustBundleSecret
from node_agent.trust_bundle import CrlPlan, bundle_version

__all__ = ["TrustStore"]

_log = logging.getLogger(__name__)
NO_CRLS = CrlPlan((), leaf_only=False, valid_until=None)


class TrustStore:
    """Thread-safe. ``trusted_roots`` is what the rotator trusts the CA and its answers with."""

    def __init__(
        self,
        *,
        root_file: Path,
        cache: SecretCache,
        validator: ValidateSecret,
        metrics: AgentMetrics,
        root_name: str = DEFAULT_ROOT,
    ) -> None:
        self.root_file = root_file
        self.root_name = root_name
        self._cache = cache
        self._validate = validator
        self._metrics = metrics
        self._lock = threading.Lock()
        self._roots: tuple[x509.Certificate, ...] = ()
        self._plan = NO_CRLS
        self._ca_state = ""
        self._from_ca = False

    # --- reading ---------------------------------------------------------------------------
    @property
    def from_ca(self) -> bool:
        """True once a bundle from the CA has been accepted (the file is no longer read)."""
        return self._from_ca

    @property
    def ca_state(self) -> str:
        """The state name of the CA answer last accepted ("" before the first)."""
        return self._ca_state

    @property
    def crl_plan(self) -> CrlPlan:
        return self._plan

    def roots(self) -> tuple[x509.Certificate, ...]:
        """The roots trusted now (empty before the root file was first read)."""
        return self._roots

    def version(self) -> str:
        """The bundle version of the roots served in ``ROOTCA`` ("" before any)."""
        roots = self._roots
        return bundle_version(roots) if roots else ""

    def roots_pem(self) -> bytes:
        return certificates_to_pem(self._roots).encode("ascii")

    def trusted_roots(self, now: datetime) -> tuple[list[x509.Certificate], bytes]:
        """The roots to trust the CA and its issued chains with, and their PEM.

        Raises:
            TrustBundleError: still bootstrapping and the root file is unusable.
        """
        if not self._from_ca:
            self._load_file(now)
        roots = self._roots
        return list(roots), certificates_to_pem(roots).encode("ascii")

    # --- the root file ---------------------------------------------------------------------
    def reload_file(self, now: datetime) -> None:
        """The root file changed: republish it while bootstrapping; afterwards only note it."""
        if self._from_ca:
            _log.info(
                "root file %s changed; it is used for bootstrap only, the agent trusts the "
                "CA's bundle (roots %s)",
                self.root_file,
                self.version(),
            )
            return
        try:
            self._load_file(now)
        except TrustBundleError as exc:
            self._metrics.secrets_rejected.labels("root_bundle").inc()
            _log.warning("root bundle not republished: %s", exc.message)

    def _load_file(self, now: datetime) -> None:
        path = self.root_file
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_PEM_BYTES + 1)
        except OSError as exc:
            raise TrustBundleError(
                f"cannot read the CA root bundle {path}: {exc.strerror or exc}"
            ) from exc
        try:
            roots = load_certificates_pem(data, what=f"CA root bundle {path}")
            secret = load_trust_bundle_secret(self.root_name, data)
            self._validate(secret, now)
        except (InvalidCertificateError, SecretValidationError) as exc:
            raise TrustBundleError(exc.message) from exc
        with self._lock:
            if self._from_ca:  # the CA's bundle was accepted meanwhile: it wins
                return
            self._roots = tuple(roots)
            self._publish(secret)

    # --- the CA's bundle -------------------------------------------------------------------
    def accept(
        self, roots: Sequence[x509.Certificate], plan: CrlPlan, *, state: str, now: datetime
    ) -> bool:
        """Trust ``roots`` with ``plan``'s CRLs (already checked by the caller against the
        transition rules) and publish them; True when ``ROOTCA`` changed.

        Raises:
            BundleRejectedError: the resulting secret fails validation (nothing changes).
        """
        try:
            secret = self._secret(roots, plan)
            self._validate(secret, now)
        except SecretValidationError as exc:
            raise BundleRejectedError(f"the CA's bundle is not usable: {exc.message}") from exc
        with self._lock:
            self._roots = tuple(roots)
            self._plan = plan
            self._ca_state = state
            self._from_ca = True
            return self._publish(secret)

    def drop_crls(self, reason: str) -> bool:
        """Publish the trusted roots without CRLs (they are about to expire and no fresh
        ones could be fetched: availability over revocation); True when ROOTCA changed."""
        with self._lock:
            if not self._plan.crls:
                return False
            self._plan = NO_CRLS
            self._ca_state = ""  # the next answer from the CA is taken in full
            changed = self._publish(self._secret(self._roots, NO_CRLS))
        _log.error("CRLs withdrawn from %s: %s", self.root_name, reason)
        return changed

    def _secret(self, roots: Sequence[x509.Certificate], plan: CrlPlan) -> TrustBundleSecret:
        base = load_trust_bundle_secret(
            self.root_name, certificates_to_pem(list(roots)).encode("ascii")
        )
        return TrustBundleSecret(
            name=base.name,
            trusted_ca_pem=base.trusted_ca_pem,
            root_fingerprints=base.root_fingerprints,
            not_after=base.not_after,
            crls_der=plan.crls,
            crl_leaf_only=plan.leaf_only,
        )

    def _publish(self, secret: TrustBundleSecret) -> bool:
        if self._cache.publish(secret) is None:
            return False
        _log.info("trust bundle published: %s", secret.describe())
        return True
