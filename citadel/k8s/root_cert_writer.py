"""Apply one planned root-cert action to the API server, resolving write races.

Races are normal: another writer may edit the ConfigMap between our read and our write (409
on replace), or a foreign ConfigMap of the same name may exist that our label-selected watch
does not see (409 AlreadyExists on create). Both are resolved by reading the current object
and replacing it at its resourceVersion, a bounded number of times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from citadel.k8s.api_errors import TRANSPORT_ERRORS, is_conflict, is_not_found, translate_api_error
from citadel.k8s.errors import KubeApiUnavailableError
from citadel.k8s.root_cert_reconcile import (
    ConfigMapState,
    CreateRootCertConfigMap,
    DesiredRootCert,
    RootCertAction,
    UpdateRootCertConfigMap,
    config_map_is_current,
)

__all__ = ["RootCertWriteOutcome", "RootCertWriteResult", "RootCertWriter", "config_map_state"]

_log = logging.getLogger(__name__)
MAX_WRITE_ATTEMPTS = 4


class RootCertWriteOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class RootCertWriteResult:
    outcome: RootCertWriteOutcome
    state: ConfigMapState  # what the API server holds now


def config_map_state(config_map: k8s.V1ConfigMap, namespace: str = "") -> ConfigMapState:
    """The plan's view of a ConfigMap model."""
    metadata = config_map.metadata or k8s.V1ObjectMeta()
    return ConfigMapState(
        namespace=metadata.namespace or namespace,
        resource_version=metadata.resource_version,
        data=dict(config_map.data or {}),
        binary_data_keys=frozenset((config_map.binary_data or {}).keys()),
        labels=dict(metadata.labels or {}),
    )


class RootCertWriter:
    """Creates or replaces the root-cert ConfigMap of one namespace."""

    def __init__(self, core: k8s.CoreV1Api, *, request_timeout: timedelta) -> None:
        self._core = core
        self._timeout = request_timeout.total_seconds()

    def apply(self, desired: DesiredRootCert, action: RootCertAction) -> RootCertWriteResult:
        """Carry out ``action``.

        Raises:
            KubeApiUnavailableError: the API server failed (retry later).
            KubeApiRejectedError: the API server refused the write (for example 403).
        """
        namespace = action.namespace
        resource_version: str | None = None
        create = isinstance(action, CreateRootCertConfigMap)
        if isinstance(action, UpdateRootCertConfigMap):
            resource_version = action.resource_version
        for _ in range(MAX_WRITE_ATTEMPTS):
            try:
                if create:
                    created = self._core.create_namespaced_config_map(
                        namespace,
                        self._body(desired, namespace, None),
                        _request_timeout=self._timeout,
                    )
                    return RootCertWriteResult(
                        RootCertWriteOutcome.CREATED, config_map_state(created)
                    )
                replaced = self._core.replace_namespaced_config_map(
                    desired.config_map_name,
                    namespace,
                    self._body(desired, namespace, resource_version),
                    _request_timeout=self._timeout,
                )
                return RootCertWriteResult(RootCertWriteOutcome.UPDATED, config_map_state(replaced))
            except ApiException as exc:
                if not (is_conflict(exc) or (is_not_found(exc) and not create)):
                    raise self._error(exc, create, desired, namespace) from exc
            except TRANSPORT_ERRORS as exc:
                raise self._error(exc, create, desired, namespace) from exc
            # Lost a race: look at what is there now and decide again.
            current = self._read(desired, namespace)
            if current is None:
                create, resource_version = True, None
                continue
            if config_map_is_current(desired, current) is None:
                return RootCertWriteResult(RootCertWriteOutcome.UNCHANGED, current)
            create, resource_version = False, current.resource_version
        raise KubeApiUnavailableError(
            f"ConfigMap {namespace}/{desired.config_map_name} kept changing under us; will retry"
        )

    def _read(self, desired: DesiredRootCert, namespace: str) -> ConfigMapState | None:
        try:
            found = self._core.read_namespaced_config_map(
                desired.config_map_name, namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if is_not_found(exc):
                return None
            raise translate_api_error(
                exc, f"read ConfigMap {namespace}/{desired.config_map_name}"
            ) from exc
        except TRANSPORT_ERRORS as exc:
            raise translate_api_error(
                exc, f"read ConfigMap {namespace}/{desired.config_map_name}"
            ) from exc
        return config_map_state(found)

    @staticmethod
    def _body(
        desired: DesiredRootCert, namespace: str, resource_version: str | None
    ) -> k8s.V1ConfigMap:
        return k8s.V1ConfigMap(
            api_version="v1",
            kind="ConfigMap",
            metadata=k8s.V1ObjectMeta(
                name=desired.config_map_name,
                namespace=namespace,
                labels=dict(desired.labels),
                resource_version=resource_version,
            ),
            data={desired.data_key: desired.bundle_pem},
        )

    @staticmethod
    def _error(
        exc: BaseException, create: bool, desired: DesiredRootCert, namespace: str
    ) -> Exception:
        verb = "create" if create else "replace"
        return translate_api_error(exc, f"{verb} ConfigMap {namespace}/{desired.config_map_name}")
