"""Credentials the agent presents to the CA's CSR API.

- :class:`TokenFileCredential`: a (projected) service-account token, re-read from its file
  on every call because the kubelet rotates it; sent as ``authorization: Bearer <token>``.
- :class:`JoinTokenCredential`: a one-time join token (``citadel-join-token`` header), for
  the first certificate only.
- :class:`CertificateFileCredential`: a provisioned certificate and key, used for mTLS.
- :class:`SvidCredential`: the agent's current certificate (mTLS renewal).

Token values are never logged; only the credential ``kind`` and file path are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from node_agent.errors import CredentialError

__all__ = [
    "CallAuth",
    "CertificateFileCredential",
    "Credential",
    "JoinTokenCredential",
    "SvidCredential",
    "TokenFileCredential",
    "check_token",
]

MAX_TOKEN_BYTES = 64 * 1024
AUTHORIZATION = "authorization"
JOIN_TOKEN_HEADER = "citadel-join-token"  # noqa: S105 - a header name


@dataclass(frozen=True, kw_only=True, slots=True)
class CallAuth:
    """What to attach to one CSR call: headers and/or a client certificate for mTLS."""

    kind: str
    metadata: tuple[tuple[str, str], ...] = ()
    client_chain_pem: bytes | None = None
    client_key_pem: bytes | None = field(default=None, repr=False)


class Credential(Protocol):
    @property
    def kind(self) -> str: ...

    def call_auth(self) -> CallAuth:
        """The auth for the next call.

        Raises:
            CredentialError: the credential cannot be read or is malformed.
        """
        ...


def check_token(raw: bytes, *, source: str) -> str:
    """Return the token in ``raw`` (surrounding whitespace removed) or raise.

    A token must be non-empty, at most 64 KiB, and printable ASCII without inner spaces:
    anything else cannot be a JWT or join token and would be rejected (or, worse, break
    the HTTP/2 header) further down.
    """
    if len(raw) > MAX_TOKEN_BYTES:
        raise CredentialError(f"{source} is larger than {MAX_TOKEN_BYTES} bytes; not a token")
    token = raw.strip()
    if not token:
        raise CredentialError(f"{source} is empty")
    if any(b < 0x21 or b > 0x7E for b in token):
        raise CredentialError(
            f"{source} does not hold a token (binary data, whitespace or non-ASCII characters)"
        )
    return token.decode("ascii")


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise CredentialError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


class TokenFileCredential:
    """A bearer token read from ``path`` on every call."""

    kind = "token_file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def call_auth(self) -> CallAuth:
        token = check_token(_read(self.path, "token file"), source=f"token file {self.path}")
        return CallAuth(kind=self.kind, metadata=((AUTHORIZATION, f"Bearer {token}"),))


class JoinTokenCredential:
    """A one-time join token (from a file, or given inline), in ``citadel-join-token``."""

    kind = "join_token"

    def __init__(self, *, path: Path | None = None, token: str | None = None) -> None:
        if (path is None) == (token is None):
            raise ValueError("give exactly one of path or token")
        self.path = path
        self._token = token

    def call_auth(self) -> CallAuth:
        if self.path is not None:
            raw = _read(self.path, "join token file")
            token = check_token(raw, source=f"join token file {self.path}")
        else:
            assert self._token is not None
            token = check_token(self._token.encode("utf-8"), source="join token")
        return CallAuth(kind=self.kind, metadata=((JOIN_TOKEN_HEADER, token),))


class CertificateFileCredential:
    """A provisioned certificate chain and key (PEM files), presented for mTLS."""

    kind = "certificate"

    def __init__(self, cert_path: Path, key_path: Path) -> None:
        self.cert_path = cert_path
        self.key_path = key_path

    def call_auth(self) -> CallAuth:
        try:
            chain = self.cert_path.read_bytes()
            key = self.key_path.read_bytes()
        except OSError as exc:
            raise CredentialError(
                f"cannot read the client certificate or key: {exc.strerror or exc}"
            ) from exc
        if b"-----BEGIN CERTIFICATE-----" not in chain:
            raise CredentialError(f"{self.cert_path} holds no PEM certificate")
        if b"PRIVATE KEY-----" not in key:
            raise CredentialError(f"{self.key_path} holds no PEM private key")
        return CallAuth(kind=self.kind, client_chain_pem=chain, client_key_pem=key)


class SvidCredential:
    """The agent's current certificate and key, held in memory (mTLS renewal)."""

    kind = "current_certificate"

    def __init__(self, chain_pem: bytes, key_pem: bytes) -> None:
        self._chain = chain_pem
        self._key = key_pem

    def call_auth(self) -> CallAuth:
        return CallAuth(kind=self.kind, client_chain_pem=self._chain, client_key_pem=self._key)
