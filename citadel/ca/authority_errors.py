"""Errors of authority lifecycle: rotation, plug-in and upstream CAs, revocation.

    CaError (citadel.ca.errors)
    └── AuthorityLifecycleError   ("authority_lifecycle")
        ├── RotationError          ("rotation_refused")     a rotation step cannot run now
        │   ├── NothingPreparedError   ("nothing_prepared")     activate without a prepared slot
        │   ├── AlreadyPreparedError   ("already_prepared")     prepare while a next one exists
        │   ├── PropagationPendingError("propagation_pending")  activate before the delay
        │   ├── RetireRefusedError     ("retire_refused")       old authority still has leaves
        │   ├── NothingToRetireError   ("nothing_to_retire")
        │   ├── NothingToRollBackError ("nothing_to_roll_back")
        │   ├── ExternalAuthorityError ("external_authority")   its key is held outside Citadel
        │   └── RotationBusyError      ("rotation_busy")        another process holds the lock
        ├── PluginCaError          ("invalid_plugin_ca")    a plug-in directory is refused
        ├── UpstreamImportError    ("invalid_upstream_import")
        │   └── NoPendingKeyError      ("no_pending_key")       the cert matches no pending key
        └── RevocationError        ("revocation_refused")
            ├── UnknownSerialError     ("unknown_serial")
            ├── AlreadyRevokedError    ("already_revoked")
            └── InvalidReasonError     ("invalid_revocation_reason")

Each failure leaves the store and the key manager as they were. The mapping of these kinds
to gRPC status codes, where they cross the wire, lives in :mod:`citadel.status`.
"""

from __future__ import annotations

from citadel.ca.errors import CaError

__all__ = [
    "AlreadyPreparedError",
    "AlreadyRevokedError",
    "AuthorityLifecycleError",
    "ExternalAuthorityError",
    "InvalidReasonError",
    "NoPendingKeyError",
    "NothingPreparedError",
    "NothingToRetireError",
    "NothingToRollBackError",
    "PluginCaError",
    "PropagationPendingError",
    "RetireRefusedError",
    "RevocationError",
    "RotationBusyError",
    "RotationError",
    "UnknownSerialError",
    "UpstreamImportError",
]


class AuthorityLifecycleError(CaError):
    kind = "authority_lifecycle"


class RotationError(AuthorityLifecycleError):
    """A rotation step is not possible in the current state; nothing was changed."""

    kind = "rotation_refused"


class NothingPreparedError(RotationError):
    kind = "nothing_prepared"


class AlreadyPreparedError(RotationError):
    kind = "already_prepared"


class PropagationPendingError(RotationError):
    kind = "propagation_pending"


class RetireRefusedError(RotationError):
    kind = "retire_refused"


class NothingToRetireError(RotationError):
    kind = "nothing_to_retire"


class NothingToRollBackError(RotationError):
    kind = "nothing_to_roll_back"


class ExternalAuthorityError(RotationError):
    """The authority that would have to sign is held outside Citadel (plug-in, upstream)."""

    kind = "external_authority"


class RotationBusyError(RotationError):
    kind = "rotation_busy"


class PluginCaError(AuthorityLifecycleError, ValueError):
    """A plug-in CA directory is incomplete or inconsistent; the CA keeps its keys."""

    kind = "invalid_plugin_ca"


class UpstreamImportError(AuthorityLifecycleError, ValueError):
    """An upstream-signed intermediate cannot be installed."""

    kind = "invalid_upstream_import"


class NoPendingKeyError(UpstreamImportError):
    kind = "no_pending_key"


class RevocationError(AuthorityLifecycleError):
    kind = "revocation_refused"


class UnknownSerialError(RevocationError):
    kind = "unknown_serial"


class AlreadyRevokedError(RevocationError):
    kind = "already_revoked"


class InvalidReasonError(RevocationError, ValueError):
    kind = "invalid_revocation_reason"
