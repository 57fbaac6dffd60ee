"""Build JWKS sources from policy specs, reusing them across policy reloads.

A reload that keeps the same ``jwksUri`` keeps its cached keys (no refetch storm, and no
window where a reload makes the keys unavailable).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from citadel.authz.jwk_set import JwkSet, JwksSource, StaticJwks
from citadel.authz.jwks_file import FileJwks
from citadel.authz.jwks_url import Fetcher, UrlJwks
from citadel.authz.policy import JwksSpec
from citadel.identity.clock import Clock

__all__ = ["JwksSourceFactory"]


class JwksSourceFactory:
    def __init__(self, *, clock: Clock, fetcher: Fetcher | None = None) -> None:
        self._clock = clock
        self._fetcher = fetcher
        self._lock = threading.Lock()
        self._sources: dict[JwksSpec, JwksSource] = {}

    def source(self, spec: JwksSpec) -> JwksSource:
        """The source for ``spec`` (the same object for an equal spec).

        Raises:
            JwksError: an inline JWKS is malformed (the loader validated it already).
        """
        with self._lock:
            found = self._sources.get(spec)
            if found is None:
                found = self._build(spec)
                self._sources[spec] = found
            return found

    def _build(self, spec: JwksSpec) -> JwksSource:
        if spec.inline is not None:
            return StaticJwks(JwkSet.parse(spec.inline, spec.format))
        if spec.file is not None:
            return FileJwks(spec.file, spec.format)
        assert spec.uri is not None
        return UrlJwks(
            spec.uri,
            clock=self._clock,
            fmt=spec.format,
            refresh_interval=spec.refresh_interval,
            ca_file=spec.ca_file,
            fetcher=self._fetcher,
        )

    def retain(self, specs: Iterable[JwksSpec]) -> None:
        """Forget sources whose spec is no longer used (called after a reload)."""
        keep = set(specs)
        with self._lock:
            for spec in [s for s in self._sources if s not in keep]:
                del self._sources[spec]
