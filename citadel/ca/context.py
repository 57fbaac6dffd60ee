"""Opening a CA: its data directory, database, key manager and issuer, as one context.

    with open_ca(CaConfig(data_dir=Path("data")), init_if_missing=True) as ca:
        chain = ca.issuer.issue(public_key, params)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType

from citadel.ca.bootstrap import (
    LoadedAuthorities,
    RootImport,
    initialise_authorities,
    is_initialised,
    load_authorities,
)
from citadel.ca.config import DATABASE_FILE, CaConfig
from citadel.ca.errors import (
    CaAlreadyInitialisedError,
    CaConfigError,
    CaNotInitialisedError,
    CaNotReadyError,
)
from citadel.ca.issuer import Issuer
from citadel.ca.keymanager.base import KeyManager
from citadel.ca.keymanager.encrypted_file import EncryptedFileKeyManager
from citadel.ca.passphrase import resolve_passphrase
from citadel.ca.private_files import ensure_private_dir
from citadel.identity.clock import Clock, SystemClock
from citadel.store.errors import StoreError
from citadel.store.repository import Repository

__all__ = ["CaContext", "init_ca", "open_ca", "open_repository"]

_log = logging.getLogger(__name__)
INIT_WAIT = timedelta(seconds=30)
INIT_POLL = timedelta(milliseconds=250)


@dataclass
class CaContext:
    """An open CA. Close it (or use it as a context manager) to flush and release."""

    config: CaConfig
    repository: Repository
    key_manager: KeyManager
    issuer: Issuer
    clock: Clock
    authorities: LoadedAuthorities

    def close(self) -> None:
        try:
            self.issuer.close()
        finally:
            self.repository.close()

    def __enter__(self) -> CaContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_data_dir(config: CaConfig) -> None:
    data_dir = config.data_dir
    if not data_dir.exists():
        raise CaNotInitialisedError(
            f"data directory {data_dir} does not exist; run 'citadel init' first"
        )
    if not data_dir.is_dir():
        raise CaNotReadyError(f"data directory {data_dir} is not a directory")
    if config.uses_default_database and not (data_dir / DATABASE_FILE).is_file():
        raise CaNotInitialisedError(
            f"data directory {data_dir} holds no CA database; run 'citadel init' first"
        )


def _prepare_data_dir(config: CaConfig) -> None:
    try:
        ensure_private_dir(config.data_dir)
    except OSError as exc:
        raise CaNotReadyError(
            f"data directory {config.data_dir} cannot be created: {exc.strerror or exc}"
        ) from exc


def open_repository(config: CaConfig, *, create: bool = False) -> Repository:
    """Open the CA database (migrating it to the latest schema).

    Args:
        create: create the data directory (0700) and a fresh database if missing; when
            False a missing data directory or SQLite file is an error.

    Raises:
        CaNotReadyError: the data directory or database is missing, damaged or unreachable.
    """
    if create:
        _prepare_data_dir(config)
    else:
        _check_data_dir(config)
    try:
        return Repository.open(config.database_url, auto_upgrade=True)
    except ValueError as exc:
        raise CaConfigError(f"the database URL cannot be used: {exc}") from exc
    except StoreError as exc:
        raise CaNotReadyError(f"the CA database cannot be opened: {exc.message}") from exc


def _open_key_manager(config: CaConfig, *, create: bool) -> EncryptedFileKeyManager:
    passphrase = resolve_passphrase(config, create=create)
    return EncryptedFileKeyManager(config.keys_dir, passphrase)


def _await_authorities(
    repository: Repository,
    key_manager: KeyManager,
    config: CaConfig,
    clock: Clock,
) -> LoadedAuthorities:
    deadline = time.monotonic() + INIT_WAIT.total_seconds()
    while True:
        try:
            return load_authorities(repository, key_manager, clock, config.trust_domain)
        except CaNotInitialisedError:
            if time.monotonic() >= deadline:
                raise
            _log.info("waiting for another process to finish initialising the CA")
            time.sleep(INIT_POLL.total_seconds())


def _context(
    config: CaConfig,
    repository: Repository,
    key_manager: KeyManager,
    authorities: LoadedAuthorities,
    clock: Clock,
) -> CaContext:
    issuer = Issuer(
        signer=authorities.signer,
        roots=authorities.roots,
        trust_domain=config.trust_domain,
        recorder=repository,
        clock=clock,
        default_ttl=config.default_ttl,
        max_ttl=config.max_ttl,
        skew=config.skew,
        max_batch=config.max_batch,
        commit_timeout=config.commit_timeout,
    )
    return CaContext(config, repository, key_manager, issuer, clock, authorities)


def open_ca(
    config: CaConfig,
    clock: Clock | None = None,
    *,
    init_if_missing: bool = False,
    root_import: RootImport | None = None,
) -> CaContext:
    """Open an initialised CA, or initialise it first when ``init_if_missing``.

    Raises:
        CaNotReadyError: not initialised (and not asked to), or its data is damaged.
        KeyManagerError: the key passphrase is missing or wrong.
        RootImportError, CaAlreadyInitialisedError: see :func:`init_ca`.
    """
    clock = clock or SystemClock()
    repository = open_repository(config, create=init_if_missing)
    try:
        key_manager = _open_key_manager(config, create=init_if_missing)
        if init_if_missing and not is_initialised(repository):
            try:
                authorities = initialise_authorities(
                    repository, key_manager, config, clock, root_import=root_import
                )
            except CaAlreadyInitialisedError:
                # another process initialised (or is initialising) it: load theirs
                authorities = _await_authorities(repository, key_manager, config, clock)
        else:
            authorities = load_authorities(repository, key_manager, clock, config.trust_domain)
        return _context(config, repository, key_manager, authorities, clock)
    except BaseException:
        repository.close()
        raise


def init_ca(
    config: CaConfig, clock: Clock | None = None, *, root_import: RootImport | None = None
) -> CaContext:
    """Initialise a new CA (create or import the root, create the intermediate) and open it.

    Raises:
        CaAlreadyInitialisedError: the database already holds authorities.
        RootImportError: the operator's root cannot be used.
    """
    clock = clock or SystemClock()
    repository = open_repository(config, create=True)
    try:
        key_manager = _open_key_manager(config, create=True)
        authorities = initialise_authorities(
            repository, key_manager, config, clock, root_import=root_import
        )
        return _context(config, repository, key_manager, authorities, clock)
    except BaseException:
        repository.close()
        raise
