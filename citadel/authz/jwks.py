"""JSON Web Key Sets and the sources a verifier takes its keys from (one import point).

Sources (all fail closed: with no keys ever loaded every lookup raises
:class:`JwksUnavailableError`):
    * :class:`StaticJwks` — a set given in memory (inline policy JWKS, tests);
    * :class:`FileJwks` — a file, re-read when it changes; a malformed new version is
      refused and the previous keys are kept (:mod:`citadel.authz.jwks_file`);
    * :class:`UrlJwks` — fetched over HTTP(S), cached and refreshed; after a failed fetch
      the cached keys are used until ``max_staleness`` (:mod:`citadel.authz.jwks_url`).

Parsing and the key type are in :mod:`citadel.authz.jwk_set`.
"""

from __future__ import annotations

from citadel.authz.jwk_set import (
    ALLOWED_ALGORITHMS,
    MAX_JWKS_BYTES,
    JwkKey,
    JwkSet,
    JwksSource,
    PublicKey,
    StaticJwks,
)
from citadel.authz.jwks_file import FileJwks
from citadel.authz.jwks_url import Fetcher, UrlJwks, fetch_url

__all__ = [
    "ALLOWED_ALGORITHMS",
    "MAX_JWKS_BYTES",
    "Fetcher",
    "FileJwks",
    "JwkKey",
    "JwkSet",
    "JwksSource",
    "PublicKey",
    "StaticJwks",
    "UrlJwks",
    "fetch_url",
]
