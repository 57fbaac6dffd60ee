"""How a client proves who it is: a bearer token (Kubernetes or OIDC), a one-time join
token, or an existing SVID (mTLS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from citadel.client.errors import CredentialsError

__all__ = [
    "BearerToken",
    "BearerTokenFile",
    "ClientCertificate",
    "Credentials",
    "JoinToken",
]

_MAX_FILE_BYTES = 64 * 1024


class Credentials(Protocol):
    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata sent with the call."""
        ...

    def tls_identity(self) -> tuple[bytes, bytes] | None:
        """(private key PEM, certificate chain PEM) for mTLS, or None."""
        ...


def _read_small(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    if len(data) > _MAX_FILE_BYTES:
        raise CredentialsError(f"the {what} {path} is too large")
    if not data.strip():
        raise CredentialsError(f"the {what} {path} is empty")
    return data


@dataclass(frozen=True)
class BearerToken:
    token: str = field(repr=False)

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def tls_identity(self) -> tuple[bytes, bytes] | None:
        return None


@dataclass(frozen=True)
class BearerTokenFile:
    """A token file, read at each call (projected tokens rotate)."""

    path: Path

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        token = _read_small(self.path, "token file").decode("utf-8", "replace").strip()
        return BearerToken(token).call_metadata()

    def tls_identity(self) -> tuple[bytes, bytes] | None:
        return None


@dataclass(frozen=True)
class JoinToken:
    """A one-time join token from ``citadel token create``."""

    token: str = field(repr=False)

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer jt.{self.token.strip()}"),)

    def tls_identity(self) -> tuple[bytes, bytes] | None:
        return None


@dataclass(frozen=True)
class ClientCertificate:
    """An existing SVID: its chain (leaf first) and private key, both PEM."""

    chain_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)

    @classmethod
    def from_files(cls, cert_file: Path, key_file: Path) -> ClientCertificate:
        return cls(
            chain_pem=_read_small(cert_file, "certificate file"),
            key_pem=_read_small(key_file, "key file"),
        )

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def tls_identity(self) -> tuple[bytes, bytes] | None:
        return self.key_pem, self.chain_pem
