"""The current policy of a directory, swapped atomically on reload.

A reload that fails validation is refused: the previous enforcer stays in place, the
failure is counted (``citadel_authz_policy_reload_failures_total``) and logged with the file
and field. The first load, by contrast, raises: a server must not start without policy.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from citadel.authz.enforcer import AccessRequest, AccessResult, Enforcer, EnforcerOptions
from citadel.authz.errors import JwksError, PolicyError
from citadel.authz.jwks_factory import JwksSourceFactory
from citadel.authz.metrics import POLICY_RELOAD_FAILURES, POLICY_RELOADS
from citadel.authz.policy_loader import load_policy_dir
from citadel.identity.clock import Clock

__all__ = ["PolicyStore"]

_log = logging.getLogger(__name__)


class PolicyStore:
    """Loads a policy directory and answers checks with its current enforcer.

    Raises (from the constructor):
        PolicyError: the directory's policy is invalid at startup.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        clock: Clock,
        options: EnforcerOptions | None = None,
        jwks_factory: JwksSourceFactory | None = None,
    ) -> None:
        self._directory = Path(directory)
        self._clock = clock
        self._options = options or EnforcerOptions()
        self._jwks = jwks_factory or JwksSourceFactory(clock=clock)
        self._reload_lock = threading.Lock()
        self._generation = 0
        self._last_error: PolicyError | None = None
        self._enforcer = self._build()

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def enforcer(self) -> Enforcer:
        return self._enforcer

    @property
    def generation(self) -> int:
        """How many policies have been applied (1 after the initial load)."""
        return self._generation

    @property
    def last_error(self) -> PolicyError | None:
        """Why the latest reload was refused (None after a successful one)."""
        return self._last_error

    def _build(self) -> Enforcer:
        policies = load_policy_dir(self._directory)
        try:
            enforcer = Enforcer(
                policies, clock=self._clock, options=self._options, jwks_factory=self._jwks
            )
        except JwksError as exc:
            raise PolicyError(str(self._directory), "jwks", exc.message) from exc
        self._jwks.retain(
            rule.jwks for ra in policies.request_authentication for rule in ra.jwt_rules
        )
        self._generation += 1
        _log.info(
            "authz policy loaded from %s: %d authorization, %d request authentication",
            self._directory,
            len(policies.authorization),
            len(policies.request_authentication),
        )
        return enforcer

    def reload(self) -> bool:
        """Reload the directory. Returns False (old policy kept) when the new one is invalid."""
        with self._reload_lock:
            try:
                enforcer = self._build()
            except PolicyError as exc:
                self._last_error = exc
                POLICY_RELOAD_FAILURES.inc()
                _log.error("authz policy reload refused, keeping the previous policy: %s", exc)
                return False
            self._enforcer = enforcer
            self._last_error = None
            POLICY_RELOADS.inc()
            return True

    def check(self, request: AccessRequest) -> AccessResult:
        return self._enforcer.check(request)
