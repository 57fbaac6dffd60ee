"""Everything a serving CA process runs for authority lifecycle, behind one call.

    ca = open_serving_ca(ca_config, plugin_dir=plugin_dir)        # instead of open_ca(...)
    lifecycle = start_ca_lifecycle(ca, LifecycleOptions(plugin_dir=plugin_dir))
    ...  MtlsAuthenticator(is_revoked=lifecycle.is_certificate_revoked, ...)
    ...  agents: lifecycle.current_crls(), lifecycle.bundle_version(),
    ...          lifecycle.record_bundle_ack(agent_id, version)
    lifecycle.close()                                              # before ca.close()

One background loop (every ``watch_interval``) keeps the issuer in step with the stored
authorities (:class:`~citadel.ca.authority_watch.AuthorityWatcher`), refreshes the revocation
index and the CRLs, runs the automatic rotation schedule (a singleton across replicas through
the ``ca-rotation`` lock) and writes the bundle-acknowledgement snapshot that ``citadel ca
rotate status`` reads. With a plug-in CA directory, a watchdog watcher installs changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from citadel.ca.authority_watch import AuthorityWatcher
from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, open_ca
from citadel.ca.crl import CrlPublisher
from citadel.ca.plugin_install import install_plugin_dir_before_start
from citadel.ca.plugin_watch import DEFAULT_QUIET, PluginCa
from citadel.ca.revocation_index import RevocationIndex
from citadel.ca.rotation.acks import (
    ACK_SNAPSHOT_FILE,
    InMemoryBundleAcks,
    bundle_version,
    write_snapshot,
)
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.schedule import RotationJob
from citadel.ca.rotation.steps import AuthorityRotation
from citadel.errors import CitadelError
from citadel.identity.clock import Clock, SystemClock

__all__ = ["CaLifecycle", "LifecycleOptions", "open_serving_ca", "start_ca_lifecycle"]

_log = logging.getLogger(__name__)
ACK_REWRITE = timedelta(minutes=1)


@dataclass(frozen=True, kw_only=True)
class LifecycleOptions:
    """Settings of the lifecycle loop (``citadel serve`` options map onto these).

    Attributes:
        rotation: propagation delay, lock lease, automatic on/off, check intervals.
        watch_interval: how often the loop runs (store poll, revocations, CRLs).
        crl_next_update: the ``nextUpdate`` distance of every CRL.
        plugin_dir: a plug-in CA directory to install and watch (``--plugin-ca-dir``).
        plugin_quiet: how long the plug-in directory must be quiet before it is read.
        ack_snapshot: where to write the bundle-acknowledgement counts (None: the data
            directory's ``bundle-acks.json``).
    """

    rotation: RotationPolicy = field(default_factory=RotationPolicy)
    watch_interval: timedelta = timedelta(seconds=3)
    crl_next_update: timedelta = timedelta(hours=1)
    plugin_dir: Path | None = None
    plugin_quiet: timedelta = DEFAULT_QUIET
    ack_snapshot: Path | None = None

    def __post_init__(self) -> None:
        if self.watch_interval <= timedelta(0) or self.crl_next_update <= timedelta(0):
            raise ValueError("watch_interval and crl_next_update must be positive")


def open_serving_ca(
    config: CaConfig, clock: Clock | None = None, *, plugin_dir: Path | None = None
) -> CaContext:
    """``open_ca(config, init_if_missing=True)``, but with a plug-in CA directory installed
    first, so a new data directory starts from the plug-in CA (no self-signed root).

    Raises:
        PluginCaError: the plug-in directory is refused (do not start serving).
    """
    clock = clock or SystemClock()
    if plugin_dir is not None:
        result = install_plugin_dir_before_start(config, plugin_dir, clock)
        _log.info("plug-in CA directory %s: %s", plugin_dir, result.message)
    return open_ca(config, clock, init_if_missing=True)


class CaLifecycle:
    def __init__(self, ca: CaContext, options: LifecycleOptions) -> None:
        self.ca = ca
        self.options = options
        clock = ca.clock
        self.rotation = AuthorityRotation(
            repository=ca.repository,
            key_manager=ca.key_manager,
            clock=clock,
            config=ca.config,
            policy=options.rotation,
        )
        self.job = RotationJob(self.rotation, clock) if options.rotation.automatic else None
        self.crls = CrlPublisher(
            repository=ca.repository,
            key_manager=ca.key_manager,
            clock=clock,
            next_update=options.crl_next_update,
            skew=ca.config.skew,
        )
        self.revocations = RevocationIndex(ca.repository, clock, max_age=options.watch_interval)
        self.acks = InMemoryBundleAcks()
        self.watcher = AuthorityWatcher(
            repository=ca.repository,
            key_manager=ca.key_manager,
            issuer=ca.issuer,
            clock=clock,
            trust_domain=ca.config.trust_domain,
            listeners=[lambda _loaded: self._refresh_revocations()],
        )
        self.plugin = (
            None
            if options.plugin_dir is None
            else PluginCa(
                options.plugin_dir,
                repository=ca.repository,
                key_manager=ca.key_manager,
                clock=clock,
                trust_domain=ca.config.trust_domain,
                reload=self.watcher.poll,
                crl_publisher=self.crls,
                quiet=options.plugin_quiet,
            )
        )
        self._snapshot_path = options.ack_snapshot or ca.config.data_dir / ACK_SNAPSHOT_FILE
        self._next_rotation = 0.0
        self._written_counts: dict[str, int] = {}
        self._written_at = datetime.min.replace(tzinfo=UTC)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ for the server

    def current_crls(self) -> list[bytes]:
        """Every CRL (DER) agents should give Envoy and workloads: one per issuing CA."""
        return self.crls.current_crls()

    def crl_version(self) -> str:
        return self.crls.version

    def is_revoked(self, serial_hex: str) -> bool:
        return self.revocations.is_revoked(serial_hex)

    def is_certificate_revoked(self, cert: x509.Certificate) -> bool:
        """For the mTLS authenticator: revoked, or signed by a revoked intermediate."""
        return self.revocations.is_certificate_revoked(cert)

    @property
    def revocations_loaded_at(self) -> datetime | None:
        """When the revocation index was last loaded (None before :meth:`start`)."""
        return self.revocations.loaded_at

    def bundle_version(self) -> str:
        return bundle_version(self.ca.issuer.trust_bundle().x509_authorities)

    def record_bundle_ack(self, agent_id: str, version: str) -> None:
        self.acks.record(agent_id, version, self.ca.clock.now())

    # ------------------------------------------------------------------ the loop

    def _refresh_revocations(self) -> None:
        self.revocations.refresh()
        self.crls.refresh()

    def _guarded(self, name: str, task: Callable[[], object]) -> None:
        try:
            task()
        except CitadelError as exc:
            _log.warning("%s failed (will retry): %s", name, exc.message)
        except Exception:
            _log.exception("%s failed (will retry)", name)

    def tick(self) -> None:
        """One round of the loop (also callable directly, e.g. from tests)."""
        self._guarded("authority watch", self.watcher.poll)
        self._guarded("revocation refresh", self.revocations.refresh_if_stale)
        self._guarded("CRL refresh", self.crls.refresh)
        if self.job is not None and time.monotonic() >= self._next_rotation:
            self._next_rotation = (
                time.monotonic() + self.options.rotation.check_interval.total_seconds()
            )
            self._guarded("scheduled rotation", self.job.run_once)
            self._guarded("authority watch", self.watcher.poll)
        self._guarded("bundle acknowledgement snapshot", self._write_acks)

    def _write_acks(self) -> None:
        """Write the counts when they changed, and at least every ACK_REWRITE (so readers
        can tell a live snapshot from a stale one)."""
        now = self.ca.clock.now()
        snapshot = self.acks.snapshot(now)
        if snapshot is None:
            return
        counts = dict(snapshot.versions)
        if counts == self._written_counts and now < self._written_at + ACK_REWRITE:
            return
        write_snapshot(self._snapshot_path, snapshot, now)
        self._written_counts, self._written_at = counts, now

    def start(self) -> None:
        """Load the current state, apply the plug-in directory, start the loop."""
        self.watcher.prime()
        self._guarded("revocation refresh", self._refresh_revocations)
        if self.plugin is not None:
            self._guarded("plug-in CA directory", self.plugin.apply)
            self.plugin.start()
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.options.watch_interval.total_seconds()):
                self.tick()

        self._thread = threading.Thread(target=loop, name="citadel-ca-lifecycle", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self.plugin is not None:
            self.plugin.stop()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)


def start_ca_lifecycle(ca: CaContext, options: LifecycleOptions | None = None) -> CaLifecycle:
    """Build and start the lifecycle services of an open CA (see the module docstring)."""
    lifecycle = CaLifecycle(ca, options or LifecycleOptions())
    lifecycle.start()
    return lifecycle
