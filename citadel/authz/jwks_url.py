"""JWKS fetched over HTTP(S): cached, refreshed, failing closed.

Keys are refreshed after ``refresh_interval`` (and early, at most every
``min_refetch_interval``, when an unknown ``kid`` shows up, e.g. after the issuer rotated).
After a failed fetch the cached keys stay in use until ``max_staleness``, and the next try
waits ``retry_interval``; with no keys ever fetched every lookup raises
:class:`JwksUnavailableError`. Concurrent callers share one fetch.
"""

from __future__ import annotations

import logging
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from citadel.authz.errors import JwksError, JwksUnavailableError
from citadel.authz.jwk_set import MAX_JWKS_BYTES, JwkKey, JwkSet
from citadel.authz.policy import JwksFormat
from citadel.identity.clock import Clock

__all__ = ["Fetcher", "UrlJwks", "fetch_url"]

_log = logging.getLogger(__name__)


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, "redirect to a non-HTTP URL", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_url(url: str, timeout: float, ca_file: str | None = None) -> bytes:
    """GET ``url`` (http or https only), returning at most :data:`MAX_JWKS_BYTES`.

    Raises:
        JwksError: bad scheme, HTTP error, network error or oversized body.
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise JwksError("JWKS URL must be http or https")
    context = ssl.create_default_context(cafile=ca_file)
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), _SafeRedirects()
    )
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_JWKS_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise JwksError(f"JWKS fetch from {url} failed: {exc}") from exc
    if len(body) > MAX_JWKS_BYTES:
        raise JwksError(f"JWKS from {url} is larger than {MAX_JWKS_BYTES} bytes")
    return body


Fetcher = Callable[[str, float], bytes]


@dataclass(frozen=True, slots=True)
class _Cached:
    keys: JwkSet
    fetched_at: datetime


class UrlJwks:
    """Keys fetched from a URL and cached (see the module docstring for the rules)."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock,
        fmt: JwksFormat = JwksFormat.JWKS,
        refresh_interval: timedelta = timedelta(minutes=5),
        retry_interval: timedelta = timedelta(seconds=5),
        min_refetch_interval: timedelta = timedelta(seconds=30),
        max_staleness: timedelta = timedelta(hours=24),
        timeout: timedelta = timedelta(seconds=5),
        ca_file: str | None = None,
        fetcher: Fetcher | None = None,
    ) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("JWKS URL must be http or https")
        self._url = url
        self._clock = clock
        self._fmt = fmt
        self._refresh_interval = refresh_interval
        self._retry_interval = retry_interval
        self._min_refetch = min_refetch_interval
        self._max_staleness = max_staleness
        self._timeout = timeout.total_seconds()
        self._fetch: Fetcher = fetcher or (lambda u, t: fetch_url(u, t, ca_file))
        self._lock = threading.Lock()
        self._cached: _Cached | None = None
        self._last_attempt: datetime | None = None
        self._failed_at: datetime | None = None

    @property
    def url(self) -> str:
        return self._url

    def refresh(self) -> bool:
        """Fetch now (e.g. from a background loop). Returns True when new keys were stored."""
        with self._lock:
            return self._refresh_locked(self._clock.now())

    def _refresh_locked(self, now: datetime) -> bool:
        self._last_attempt = now
        try:
            keys = JwkSet.parse(self._fetch(self._url, self._timeout), self._fmt)
        except JwksError as exc:
            self._failed_at = now
            _log.warning("JWKS refresh from %s failed: %s", self._url, exc.message)
            return False
        self._cached = _Cached(keys, now)
        self._failed_at = None
        _log.info("JWKS fetched from %s (%d keys)", self._url, len(keys.keys))
        return True

    def _maybe_refresh(self, now: datetime, *, force: bool) -> None:
        cached = self._cached
        due = cached is None or force or now - cached.fetched_at >= self._refresh_interval
        if not due:
            return
        if self._failed_at is not None and now - self._failed_at < self._retry_interval:
            return
        if (
            force
            and self._last_attempt is not None
            and now - self._last_attempt < self._min_refetch
        ):
            return
        # Without keys every caller waits for the fetch; with keys one refreshes, others go on.
        if not self._lock.acquire(blocking=cached is None):
            return
        try:
            failed_at = self._failed_at
            if self._cached is not cached or (
                failed_at is not None and now - failed_at < self._retry_interval
            ):
                return  # another caller refreshed (or just failed) while we waited
            self._refresh_locked(now)
        finally:
            self._lock.release()

    def key(self, kid: str) -> JwkKey:
        now = self._clock.now()
        self._maybe_refresh(now, force=False)
        cached = self._cached
        if cached is None:
            raise JwksUnavailableError(f"JWKS from {self._url} has never been fetched")
        if now - cached.fetched_at > self._max_staleness:
            raise JwksUnavailableError(f"JWKS from {self._url} is stale")
        if kid not in cached.keys.keys:
            self._maybe_refresh(now, force=True)
            cached = self._cached or cached
        return cached.keys.get(kid)
