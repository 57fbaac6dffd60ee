"""Workload selectors: the attested facts a registration entry is matched against.

A selector is written ``type:kind:detail``; its *type* is the attestor family and its
*value* is ``kind:detail``, so ``unix:uid:1000`` has type ``unix`` and value ``uid:1000``.
Only known kinds are accepted, and each detail is checked, so that a typo in a
registration entry is an error instead of an entry that silently never matches:

=========================  =========================================================
``unix:uid:<n>``           effective uid of the caller (decimal, 0..4294967294)
``unix:gid:<n>``           effective gid
``unix:user:<name>``       user name of the uid
``unix:group:<name>``      group name of the gid
``unix:supplementary_gid:<n>``    one supplementary group id
``unix:supplementary_group:<name>``  one supplementary group name
``unix:path:<abs path>``   the caller's executable
``unix:sha256:<hex>``      SHA-256 of the caller's executable (64 lowercase hex digits)
``k8s:ns:<namespace>``     Kubernetes namespace (DNS-1123 label)
``k8s:sa:<name>``          Kubernetes service account (DNS-1123 subdomain)
``k8s:pod-uid:<uuid>``     Kubernetes pod UID
=========================  =========================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from citadel.identity.registration_errors import InvalidSelectorError

__all__ = ["KNOWN_SELECTORS", "MAX_SELECTOR_BYTES", "Selector", "parse_selectors"]

MAX_SELECTOR_BYTES = 4096 + 64
_MAX_ID = 2**32 - 2  # (uid_t)-1 is "no id"
_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.$-]{0,255}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _check_id(detail: str) -> str | None:
    if not detail.isascii() or not detail.isdigit():
        return "must be a decimal number"
    if len(detail) > 10 or int(detail) > _MAX_ID:
        return f"must be at most {_MAX_ID}"
    if detail != str(int(detail)):
        return "must not have leading zeros"
    return None


def _check_name(detail: str) -> str | None:
    if not _NAME.match(detail):
        return "must be 1-256 characters of letters, digits, '_', '.', '-' (and a final '$')"
    return None


def _check_path(detail: str) -> str | None:
    if not detail.startswith("/"):
        return "must be an absolute path"
    if "\0" in detail:
        return "must not contain NUL"
    if len(detail.encode("utf-8", "surrogatepass")) > 4096:
        return "must be at most 4096 bytes"
    return None


def _check_sha256(detail: str) -> str | None:
    if not _SHA256.match(detail):
        return "must be 64 lowercase hexadecimal digits"
    return None


def _check_dns_label(detail: str) -> str | None:
    if not _DNS_LABEL.match(detail):
        return "must be a DNS-1123 label (lowercase letters, digits, '-', at most 63)"
    return None


def _check_dns_subdomain(detail: str) -> str | None:
    if len(detail) > 253 or not all(_DNS_LABEL.match(p) for p in detail.split(".")):
        return "must be a DNS-1123 subdomain (lowercase labels separated by '.', at most 253)"
    return None


def _check_uuid(detail: str) -> str | None:
    if not _UUID.match(detail):
        return "must be a lowercase UUID"
    return None


_Check = Callable[[str], str | None]

KNOWN_SELECTORS: dict[str, dict[str, _Check]] = {
    "unix": {
        "uid": _check_id,
        "gid": _check_id,
        "user": _check_name,
        "group": _check_name,
        "supplementary_gid": _check_id,
        "supplementary_group": _check_name,
        "path": _check_path,
        "sha256": _check_sha256,
    },
    "k8s": {
        "ns": _check_dns_label,
        "sa": _check_dns_subdomain,
        "pod-uid": _check_uuid,
    },
}


@dataclass(frozen=True, slots=True, order=True)
class Selector:
    """One attested fact, such as ``unix:uid:1000`` (type ``unix``, value ``uid:1000``).

    Raises:
        InvalidSelectorError: unknown type or kind, or an invalid detail.
        TypeError: type or value is not a str.
    """

    type: str
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not isinstance(self.value, str):
            raise TypeError("selector type and value must be str")
        kinds = KNOWN_SELECTORS.get(self.type)
        if kinds is None:
            known = ", ".join(sorted(KNOWN_SELECTORS))
            raise InvalidSelectorError(
                f"unknown selector type {self.type[:32]!r} (known types: {known})"
            )
        kind, sep, detail = self.value.partition(":")
        if not sep:
            raise InvalidSelectorError(
                f"selector value {self.value[:64]!r} must look like kind:detail"
            )
        check = kinds.get(kind)
        if check is None:
            known = ", ".join(sorted(kinds))
            raise InvalidSelectorError(
                f"unknown {self.type} selector kind {kind[:32]!r} (known kinds: {known})"
            )
        if detail == "":
            raise InvalidSelectorError(f"selector {self.type}:{kind} has an empty value")
        problem = check(detail)
        if problem is not None:
            raise InvalidSelectorError(f"selector {self.type}:{kind} value {problem}")

    @classmethod
    def parse(cls, text: str) -> Selector:
        """Parse ``type:kind:detail`` (``unix:uid:1000``).

        Raises:
            InvalidSelectorError: malformed, oversized, unknown, or an invalid detail.
            TypeError: ``text`` is not a str.
        """
        if not isinstance(text, str):
            raise TypeError("selector must be a str")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_SELECTOR_BYTES:
            raise InvalidSelectorError(f"selector is longer than {MAX_SELECTOR_BYTES} bytes")
        selector_type, sep, value = text.partition(":")
        if not sep or not selector_type:
            raise InvalidSelectorError(
                f"selector {text[:64]!r} must look like type:kind:value (unix:uid:1000)"
            )
        return cls(selector_type, value)

    @classmethod
    def of(cls, selector_type: str, kind: str, detail: str | int) -> Selector:
        """Build ``type:kind:detail`` from its parts (``Selector.of("unix", "uid", 0)``)."""
        return cls(selector_type, f"{kind}:{detail}")

    @property
    def kind(self) -> str:
        return self.value.partition(":")[0]

    @property
    def detail(self) -> str:
        return self.value.partition(":")[2]

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


def parse_selectors(texts: Iterable[str]) -> frozenset[Selector]:
    """Parse several selectors; the first invalid one raises :class:`InvalidSelectorError`."""
    return frozenset(Selector.parse(t) for t in texts)
