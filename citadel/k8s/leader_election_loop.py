"""Drive a :class:`~citadel.k8s.leader_elector.LeaderElector` and announce leadership changes.

Every ``retry_period`` (with jitter) the loop runs one election round. A leader whose rounds
fail (API server or database down) keeps leading only until ``renew_deadline`` after its last
successful renewal, which is shorter than the lease duration: it steps down *before* another
replica may take over. On stop it steps down first (listeners stop their jobs) and only then
releases the lease.

:meth:`tick` is the whole logic of one round and is what the tests drive with a manual clock.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from citadel.identity.clock import Clock
from citadel.k8s.leader_elector import LeaderElector

__all__ = ["LeaderElectionLoop", "LeadershipListener"]

_log = logging.getLogger(__name__)

# Called with True when this replica becomes leader and False when it stops being leader.
LeadershipListener = Callable[[bool], None]


class LeaderElectionLoop:
    def __init__(
        self,
        elector: LeaderElector,
        *,
        clock: Clock,
        renew_deadline: timedelta = timedelta(seconds=10),
        retry_period: timedelta = timedelta(seconds=2),
        listeners: Sequence[LeadershipListener] = (),
        jitter: float = 0.2,
        unit_random: Callable[[], float] = random.random,
    ) -> None:
        if not timedelta(0) < retry_period < renew_deadline < elector.lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")
        if not 0.0 <= jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")
        self._elector = elector
        self._clock = clock
        self._renew_deadline = renew_deadline
        self._retry_period = retry_period
        self._listeners = list(listeners)
        self._jitter = jitter
        self._random = unit_random
        self._leader = False
        self._last_renewed: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0
        self.transitions = 0

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def identity(self) -> str:
        return self._elector.identity

    def add_listener(self, listener: LeadershipListener) -> None:
        self._listeners.append(listener)

    # --- one round ------------------------------------------------------------------------
    def tick(self) -> bool:
        """Run one election round; returns whether this replica leads afterwards."""
        now = self._clock.now()
        try:
            observation = self._elector.try_acquire_or_renew()
        except Exception as exc:  # backend trouble must not kill the loop
            self.failures += 1
            detail = getattr(exc, "message", type(exc).__name__)
            if self._leader and self._deadline_passed(self._clock.now()):
                _log.warning("could not renew leadership before the deadline (%s)", detail)
                self._set_leader(False)
            else:
                _log.warning("leader election round failed (%s)", detail)
            return self._leader
        if observation.is_leader:
            self._last_renewed = now
            if not self._leader:
                self._set_leader(True)
        elif self._leader:
            _log.warning("leadership lost to %s", observation.holder or "another replica")
            self._set_leader(False)
        return self._leader

    def _deadline_passed(self, now: datetime) -> bool:
        return self._last_renewed is None or now - self._last_renewed >= self._renew_deadline

    def _set_leader(self, leading: bool) -> None:
        self._leader = leading
        self.transitions += 1
        if not leading:
            self._last_renewed = None
        _log.info("%s %s leader", self._elector.identity, "became" if leading else "is no longer")
        for listener in self._listeners:
            try:
                listener(leading)
            except Exception:
                _log.exception("leadership listener failed")

    def step_down(self, *, release: bool = True) -> None:
        """Stop leading now (listeners first), then release the lease if asked."""
        if self._leader:
            self._set_leader(False)
        if release:
            try:
                self._elector.release()
            except Exception as exc:  # the lease expires on its own anyway
                _log.warning(
                    "could not release the lease (%s)", getattr(exc, "message", type(exc).__name__)
                )

    # --- thread ---------------------------------------------------------------------------
    def run(self) -> None:
        """Rounds until :meth:`stop`; then step down and release."""
        try:
            while not self._stop.is_set():
                self.tick()
                spread = 1.0 + self._jitter * (2.0 * self._random() - 1.0)
                self._stop.wait(self._retry_period.total_seconds() * spread)
        finally:
            self.step_down(release=True)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, name="citadel-leader-election", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: timedelta = timedelta(seconds=10)) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout.total_seconds())
