"""An explainable authorization decision."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from citadel.authz.errors import (
    AccessDeniedError,
    DefaultDenyError,
    DeniedByPolicyError,
    NoAllowMatchError,
)

__all__ = ["Decision", "Reason"]


class Reason(StrEnum):
    """Why the engine decided. Denial reasons equal the kinds of the matching errors."""

    ALLOWED_BY_POLICY = "allowed_by_policy"
    DEFAULT_ALLOW = "default_allow"
    DENIED_BY_POLICY = "denied_by_policy"
    NO_ALLOW_MATCH = "no_allow_match"
    DEFAULT_DENY = "default_deny"


_DENIAL_ERRORS: dict[str, type[AccessDeniedError]] = {
    Reason.DENIED_BY_POLICY: DeniedByPolicyError,
    Reason.NO_ALLOW_MATCH: NoAllowMatchError,
    Reason.DEFAULT_DENY: DefaultDenyError,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The outcome of one authorization check.

    Attributes:
        allowed: the verdict.
        reason: a :class:`Reason` value (or, from the enforcer, an authentication error kind).
        policy: the name of the policy whose rule decided, if any.
        origin: where that policy was loaded from (file path), if any.
        rule: the index of the deciding rule inside that policy, if any.
        audit: names of AUDIT policies whose rules matched.
        detail: free text for logs and the CLI (never a token or a PEM).
    """

    allowed: bool
    reason: str
    policy: str | None = None
    origin: str | None = None
    rule: int | None = None
    audit: tuple[str, ...] = ()
    detail: str = ""

    def explain(self) -> str:
        verdict = "allowed" if self.allowed else "denied"
        if self.policy is not None:
            where = f"policy {self.policy!r} rule {self.rule}"
            if self.origin:
                where += f" ({self.origin})"
        elif self.reason in (Reason.DEFAULT_ALLOW, Reason.DEFAULT_DENY):
            where = "no policy applies; default action"
        elif self.reason == Reason.NO_ALLOW_MATCH:
            where = "ALLOW policies apply but no rule matched"
        else:
            where = self.detail or self.reason
        text = f"{verdict}: {self.reason}: {where}"
        if self.audit:
            text += f"; audited by {', '.join(self.audit)}"
        return text

    def to_error(self) -> AccessDeniedError:
        """The error a denial raises at an enforcement point. Misuse: ValueError if allowed."""
        if self.allowed:
            raise ValueError("an allowed decision has no error")
        error_type = _DENIAL_ERRORS.get(self.reason, AccessDeniedError)
        return error_type(self.explain(), self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reason": str(self.reason),
            "policy": self.policy,
            "origin": self.origin,
            "rule": self.rule,
            "audit": list(self.audit),
            "detail": self.detail,
            "explanation": self.explain(),
        }
