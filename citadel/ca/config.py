"""The CA's configuration: where its data lives, its trust domain, key type and lifetimes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from citadel.ca.errors import CaConfigError
from citadel.identity.keys import KeyType
from citadel.identity.spiffe_id import TrustDomain

__all__ = [
    "DEFAULT_TRUST_DOMAIN",
    "KEY_PASSPHRASE_ENV",
    "CaConfig",
]

DEFAULT_TRUST_DOMAIN = TrustDomain("cluster.local")
KEY_PASSPHRASE_ENV = "CITADEL_KEY_PASSPHRASE"  # noqa: S105 (a variable name)
DATABASE_FILE = "citadel.db"
KEYS_DIR = "keys"
GENERATED_PASSPHRASE_FILE = "key-passphrase"  # noqa: S105 (a file name)


@dataclass(frozen=True, kw_only=True)
class CaConfig:
    """Everything :func:`citadel.ca.context.open_ca` needs.

    Attributes:
        data_dir: the CA's private directory (created mode 0700): keys, SQLite database.
        db_url: SQLAlchemy URL; None means ``sqlite:///<data_dir>/citadel.db``.
        key_passphrase: encrypts the key files; when None it is read from
            ``key_passphrase_file``, else from ``$CITADEL_KEY_PASSPHRASE``, else from a
            passphrase file generated in the data directory on first start.
        max_batch: the most issuance records written in one group-commit transaction.
        commit_timeout: how long a signing call waits for its audit record to commit.
    """

    data_dir: Path
    trust_domain: TrustDomain = DEFAULT_TRUST_DOMAIN
    key_type: KeyType = KeyType.EC_P256
    root_ttl: timedelta = timedelta(days=3650)
    intermediate_ttl: timedelta = timedelta(days=365)
    default_ttl: timedelta = timedelta(hours=24)
    max_ttl: timedelta = timedelta(days=90)
    skew: timedelta = timedelta(minutes=2)
    db_url: str | None = None
    key_passphrase: bytes | None = field(default=None, repr=False)
    key_passphrase_file: Path | None = None
    max_batch: int = 512
    commit_timeout: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if not isinstance(self.trust_domain, TrustDomain):
            raise TypeError("trust_domain must be a TrustDomain")
        try:
            object.__setattr__(self, "key_type", KeyType(self.key_type))
        except ValueError as exc:
            raise CaConfigError(f"unknown key type {self.key_type!r}") from exc
        for name in ("root_ttl", "intermediate_ttl", "default_ttl", "max_ttl", "commit_timeout"):
            value = getattr(self, name)
            if not isinstance(value, timedelta):
                raise TypeError(f"{name} must be a timedelta")
            if value <= timedelta(0):
                raise CaConfigError(f"{name} must be positive")
        if not isinstance(self.skew, timedelta) or self.skew < timedelta(0):
            raise CaConfigError("skew must be a non-negative timedelta")
        if self.default_ttl > self.max_ttl:
            raise CaConfigError("default_ttl must not exceed max_ttl")
        if self.intermediate_ttl > self.root_ttl:
            raise CaConfigError("intermediate_ttl must not exceed root_ttl")
        if self.max_batch < 1:
            raise CaConfigError("max_batch must be at least 1")

    @property
    def database_url(self) -> str:
        """The configured URL, or the SQLite file in the data directory."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.data_dir.resolve() / DATABASE_FILE}"

    @property
    def uses_default_database(self) -> bool:
        return not self.db_url

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / KEYS_DIR

    @property
    def generated_passphrase_file(self) -> Path:
        return self.data_dir / GENERATED_PASSPHRASE_FILE
