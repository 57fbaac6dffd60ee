"""Errors of the certificate authority.

    CitadelError
    └── CaError                      ("ca_error")
        ├── CaNotReadyError          ("ca_not_ready")        damaged data, closed, expired signer
        │   └── CaNotInitialisedError("ca_not_initialised") no data dir, database or authorities
        ├── CaAlreadyInitialisedError("ca_already_initialised")
        ├── CaConfigError            ("invalid_ca_config")   a configuration value is unusable
        ├── RootImportError          ("invalid_root_import") an operator root cert/key is unusable
        ├── TtlError                 ("invalid_ttl")         lifetime negative or too long
        ├── SigningError             ("signing_failed")      signing produced no valid certificate
        └── KeyManagerError          ("key_manager")         a key cannot be created, read or used
            └── KeyNotFoundError     ("key_not_found")

The mapping of these kinds to gRPC status codes lives in :mod:`citadel.status`.
"""

from __future__ import annotations

from citadel.errors import CitadelError

__all__ = [
    "CaAlreadyInitialisedError",
    "CaConfigError",
    "CaError",
    "CaNotInitialisedError",
    "CaNotReadyError",
    "KeyManagerError",
    "KeyNotFoundError",
    "RootImportError",
    "SigningError",
    "TtlError",
]


class CaError(CitadelError):
    kind = "ca_error"


class CaNotReadyError(CaError):
    """The CA cannot sign: not initialised, its data is missing or damaged, or it is closed."""

    kind = "ca_not_ready"


class CaNotInitialisedError(CaNotReadyError):
    """There is no CA yet: run ``citadel init`` (or start ``citadel serve``)."""

    kind = "ca_not_initialised"


class CaAlreadyInitialisedError(CaError):
    """``init`` was asked to create authorities that already exist."""

    kind = "ca_already_initialised"


class CaConfigError(CaError, ValueError):
    """A configuration value cannot be used (for example a default TTL above the maximum)."""

    kind = "invalid_ca_config"


class RootImportError(CaError, ValueError):
    """An operator-supplied root certificate or key cannot be imported."""

    kind = "invalid_root_import"


class TtlError(CaError, ValueError):
    """A requested certificate lifetime is negative or above the maximum."""

    kind = "invalid_ttl"


class SigningError(CaError):
    """Signing failed or produced a certificate that breaks the X509-SVID rules."""

    kind = "signing_failed"


class KeyManagerError(CaError):
    """A key cannot be generated, stored, loaded (wrong passphrase, damaged file) or used."""

    kind = "key_manager"


class KeyNotFoundError(KeyManagerError):
    """No key with the requested id exists in the key manager."""

    kind = "key_not_found"
