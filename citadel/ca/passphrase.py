"""Where the key-file passphrase comes from.

In order: the explicit config value, the configured passphrase file,
``$CITADEL_KEY_PASSPHRASE``, and last a passphrase file generated in the data directory
(mode 0600) on first start, so that a development CA works with no setup. Production
deployments should set one of the first three and keep it away from the key files.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from citadel.ca.config import KEY_PASSPHRASE_ENV, CaConfig
from citadel.ca.errors import KeyManagerError
from citadel.ca.private_files import write_private_file

__all__ = ["read_passphrase_file", "resolve_passphrase"]

_log = logging.getLogger(__name__)
MAX_PASSPHRASE_BYTES = 4096


def read_passphrase_file(path: Path) -> bytes:
    """The first line of ``path`` (without its line ending).

    Raises:
        KeyManagerError: missing, unreadable, empty or oversized.
    """
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_PASSPHRASE_BYTES + 1)
    except OSError as exc:
        raise KeyManagerError(
            f"passphrase file {path} cannot be read: {exc.strerror or exc}"
        ) from exc
    if len(data) > MAX_PASSPHRASE_BYTES:
        raise KeyManagerError(f"passphrase file {path} is too large")
    passphrase = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not passphrase:
        raise KeyManagerError(f"passphrase file {path} is empty")
    return passphrase


def resolve_passphrase(
    config: CaConfig, *, environ: Mapping[str, str] | None = None, create: bool = False
) -> bytes:
    """The passphrase that protects the CA's key files.

    Args:
        create: generate and store a passphrase in the data directory when none is
            configured (first start); otherwise its absence is an error.

    Raises:
        KeyManagerError: no passphrase is configured, or the configured one is unusable.
    """
    env = os.environ if environ is None else environ
    if config.key_passphrase is not None:
        if not config.key_passphrase:
            raise KeyManagerError("key passphrase is empty")
        return config.key_passphrase
    if config.key_passphrase_file is not None:
        return read_passphrase_file(config.key_passphrase_file)
    from_env = env.get(KEY_PASSPHRASE_ENV)
    if from_env:
        return from_env.encode("utf-8")
    generated = config.generated_passphrase_file
    if generated.exists():
        return read_passphrase_file(generated)
    if not create:
        raise KeyManagerError(
            f"no key passphrase is configured: set {KEY_PASSPHRASE_ENV} or a passphrase file"
        )
    passphrase = secrets.token_urlsafe(32).encode("ascii")
    try:
        write_private_file(generated, passphrase + b"\n")
    except FileExistsError:
        return read_passphrase_file(generated)  # another process generated it just now
    except OSError as exc:
        raise KeyManagerError(
            f"passphrase file {generated} cannot be written: {exc.strerror or exc}"
        ) from exc
    _log.warning(
        "no key passphrase configured; generated one in %s (set %s in production)",
        generated,
        KEY_PASSPHRASE_ENV,
    )
    return passphrase
