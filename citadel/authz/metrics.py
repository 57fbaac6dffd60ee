"""Prometheus metrics of the authz layer (registered once, in the default registry)."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter

__all__ = [
    "DECISIONS",
    "DENIALS",
    "POLICY_RELOADS",
    "POLICY_RELOAD_FAILURES",
    "record_decision",
]

DECISIONS = Counter(
    "citadel_authz_decisions",
    "Authorization decisions by result (allowed or denied).",
    ["result"],
)
DENIALS = Counter(
    "citadel_authz_denials",
    "Denied requests by reason (the error kind, e.g. token_expired, no_allow_match).",
    ["reason"],
)
POLICY_RELOADS = Counter(
    "citadel_authz_policy_reloads",
    "Policy directory reloads that were applied.",
)
POLICY_RELOAD_FAILURES = Counter(
    "citadel_authz_policy_reload_failures",
    "Policy directory reloads refused because the new policy was invalid (old policy kept).",
)


_ALLOWED = DECISIONS.labels(result="allowed")
_DENIED = DECISIONS.labels(result="denied")


@functools.lru_cache(maxsize=256)
def _denial(reason: str) -> Any:
    return DENIALS.labels(reason=reason)


def record_decision(allowed: bool, reason: str) -> None:
    """Count one decision (reasons are error kinds: a small, fixed set of labels)."""
    if allowed:
        _ALLOWED.inc()
        return
    _DENIED.inc()
    _denial(reason).inc()
