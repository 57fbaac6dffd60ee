"""Installing a checked plug-in CA into the store and the key manager.

A root change is accepted only when the new ``root-cert.pem`` is a **superset** or a
**subset** of the current trust bundle: add the new root next to the old one first (agents
learn it), switch ``ca-cert.pem`` to one under the new root, and remove the old root in a
later change. Anything else would drop a root that workloads still rely on at the same time
as adding one they do not know yet, and is refused.

Writes happen in an order where every prefix is a valid state: new roots first, then the
chain above the CA certificate, then the CA certificate and its key (the switch), then the
removal of roots that left the bundle. Already-installed material is not installed again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from citadel.ca.authority_errors import PluginCaError
from citadel.ca.authority_records import authority_record, is_own, new_key_id
from citadel.ca.config import CaConfig
from citadel.ca.context import open_repository
from citadel.ca.errors import KeyManagerError
from citadel.ca.external_key import external_key_ref
from citadel.ca.keymanager.base import KeyManager
from citadel.ca.keymanager.encrypted_file import EncryptedFileKeyManager
from citadel.ca.passphrase import resolve_passphrase
from citadel.ca.plugin_dir import PluginCaMaterial, load_plugin_dir
from citadel.ca.rotation.lock import RotationLock
from citadel.identity.clock import Clock
from citadel.identity.pem import certificate_fingerprint
from citadel.store.records import AuthorityRecord
from citadel.store.repository import Repository

__all__ = ["PluginInstall", "install_plugin_ca", "install_plugin_dir_before_start"]

LOCK_TTL = timedelta(minutes=2)
BUNDLE_STATES = ("active", "prepared")


@dataclass(frozen=True, kw_only=True)
class PluginInstall:
    changed: bool
    signer_id: str
    added_roots: tuple[str, ...] = ()
    removed_roots: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        if not self.changed:
            return "the plug-in CA is already installed; nothing changed"
        parts = [f"signing with {self.signer_id}"]
        if self.added_roots:
            parts.append(f"added root(s) {', '.join(self.added_roots)}")
        if self.removed_roots:
            parts.append(f"removed root(s) {', '.join(self.removed_roots)}")
        return "installed the plug-in CA: " + "; ".join(parts)


def _check_root_change(current: set[str], new: set[str]) -> None:
    if current and not (new >= current or new <= current):
        raise PluginCaError(
            "root-cert.pem is neither a superset nor a subset of the current trust bundle: "
            "add the new root next to the current one first, and remove the old one in a "
            "later change (the CA keeps its current keys)"
        )


class _Installer:
    def __init__(self, repository: Repository, key_manager: KeyManager, now: datetime) -> None:
        self.repo = repository
        self.keys = key_manager
        self.now = now
        self.records = repository.list_authorities()
        self.by_print = {r.fingerprint_sha256: r for r in self.records}

    def activation_time(self) -> datetime:
        latest = max((r.activated_at for r in self.records if r.activated_at), default=self.now)
        return max(self.now, latest + timedelta(microseconds=1))

    def ensure_external(self, cert: x509.Certificate, kind: str, parent: str | None) -> str:
        existing = self.by_print.get(certificate_fingerprint(cert))
        if existing is not None:
            if existing.state not in BUNDLE_STATES:
                self.repo.set_authority_state(existing.id, "active", self.now)
            return existing.id
        record = self.repo.save_authority(
            authority_record(
                authority_id=new_key_id(f"plugin-{kind}", self.now),
                kind=kind,
                cert=cert,
                key_ref=external_key_ref(cert),
                parent_id=parent,
                state="active",
                now=self.now,
            )
        )
        self.by_print[record.fingerprint_sha256] = record
        return record.id

    def install_signer(self, material: PluginCaMaterial, parent_id: str) -> str:
        at = self.activation_time()
        existing = self.by_print.get(material.fingerprint)
        if existing is not None:
            if existing.state == "revoked":
                raise PluginCaError("ca-cert.pem was revoked in this CA; it cannot sign again")
            if existing.state == "active":  # draining: step out and back in to sign again
                self.repo.set_authority_state(existing.id, "retired", self.now)
            self.repo.set_authority_state(existing.id, "active", at)
            return existing.id
        key_id = new_key_id("plugin", self.now)
        self.keys.import_key(key_id, material.ca_key)
        try:
            self.repo.save_authority(
                authority_record(
                    authority_id=key_id,
                    kind="intermediate",
                    cert=material.ca_cert,
                    key_ref=key_id,
                    parent_id=parent_id,
                    state="active",
                    now=at,
                )
            )
        except BaseException:
            with contextlib.suppress(KeyManagerError):
                self.keys.delete_key(key_id)
            raise
        return key_id

    def remove_root(self, root: AuthorityRecord) -> None:
        below = {root.id}
        grew = True
        while grew:
            found = {r.id for r in self.records if r.parent_id in below} - below
            below |= found
            grew = bool(found)
        for record in self.records:
            if record.id != root.id and record.id in below and record.state in BUNDLE_STATES:
                self.repo.set_authority_state(record.id, "retired", self.now)
        self.repo.set_authority_state(root.id, "retired", self.now)


def _current_signer_print(records: list[AuthorityRecord]) -> str | None:
    own = [r for r in records if r.kind == "intermediate" and r.state == "active" and is_own(r)]
    if not own:
        return None
    newest = max(own, key=lambda r: (r.activated_at or r.created_at, r.created_at))
    return newest.fingerprint_sha256


def install_plugin_ca(
    material: PluginCaMaterial, *, repository: Repository, key_manager: KeyManager, clock: Clock
) -> PluginInstall:
    """Make ``material`` the CA's signer and trust bundle (see the module rules).

    Raises:
        PluginCaError: the root change is neither a superset nor a subset.
        RotationBusyError: a rotation step runs in another process.
    """
    with RotationLock(repository, clock, ttl=LOCK_TTL).held():
        installer = _Installer(repository, key_manager, clock.now())
        bundle = {
            r.fingerprint_sha256: r
            for r in installer.records
            if r.kind == "root" and r.state in BUNDLE_STATES
        }
        new_roots = {certificate_fingerprint(r): r for r in material.roots}
        _check_root_change(set(bundle), set(new_roots))
        if _current_signer_print(installer.records) == material.fingerprint and set(bundle) == set(
            new_roots
        ):
            signer = installer.by_print[material.fingerprint]
            return PluginInstall(changed=False, signer_id=signer.id)
        added = tuple(
            installer.ensure_external(root, "root", None)
            for fingerprint, root in new_roots.items()
            if fingerprint not in bundle
        )
        parent = installer.ensure_external(material.root, "root", None)
        for cert in reversed(material.path[1:-1]):
            parent = installer.ensure_external(cert, "intermediate", parent)
        signer_id = installer.install_signer(material, parent)
        removed = []
        for fingerprint, root in bundle.items():
            if fingerprint not in new_roots:
                installer.remove_root(root)
                removed.append(root.id)
        result = PluginInstall(
            changed=True, signer_id=signer_id, added_roots=added, removed_roots=tuple(removed)
        )
        repository.append_audit(
            "ca.plugin.install",
            signer_id,
            {
                "ca_cert_sha256": material.fingerprint,
                "roots": sorted(new_roots),
                "added_roots": list(added),
                "removed_roots": removed,
            },
            clock.now(),
        )
        return result


def install_plugin_dir_before_start(
    config: CaConfig, directory: Path, clock: Clock, *, key_manager: KeyManager | None = None
) -> PluginInstall:
    """For ``citadel serve --plugin-ca-dir``: install the directory *before* the CA opens,
    so a new data directory starts with the plug-in CA instead of a self-signed root.

    Raises:
        PluginCaError: the directory is incomplete or inconsistent (the server should not
            start), or conflicts with the installed bundle.
    """
    material = load_plugin_dir(directory, trust_domain=config.trust_domain, now=clock.now())
    repository = open_repository(config, create=True)
    try:
        keys = key_manager or EncryptedFileKeyManager(
            config.keys_dir, resolve_passphrase(config, create=True)
        )
        return install_plugin_ca(material, repository=repository, key_manager=keys, clock=clock)
    finally:
        repository.close()
