"""Extra SDS resource names served from registration entries (as SPIRE's agent does).

* ``spiffe://td/path``: the X509-SVID of the agent's entry with that SPIFFE ID (a
  ``tls_certificate``); when several entries share the ID, the first in entry-id order.
* ``spiffe://td``: the trust bundle of that trust domain (a ``validation_context``).
* ``ALL``: every trust bundle the agent knows, concatenated.

The SDS catalog asks :meth:`EntrySdsResolver.ensure` before its own names; a True answer
means the name is served from the shared secret cache under that very name, and kept
current: every entry change, rotation or bundle update republishes (or removes) it.
"""

from __future__ import annotations

import logging
import threading

from cryptography import x509

from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.pem import certificates_to_pem
from citadel.identity.spiffe_id import SCHEME, SpiffeId
from node_agent.entries.entry_set import EntrySet
from node_agent.entries.svid_manager import EntrySvidManager
from node_agent.entries.sync import BundleHolder
from node_agent.errors import SecretValidationError, UnknownResourceError
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import load_trust_bundle_secret
from node_agent.secrets import Secret, TlsCertificateSecret

__all__ = ["ALL_BUNDLES", "EntrySdsResolver"]

_log = logging.getLogger(__name__)
ALL_BUNDLES = "ALL"
MAX_TRACKED_NAMES = 1024


class EntrySdsResolver:
    """Resolves and keeps publishing entry-backed SDS names. Thread-safe."""

    def __init__(
        self,
        *,
        cache: SecretCache,
        entries: EntrySet,
        svids: EntrySvidManager,
        bundles: BundleHolder,
    ) -> None:
        self._cache = cache
        self._entries = entries
        self._svids = svids
        self._bundles = bundles
        self._lock = threading.Lock()
        self._tracked: set[str] = set()
        self._unsubscribe = svids.subscribe(self.refresh)

    def close(self) -> None:
        self._unsubscribe()

    def ensure(self, name: str) -> bool:
        """True when ``name`` is served here (and now published when its secret exists);
        False when it is not an entry-backed name (the catalog's own names).

        Raises:
            UnknownResourceError: a SPIFFE ID or trust-domain ID this agent does not hold.
        """
        if name != ALL_BUNDLES:
            if not name.startswith(SCHEME):
                return False
            spiffe_id = self._parsed(name)
            if spiffe_id.is_trust_domain_id:
                bundle = self._bundles.bundle()
                if bundle is None or bundle.trust_domain != spiffe_id.trust_domain:
                    raise UnknownResourceError(f"this agent has no bundle for {name[:200]!r}")
            elif not self._has_entry(name):
                raise UnknownResourceError(
                    f"this agent holds no registration entry for {name[:200]!r}"
                )
        with self._lock:
            if name not in self._tracked and len(self._tracked) >= MAX_TRACKED_NAMES:
                raise UnknownResourceError("too many entry-backed SDS names are being served")
            self._tracked.add(name)
        secret = self._secret_for(name)
        if secret is not None:
            self._cache.publish(secret)
        return True

    def refresh(self) -> None:
        """Republish every tracked name; remove those that no longer resolve."""
        with self._lock:
            names = sorted(self._tracked)
        for name in names:
            secret = self._secret_for(name)
            if secret is not None:
                self._cache.publish(secret)
            elif name == ALL_BUNDLES or not self._has_entry(name):
                self._cache.remove(name)

    # --- building secrets ---------------------------------------------------------------
    @staticmethod
    def _parsed(name: str) -> SpiffeId:
        try:
            return SpiffeId.parse(name)
        except InvalidSpiffeIdError as exc:
            raise UnknownResourceError(
                f"resource {name[:200]!r} is not a SPIFFE ID: {exc.message}"
            ) from exc

    def _has_entry(self, name: str) -> bool:
        spiffe_id = self._parsed(name)
        return any(e.spiffe_id == spiffe_id for e in self._entries.entries())

    def _secret_for(self, name: str) -> Secret | None:
        bundle = self._bundles.bundle()
        if name == ALL_BUNDLES:
            roots = bundle.x509_authorities if bundle is not None else ()
            return self._bundle_secret(name, roots)
        spiffe_id = self._parsed(name)
        if spiffe_id.is_trust_domain_id:
            if bundle is None or bundle.trust_domain != spiffe_id.trust_domain:
                return None
            return self._bundle_secret(name, bundle.x509_authorities)
        entry = next((e for e in self._entries.entries() if e.spiffe_id == spiffe_id), None)
        svid = self._svids.current(entry.entry_id) if entry is not None else None
        if svid is None:
            return None
        return TlsCertificateSecret(
            name=name,
            cert_chain_pem=svid.chain_pem,
            private_key_pem=svid.key_pem,
            spiffe_id=str(spiffe_id),
            serial_hex=svid.serial_hex,
            not_before=svid.not_before,
            not_after=svid.not_after,
        )

    @staticmethod
    def _bundle_secret(name: str, roots: tuple[x509.Certificate, ...]) -> Secret | None:
        if not roots:
            return None
        try:
            return load_trust_bundle_secret(name, certificates_to_pem(roots).encode("ascii"))
        except SecretValidationError as exc:
            _log.warning("bundle for SDS name %s not served: %s", name, exc.message)
            return None
