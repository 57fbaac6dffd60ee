"""What ``GetBundle`` answers: the trust bundle, its CRLs, and two names that make polling cheap.

* ``bundle_version`` names the set of X.509 roots (the same value
  :func:`citadel.ca.rotation.acks.bundle_version` counts acknowledgements by);
* ``state`` names the whole answer (roots, JWT-SVID keys, CRLs). It leaves out the bundle's
  ``spiffe_sequence``, which is a per-process counter, so every worker and replica of one CA
  names the same content the same way and an agent's ``known_state`` stays valid whichever
  of them answers.

An agent polls with the ``state`` it holds; while that is still current the answer is
``unchanged`` and carries nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from citadel.ca.rotation.acks import bundle_version
from citadel.identity.bundle import TrustBundle
from citadel.server.agent_errors import AgentRequestError

__all__ = ["BundleAnswer", "bundle_answer", "checked_token"]

MAX_TOKEN_CHARS = 64
_TOKEN = re.compile(r"[0-9a-f]{1,64}")


@dataclass(frozen=True, kw_only=True, slots=True)
class BundleAnswer:
    bundle: TrustBundle
    crls: tuple[bytes, ...]
    bundle_version: str
    state: str


def bundle_answer(bundle: TrustBundle, crls: Sequence[bytes]) -> BundleAnswer:
    """The answer for ``bundle`` and ``crls``, with its two names."""
    version = bundle_version(bundle.x509_authorities)
    digest = hashlib.sha256()
    digest.update(version.encode("ascii"))
    jwks = json.dumps(bundle.jwks_dict(), sort_keys=True, separators=(",", ":"))
    digest.update(hashlib.sha256(jwks.encode("utf-8")).digest())
    for der in crls:
        digest.update(hashlib.sha256(der).digest())
    return BundleAnswer(
        bundle=bundle, crls=tuple(crls), bundle_version=version, state=digest.hexdigest()[:32]
    )


def checked_token(field: str, value: str) -> str:
    """``value`` when it is empty or a short lowercase hex name; the field's error otherwise.

    Raises:
        AgentRequestError: anything else (a version or state this CA never hands out).
    """
    if value and not _TOKEN.fullmatch(value):
        raise AgentRequestError(f"{field} must be at most {MAX_TOKEN_CHARS} lowercase hex digits")
    return value
