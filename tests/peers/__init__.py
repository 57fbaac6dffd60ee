"""Real peers the tests start (PostgreSQL, Envoy, openssl, cfssl, SoftHSM).

A test that needs an absent peer skips with a reason that names it. In CI (``CI=true``)
an absent peer is a failure instead: CI installs every peer, so nothing may skip there.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["in_ci", "require_binary", "require_peer"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_peer(available: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) when a peer is missing."""
    if available:
        return
    if in_ci():
        pytest.fail(f"peer missing in CI: {reason}", pytrace=False)
    pytest.skip(f"peer missing: {reason}")


def require_binary(name: str, *, hint: str) -> str:
    """Return the absolute path of an executable, or skip/fail naming how to install it."""
    path = shutil.which(name)
    require_peer(path is not None, f"'{name}' not on PATH ({hint})")
    assert path is not None
    return path
