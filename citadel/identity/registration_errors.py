"""Errors of workload selectors and registration entries.

IdentityError
├── InvalidSelectorError           "invalid_selector"            unknown kind, bad value
└── InvalidRegistrationEntryError  "invalid_registration_entry"  an entry breaks a rule
"""

from __future__ import annotations

from citadel.identity.errors import IdentityError

__all__ = ["InvalidRegistrationEntryError", "InvalidSelectorError"]


class InvalidSelectorError(IdentityError, ValueError):
    """A selector is malformed, of an unknown type or kind, or has an invalid value."""

    kind = "invalid_selector"


class InvalidRegistrationEntryError(IdentityError, ValueError):
    """A registration entry breaks a rule (no selectors, a trust-domain ID, a bad TTL...)."""

    kind = "invalid_registration_entry"
