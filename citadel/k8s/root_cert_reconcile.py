"""Desired vs observed root-certificate ConfigMaps -> the actions that close the gap (pure).

The controller keeps what it has observed through its watches in :class:`NamespaceState` and
:class:`ConfigMapState` records and asks :func:`plan_root_cert_actions` what to do. Nothing
here talks to the API server, so every case is a table test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_CONFIG_MAP_NAME",
    "DEFAULT_DATA_KEY",
    "DEFAULT_EXCLUDE_LABEL",
    "DEFAULT_MANAGED_LABEL",
    "ConfigMapState",
    "CreateRootCertConfigMap",
    "DesiredRootCert",
    "NamespaceState",
    "RootCertAction",
    "UpdateRootCertConfigMap",
    "config_map_is_current",
    "plan_namespace",
    "plan_root_cert_actions",
]

DEFAULT_CONFIG_MAP_NAME = "istio-ca-root-cert"
DEFAULT_DATA_KEY = "root-cert.pem"
# The label that marks our ConfigMaps; the ConfigMap watch selects on it.
DEFAULT_MANAGED_LABEL = ("citadel.io/root-cert", "true")
# Namespaces carrying this label (value "true") get no ConfigMap.
DEFAULT_EXCLUDE_LABEL = "citadel.io/exclude"


@dataclass(frozen=True, kw_only=True)
class DesiredRootCert:
    """What every included namespace should hold: ``data == {data_key: bundle_pem}``."""

    config_map_name: str = DEFAULT_CONFIG_MAP_NAME
    data_key: str = DEFAULT_DATA_KEY
    bundle_pem: str
    labels: Mapping[str, str] = field(default_factory=lambda: dict([DEFAULT_MANAGED_LABEL]))

    def __post_init__(self) -> None:
        if not self.bundle_pem.strip():
            raise ValueError("the root bundle PEM is empty")
        if not self.config_map_name or not self.data_key:
            raise ValueError("config map name and data key must not be empty")


@dataclass(frozen=True, kw_only=True)
class NamespaceState:
    name: str
    excluded: bool = False
    terminating: bool = False


@dataclass(frozen=True, kw_only=True)
class ConfigMapState:
    """The observed ConfigMap of one namespace (only the fields the plan looks at)."""

    namespace: str
    resource_version: str | None
    data: Mapping[str, str] = field(default_factory=dict)
    binary_data_keys: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateRootCertConfigMap:
    namespace: str


@dataclass(frozen=True)
class UpdateRootCertConfigMap:
    """Replace the ConfigMap (repair foreign content or publish a new bundle)."""

    namespace: str
    resource_version: str | None
    reason: str


RootCertAction = CreateRootCertConfigMap | UpdateRootCertConfigMap


def config_map_is_current(desired: DesiredRootCert, observed: ConfigMapState) -> str | None:
    """None when ``observed`` matches ``desired``, else a short reason why not."""
    if dict(observed.data) != {desired.data_key: desired.bundle_pem}:
        if observed.data.get(desired.data_key) is None:
            return "missing key"
        if observed.data.get(desired.data_key) != desired.bundle_pem:
            return "stale or foreign bundle"
        return "foreign keys"
    if observed.binary_data_keys:
        return "foreign binary data"
    for key, value in desired.labels.items():
        if observed.labels.get(key) != value:
            return "missing label"
    return None


def plan_namespace(
    desired: DesiredRootCert, namespace: NamespaceState, observed: ConfigMapState | None
) -> RootCertAction | None:
    """The action for one namespace, or None when nothing is to be done."""
    if namespace.excluded or namespace.terminating:
        # Excluded: we never delete (no delete permission); terminating: creates would fail.
        return None
    if observed is None:
        return CreateRootCertConfigMap(namespace.name)
    reason = config_map_is_current(desired, observed)
    if reason is None:
        return None
    return UpdateRootCertConfigMap(namespace.name, observed.resource_version, reason)


def plan_root_cert_actions(
    desired: DesiredRootCert | None,
    namespaces: Iterable[NamespaceState],
    config_maps: Mapping[str, ConfigMapState],
) -> list[RootCertAction]:
    """Every action needed so that each included namespace holds the desired ConfigMap.

    Args:
        desired: the bundle to publish; None (no bundle yet) plans nothing.
        namespaces: the observed namespaces.
        config_maps: observed root-cert ConfigMaps keyed by namespace.

    Returns:
        Actions in namespace-name order (deterministic).
    """
    if desired is None:
        return []
    actions: list[RootCertAction] = []
    for namespace in sorted(namespaces, key=lambda n: n.name):
        action = plan_namespace(desired, namespace, config_maps.get(namespace.name))
        if action is not None:
            actions.append(action)
    return actions
