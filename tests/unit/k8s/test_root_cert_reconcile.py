"""The pure planner: desired root-cert ConfigMaps vs what the watches observed."""

from __future__ import annotations

import pytest

from citadel.k8s.root_cert_reconcile import (
    ConfigMapState,
    CreateRootCertConfigMap,
    DesiredRootCert,
    NamespaceState,
    RootCertAction,
    UpdateRootCertConfigMap,
    plan_root_cert_actions,
)

PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
OLD_PEM = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"
LABELS = {"citadel.io/root-cert": "true"}
DESIRED = DesiredRootCert(bundle_pem=PEM)


def cm(namespace: str, **overrides: object) -> ConfigMapState:
    fields: dict[str, object] = {
        "namespace": namespace,
        "resource_version": "7",
        "data": {"root-cert.pem": PEM},
        "labels": LABELS,
    }
    fields.update(overrides)
    return ConfigMapState(**fields)  # type: ignore[arg-type]


CASES: list[tuple[str, list[NamespaceState], dict[str, ConfigMapState], list[RootCertAction]]] = [
    (
        "new-namespace-gets-a-configmap",
        [NamespaceState(name="apps")],
        {},
        [CreateRootCertConfigMap("apps")],
    ),
    (
        "current-configmap-needs-nothing",
        [NamespaceState(name="apps")],
        {"apps": cm("apps")},
        [],
    ),
    (
        "stale-bundle-is-replaced",
        [NamespaceState(name="apps")],
        {"apps": cm("apps", data={"root-cert.pem": OLD_PEM})},
        [UpdateRootCertConfigMap("apps", "7", "stale or foreign bundle")],
    ),
    (
        "foreign-extra-key-is-repaired",
        [NamespaceState(name="apps")],
        {"apps": cm("apps", data={"root-cert.pem": PEM, "evil.pem": OLD_PEM})},
        [UpdateRootCertConfigMap("apps", "7", "foreign keys")],
    ),
    (
        "missing-data-key-is-repaired",
        [NamespaceState(name="apps")],
        {"apps": cm("apps", data={"other": PEM})},
        [UpdateRootCertConfigMap("apps", "7", "missing key")],
    ),
    (
        "foreign-binary-data-is-repaired",
        [NamespaceState(name="apps")],
        {"apps": cm("apps", binary_data_keys=frozenset({"x"}))},
        [UpdateRootCertConfigMap("apps", "7", "foreign binary data")],
    ),
    (
        "removed-label-is-restored",
        [NamespaceState(name="apps")],
        {"apps": cm("apps", labels={})},
        [UpdateRootCertConfigMap("apps", "7", "missing label")],
    ),
    (
        "excluded-namespace-is-left-alone",
        [NamespaceState(name="secret-ns", excluded=True)],
        {},
        [],
    ),
    (
        "excluded-namespace-keeps-an-old-configmap",
        [NamespaceState(name="secret-ns", excluded=True)],
        {"secret-ns": cm("secret-ns", data={"root-cert.pem": OLD_PEM})},
        [],
    ),
    (
        "terminating-namespace-is-skipped",
        [NamespaceState(name="dying", terminating=True)],
        {},
        [],
    ),
    (
        "configmap-of-a-vanished-namespace-is-ignored",
        [],
        {"gone": cm("gone", data={})},
        [],
    ),
    (
        "actions-come-in-namespace-order",
        [NamespaceState(name="b"), NamespaceState(name="a"), NamespaceState(name="c")],
        {"c": cm("c")},
        [CreateRootCertConfigMap("a"), CreateRootCertConfigMap("b")],
    ),
]


@pytest.mark.parametrize(
    ("namespaces", "config_maps", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_plan_root_cert_actions(
    namespaces: list[NamespaceState],
    config_maps: dict[str, ConfigMapState],
    expected: list[RootCertAction],
) -> None:
    assert plan_root_cert_actions(DESIRED, namespaces, config_maps) == expected


def test_without_a_bundle_nothing_is_planned() -> None:
    assert plan_root_cert_actions(None, [NamespaceState(name="apps")], {}) == []


def test_desired_root_cert_rejects_an_empty_bundle() -> None:
    with pytest.raises(ValueError, match="empty"):
        DesiredRootCert(bundle_pem="  \n")


def test_custom_names_are_honoured() -> None:
    desired = DesiredRootCert(
        bundle_pem=PEM, config_map_name="trust", data_key="ca.crt", labels={"x": "y"}
    )
    observed = ConfigMapState(
        namespace="apps", resource_version="1", data={"ca.crt": PEM}, labels={"x": "y"}
    )
    assert plan_root_cert_actions(desired, [NamespaceState(name="apps")], {"apps": observed}) == []
