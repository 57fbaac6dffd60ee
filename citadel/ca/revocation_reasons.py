"""The RFC 5280 revocation reasons an operator may give (section 5.3.1)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cryptography import x509

from citadel.ca.authority_errors import InvalidReasonError

__all__ = ["REASONS", "parse_reason", "reason_flag"]

REASONS: Mapping[str, x509.ReasonFlags] = MappingProxyType(
    {
        "unspecified": x509.ReasonFlags.unspecified,
        "keyCompromise": x509.ReasonFlags.key_compromise,
        "cACompromise": x509.ReasonFlags.ca_compromise,
        "affiliationChanged": x509.ReasonFlags.affiliation_changed,
        "superseded": x509.ReasonFlags.superseded,
        "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    }
)
_BY_LOWER = {name.lower(): name for name in REASONS}


def parse_reason(text: str) -> str:
    """The canonical RFC 5280 name of ``text`` (case-insensitive).

    Raises:
        InvalidReasonError: not one of :data:`REASONS`.
    """
    name = _BY_LOWER.get(str(text).strip().lower())
    if name is None:
        raise InvalidReasonError(
            f"{str(text)[:40]!r} is not a revocation reason; use one of {', '.join(REASONS)}"
        )
    return name


def reason_flag(name: str | None) -> x509.ReasonFlags:
    """The CRL reason of a stored reason name; anything unknown counts as unspecified."""
    if name is None:
        return x509.ReasonFlags.unspecified
    canonical = _BY_LOWER.get(name.strip().lower())
    return REASONS[canonical] if canonical else x509.ReasonFlags.unspecified
