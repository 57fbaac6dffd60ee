"""Keeping a running issuer in step with the stored authorities.

Rotation steps run in any process (the CLI, another replica's schedule, the plug-in
watcher). :class:`AuthorityWatcher` polls a digest of the stored authorities (ids, states,
activation times); when it changes it reloads them with
:func:`citadel.ca.bootstrap.load_authorities` and hands the new signer and trust-bundle
roots to :meth:`citadel.ca.issuer.Issuer.update_authorities`, then tells its listeners (the
CRL publisher, the revocation index, a bundle push). A load that fails (a key not yet
readable, a damaged record) is logged and retried on the next poll; the issuer keeps its
current authorities meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Protocol

from cryptography import x509

from citadel.ca.authority import Authority
from citadel.ca.bootstrap import LoadedAuthorities, load_authorities
from citadel.ca.keymanager.base import KeyManager
from citadel.errors import CitadelError
from citadel.identity.clock import Clock
from citadel.identity.pem import certificate_fingerprint
from citadel.identity.spiffe_id import TrustDomain
from citadel.store.records import AuthorityRecord
from citadel.store.repository import Repository

__all__ = ["AuthorityListener", "AuthorityWatcher", "SignerSink", "authorities_version"]

_log = logging.getLogger(__name__)
DEFAULT_INTERVAL = timedelta(seconds=3)

AuthorityListener = Callable[[LoadedAuthorities], None]


class SignerSink(Protocol):
    """What the watcher updates: :class:`citadel.ca.issuer.Issuer` fits."""

    def update_authorities(self, signer: Authority, roots: Sequence[x509.Certificate]) -> None: ...


def authorities_version(records: Sequence[AuthorityRecord]) -> str:
    """A digest that changes whenever an X.509 authority is added or changes state."""
    lines = sorted(
        f"{r.id}|{r.state}|{r.activated_at.isoformat() if r.activated_at else '-'}"
        for r in records
        if r.kind in ("root", "intermediate")
    )
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


class AuthorityWatcher:
    """Polls the store and swaps the issuer's authorities when they change."""

    def __init__(
        self,
        *,
        repository: Repository,
        key_manager: KeyManager,
        issuer: SignerSink,
        clock: Clock,
        trust_domain: TrustDomain,
        interval: timedelta = DEFAULT_INTERVAL,
        listeners: Sequence[AuthorityListener] = (),
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError("interval must be positive")
        self._repository = repository
        self._key_manager = key_manager
        self._issuer = issuer
        self._clock = clock
        self._trust_domain = trust_domain
        self._interval = interval
        self._listeners = list(listeners)
        self._version: str | None = None
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def add_listener(self, listener: AuthorityListener) -> None:
        self._listeners.append(listener)

    def prime(self, loaded: LoadedAuthorities | None = None) -> None:
        """Remember the current store version (the issuer already has these authorities)."""
        with self._poll_lock:
            self._version = authorities_version(self._repository.list_authorities())
            if loaded is not None:
                self._notify(loaded)

    def poll(self) -> bool:
        """Reload if the stored authorities changed; True when the issuer was updated.

        Store and load failures are logged (``last_error``) and retried on the next poll.
        """
        with self._poll_lock:
            try:
                version = authorities_version(self._repository.list_authorities())
                if version == self._version:
                    return False
                loaded = load_authorities(
                    self._repository, self._key_manager, self._clock, self._trust_domain
                )
            except CitadelError as exc:
                if exc.message != self.last_error:
                    _log.warning("authorities not reloaded (will retry): %s", exc.message)
                self.last_error = exc.message
                return False
            self._issuer.update_authorities(loaded.signer, loaded.roots)
            self._version = version
            self.last_error = None
            _log.info(
                "authorities reloaded: signer serial %s, %d root(s) in the bundle (%s)",
                loaded.signer.serial_hex,
                len(loaded.roots),
                ", ".join(certificate_fingerprint(r)[:16] for r in loaded.roots),
            )
            self._notify(loaded)
            return True

    def _notify(self, loaded: LoadedAuthorities) -> None:
        for listener in self._listeners:
            try:
                listener(loaded)
            except Exception:
                _log.exception("an authority listener failed")

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self._interval.total_seconds()):
                try:
                    self.poll()
                except Exception:
                    _log.exception("authority watch failed; retrying")

        self._thread = threading.Thread(target=loop, name="citadel-authority-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
