"""Leader election on a ``coordination.k8s.io/v1`` Lease, with optimistic concurrency.

Each round reads the Lease, asks :func:`~citadel.k8s.lease_decision.decide_lease` whether it
may write, and writes at the resourceVersion it read. A 409 means another replica wrote first:
read again and decide again (never crash); after a few lost races the round reports "not
leader" and the next round tries again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from citadel.identity.clock import Clock, utc
from citadel.k8s.api_errors import TRANSPORT_ERRORS, is_conflict, is_not_found, translate_api_error
from citadel.k8s.leader_elector import LeadershipObservation
from citadel.k8s.lease_decision import (
    LeaseAction,
    LeaseRecord,
    decide_lease,
    next_lease_record,
)

__all__ = ["DEFAULT_LEASE_NAME", "KubernetesLeaseElector", "MicroTime", "lease_record"]

_log = logging.getLogger(__name__)
DEFAULT_LEASE_NAME = "citadel-leader"
MAX_CONFLICT_RETRIES = 3
RELEASED_LEASE_DURATION = timedelta(seconds=1)


class MicroTime(datetime):
    """A datetime that serializes as Kubernetes ``MicroTime`` (always six fraction digits).

    The API server parses MicroTime with a fixed ``.000000`` layout, which ``isoformat()``
    breaks whenever the microseconds are zero.
    """

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return self.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    @classmethod
    def of(cls, value: datetime) -> MicroTime:
        value = utc(value)
        return cls(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=UTC,
        )


def lease_record(lease: k8s.V1Lease) -> LeaseRecord:
    """The decision's view of a Lease model."""
    spec = lease.spec or k8s.V1LeaseSpec()
    metadata = lease.metadata or k8s.V1ObjectMeta()
    duration = spec.lease_duration_seconds
    return LeaseRecord(
        holder=spec.holder_identity or None,
        lease_duration=timedelta(seconds=duration) if duration is not None else None,
        acquire_time=utc(spec.acquire_time) if spec.acquire_time is not None else None,
        renew_time=utc(spec.renew_time) if spec.renew_time is not None else None,
        transitions=spec.lease_transitions or 0,
        resource_version=metadata.resource_version,
    )


class KubernetesLeaseElector:
    """Implements :class:`~citadel.k8s.leader_elector.LeaderElector` on a Lease object.

    Args:
        coordination: the CoordinationV1Api.
        namespace: where the Lease lives (``citadel-system``).
        name: the Lease name (the deploy/ RBAC grants ``citadel-leader`` only).
        identity: this replica's holder identity (the pod name).
        lease_duration: how long a renewal holds off the others.
        clock: the time source for renewTime and for the decision.
        request_timeout: per API call; keep it well under the loop's renew deadline.
    """

    def __init__(
        self,
        coordination: k8s.CoordinationV1Api,
        *,
        namespace: str,
        identity: str,
        clock: Clock,
        name: str = DEFAULT_LEASE_NAME,
        lease_duration: timedelta = timedelta(seconds=15),
        request_timeout: timedelta = timedelta(seconds=5),
    ) -> None:
        if not identity:
            raise ValueError("holder identity must not be empty")
        if lease_duration < timedelta(seconds=1):
            raise ValueError("lease duration must be at least one second")
        self._api = coordination
        self._namespace = namespace
        self._name = name
        self._identity = identity
        self._clock = clock
        self._duration = lease_duration
        self._timeout = request_timeout.total_seconds()

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def lease_duration(self) -> timedelta:
        return self._duration

    def try_acquire_or_renew(self) -> LeadershipObservation:
        """One election round.

        Raises:
            KubeApiUnavailableError / KubeApiRejectedError: the API server failed or refused.
        """
        for _ in range(MAX_CONFLICT_RETRIES):
            record = self._read()
            now = self._clock.now()
            decision = decide_lease(record, self._identity, now)
            if decision.action is LeaseAction.WAIT:
                return LeadershipObservation(False, decision.holder, decision.valid_until)
            wanted = next_lease_record(record, self._identity, now, self._duration)
            if self._write(wanted, create=decision.action is LeaseAction.CREATE):
                if decision.action is LeaseAction.ACQUIRE or decision.action is LeaseAction.CREATE:
                    _log.info(
                        "acquired Lease %s/%s as %s", self._namespace, self._name, self._identity
                    )
                return LeadershipObservation(True, self._identity, now + self._duration)
            _log.debug("Lease %s/%s changed under us; reading again", self._namespace, self._name)
        return LeadershipObservation(False)

    def release(self) -> None:
        """Give the Lease up if I hold it (a successor need not wait for it to expire).

        Raises:
            KubeApiUnavailableError / KubeApiRejectedError: the API server failed or refused.
        """
        record = self._read()
        if record is None or record.holder != self._identity:
            return
        now = self._clock.now()
        released = LeaseRecord(
            holder=None,
            lease_duration=RELEASED_LEASE_DURATION,
            acquire_time=now,
            renew_time=now,
            transitions=record.transitions,
            resource_version=record.resource_version,
        )
        if self._write(released, create=False):
            _log.info("released Lease %s/%s", self._namespace, self._name)

    # --- API calls ------------------------------------------------------------------------
    def _read(self) -> LeaseRecord | None:
        try:
            lease = self._api.read_namespaced_lease(
                self._name, self._namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if is_not_found(exc):
                return None
            raise translate_api_error(exc, f"read Lease {self._where}") from exc
        except TRANSPORT_ERRORS as exc:
            raise translate_api_error(exc, f"read Lease {self._where}") from exc
        return lease_record(lease)

    def _write(self, record: LeaseRecord, *, create: bool) -> bool:
        """Create or replace; False when another writer won (409)."""
        body = self._body(record)
        try:
            if create:
                self._api.create_namespaced_lease(
                    self._namespace, body, _request_timeout=self._timeout
                )
            else:
                self._api.replace_namespaced_lease(
                    self._name, self._namespace, body, _request_timeout=self._timeout
                )
        except ApiException as exc:
            if is_conflict(exc) or (is_not_found(exc) and not create):
                return False
            verb = "create" if create else "update"
            raise translate_api_error(exc, f"{verb} Lease {self._where}") from exc
        except TRANSPORT_ERRORS as exc:
            verb = "create" if create else "update"
            raise translate_api_error(exc, f"{verb} Lease {self._where}") from exc
        return True

    def _body(self, record: LeaseRecord) -> k8s.V1Lease:
        duration = record.lease_duration or self._duration
        return k8s.V1Lease(
            api_version="coordination.k8s.io/v1",
            kind="Lease",
            metadata=k8s.V1ObjectMeta(
                name=self._name,
                namespace=self._namespace,
                resource_version=record.resource_version,
            ),
            spec=k8s.V1LeaseSpec(
                holder_identity=record.holder,
                lease_duration_seconds=max(1, int(duration.total_seconds())),
                acquire_time=MicroTime.of(record.acquire_time) if record.acquire_time else None,
                renew_time=MicroTime.of(record.renew_time) if record.renew_time else None,
                lease_transitions=record.transitions,
            ),
        )

    @property
    def _where(self) -> str:
        return f"{self._namespace}/{self._name}"
