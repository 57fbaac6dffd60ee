"""The lifetime rules of workload certificates, as pure functions."""

from __future__ import annotations

from datetime import datetime, timedelta

from citadel.ca.errors import CaNotReadyError, TtlError

__all__ = ["leaf_validity", "resolve_ttl"]


def resolve_ttl(
    requested: timedelta | None, *, default: timedelta, maximum: timedelta
) -> timedelta:
    """The TTL to issue for a request.

    None or zero means ``default``; anything above ``maximum`` is refused, not clamped.

    Raises:
        TtlError: ``requested`` is negative or longer than ``maximum``.
    """
    if requested is None or requested == timedelta(0):
        return default
    if not isinstance(requested, timedelta):
        raise TypeError("ttl must be a timedelta or None")
    if requested < timedelta(0):
        raise TtlError(f"requested TTL {_seconds(requested)} is negative")
    if requested > maximum:
        raise TtlError(
            f"requested TTL {_seconds(requested)} exceeds the maximum of {_seconds(maximum)}"
        )
    return requested


def leaf_validity(
    *,
    now: datetime,
    ttl: timedelta,
    skew: timedelta,
    signer_not_before: datetime,
    signer_not_after: datetime,
) -> tuple[datetime, datetime]:
    """(NotBefore, NotAfter) of a leaf: backdated by ``skew``, clamped to the signer's window.

    Raises:
        CaNotReadyError: the signer has expired, so the clamped window is empty.
    """
    not_before = max(now - skew, signer_not_before)
    not_after = min(now + ttl, signer_not_after)
    if not_after <= now:
        raise CaNotReadyError("the signing certificate has expired; rotate the intermediate")
    return not_before, not_after


def _seconds(value: timedelta) -> str:
    """``90d``, ``1h30m``, ``-45s``: the same notation the CLI accepts."""
    total = int(value.total_seconds())
    sign, total = ("-", -total) if total < 0 else ("", total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0s")
