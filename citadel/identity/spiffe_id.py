"""SPIFFE IDs and trust domains, validated exactly as the SPIFFE-ID standard says.

Rules (SPIFFE-ID.md):
    * the scheme is ``spiffe://`` (lowercase);
    * the trust domain is non-empty, at most 255 bytes, and only ``[a-z0-9._-]`` — so no
      uppercase, port, userinfo or percent-encoding;
    * path segments are non-empty, only ``[a-zA-Z0-9._-]``, never ``.`` or ``..``, and the
      path has no trailing ``/``;
    * no query or fragment; the whole ID is at most 2048 bytes.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from citadel.identity.errors import InvalidSpiffeIdError, InvalidTrustDomainError

__all__ = ["MAX_SPIFFE_ID_BYTES", "MAX_TRUST_DOMAIN_BYTES", "SCHEME", "SpiffeId", "TrustDomain"]

SCHEME = "spiffe://"
MAX_SPIFFE_ID_BYTES = 2048
MAX_TRUST_DOMAIN_BYTES = 255

_TD_CHARS = frozenset(string.ascii_lowercase + string.digits + ".-_")
_PATH_CHARS = frozenset(string.ascii_letters + string.digits + ".-_")


def _check_trust_domain(name: str) -> None:
    if not name:
        raise InvalidTrustDomainError("trust domain is missing")
    # surrogatepass: a lone surrogate must reach the charset rule, not crash the length rule.
    if len(name.encode("utf-8", errors="surrogatepass")) > MAX_TRUST_DOMAIN_BYTES:
        raise InvalidTrustDomainError(f"trust domain is longer than {MAX_TRUST_DOMAIN_BYTES} bytes")
    if "@" in name:  # before the charset loop, so "user:pw@td" is not reported as a port
        raise InvalidTrustDomainError("trust domain must not carry userinfo")
    for ch in name:
        if ch not in _TD_CHARS:
            if ch in string.ascii_uppercase:
                raise InvalidTrustDomainError("trust domain must be lowercase")
            if ch == ":":
                raise InvalidTrustDomainError("trust domain must not carry a port")
            if ch == "%":
                raise InvalidTrustDomainError("trust domain must not be percent-encoded")
            raise InvalidTrustDomainError(
                "trust domain may contain only lowercase letters, digits, '.', '-' and '_'"
            )


def _check_path(path: str) -> None:
    if path == "":
        return
    if not path.startswith("/"):
        raise InvalidSpiffeIdError("path must start with '/'")
    segments = path[1:].split("/")
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "":
            if index == last:
                raise InvalidSpiffeIdError("path must not end with '/'")
            raise InvalidSpiffeIdError("path must not contain empty segments")
        if segment in (".", ".."):
            raise InvalidSpiffeIdError("path must not contain '.' or '..' segments")
        for ch in segment:
            if ch not in _PATH_CHARS:
                if ch == "?":
                    raise InvalidSpiffeIdError("SPIFFE ID must not contain a query")
                if ch == "#":
                    raise InvalidSpiffeIdError("SPIFFE ID must not contain a fragment")
                if ch == "%":
                    raise InvalidSpiffeIdError("path must not be percent-encoded")
                raise InvalidSpiffeIdError(
                    "path segments may contain only letters, digits, '.', '-' and '_'"
                )


@dataclass(frozen=True, slots=True)
class TrustDomain:
    """A SPIFFE trust domain name such as ``example.org``."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError("trust domain name must be a str")
        _check_trust_domain(self.name)

    @classmethod
    def parse(cls, value: str) -> TrustDomain:
        """Parse ``example.org`` or ``spiffe://example.org`` into a trust domain."""
        if not isinstance(value, str):
            raise TypeError("trust domain must be a str")
        if value.startswith(SCHEME):
            spiffe_id = SpiffeId.parse(value)
            if spiffe_id.path:
                raise InvalidTrustDomainError("trust domain ID must not carry a path")
            return spiffe_id.trust_domain
        if "://" in value:
            raise InvalidTrustDomainError("scheme must be 'spiffe'")
        return cls(value)

    @property
    def id(self) -> SpiffeId:
        """The trust domain's own SPIFFE ID, ``spiffe://<name>`` (used as a bundle key)."""
        return SpiffeId(self, "")

    def spiffe_id(self, path: str) -> SpiffeId:
        """Build an ID in this trust domain from a path such as ``/ns/a/sa/b``."""
        return SpiffeId(self, path)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A parsed, valid SPIFFE ID. Build it with :meth:`parse` or :meth:`TrustDomain.spiffe_id`."""

    trust_domain: TrustDomain
    path: str

    def __post_init__(self) -> None:
        if not isinstance(self.trust_domain, TrustDomain):
            raise TypeError("trust_domain must be a TrustDomain")
        if not isinstance(self.path, str):
            raise TypeError("path must be a str")
        _check_path(self.path)
        if len(str(self).encode("utf-8", errors="surrogatepass")) > MAX_SPIFFE_ID_BYTES:
            raise InvalidSpiffeIdError(f"SPIFFE ID is longer than {MAX_SPIFFE_ID_BYTES} bytes")

    @classmethod
    def parse(cls, value: str) -> SpiffeId:
        """Parse a SPIFFE ID string.

        Raises:
            InvalidSpiffeIdError: the string breaks a rule; the message says which.
            TypeError: ``value`` is not a string.
        """
        if not isinstance(value, str):
            raise TypeError("SPIFFE ID must be a str")
        if value == "":
            raise InvalidSpiffeIdError("SPIFFE ID is empty")
        if len(value.encode("utf-8", errors="surrogatepass")) > MAX_SPIFFE_ID_BYTES:
            raise InvalidSpiffeIdError(f"SPIFFE ID is longer than {MAX_SPIFFE_ID_BYTES} bytes")
        if not value.startswith(SCHEME):
            raise InvalidSpiffeIdError("scheme is missing or is not 'spiffe://'")
        rest = value[len(SCHEME) :]
        slash = rest.find("/")
        td_part, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
        for marker, rule in (("?", "a query"), ("#", "a fragment")):
            if marker in td_part:
                raise InvalidSpiffeIdError(f"SPIFFE ID must not contain {rule}")
        try:
            trust_domain = TrustDomain(td_part)
        except InvalidTrustDomainError as exc:
            raise InvalidSpiffeIdError(exc.message) from exc
        return cls(trust_domain, path)

    @property
    def is_trust_domain_id(self) -> bool:
        return self.path == ""

    def is_member_of(self, trust_domain: TrustDomain) -> bool:
        return self.trust_domain == trust_domain

    def segments(self) -> tuple[str, ...]:
        return tuple(self.path[1:].split("/")) if self.path else ()

    def __str__(self) -> str:
        return f"{SCHEME}{self.trust_domain.name}{self.path}"
