"""RBAC grants exactly what the code calls: every rule is needed, every needed verb granted,
and the CA's own Secrets and Lease are granted only in its namespace, by name where possible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from citadel.k8s.cacerts_secret import CACERTS_SECRET_NAME
from citadel.k8s.lease_elector import DEFAULT_LEASE_NAME
from citadel.k8s.root_ca_secret import ROOT_CA_SECRET_NAME
from tests.unit.deploy.api_calls import Permission, needed_permissions, permissions_in_source
from tests.unit.deploy.conftest import ROOT, TREES, find

CODE = sorted((ROOT / "citadel" / "k8s").glob("*.py")) + sorted(
    (ROOT / "citadel" / "server").rglob("*.py")
)
# The CA's own objects live in its namespace: a ClusterRole must never grant them.
NAMESPACE_ONLY = {"secrets", "leases"}


def _rules(objects: list[dict[str, Any]], kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["metadata"]["name"], rule)
        for o in objects
        if o["kind"] == kind
        for rule in o.get("rules", [])
    ]


def _granted(rules: list[tuple[str, dict[str, Any]]]) -> set[Permission]:
    return {
        Permission(group, resource, verb)
        for _, rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_code_scan_finds_the_calls_it_must_find() -> None:
    """The scanner itself can fail: a new call shows up as a new permission."""
    source = (
        "self._core.delete_namespaced_secret(name, ns)\n"
        "ListWatcher(list_fn=self._core.list_namespaced_lease)\n"
    )
    assert permissions_in_source(source) == {
        Permission("", "secrets", "delete"),
        Permission("coordination.k8s.io", "leases", "list"),
        Permission("coordination.k8s.io", "leases", "watch"),
    }


def test_unmapped_api_methods_fail_loudly() -> None:
    with pytest.raises(LookupError, match="not mapped"):
        permissions_in_source("api.read_namespaced_pod('x', 'y')")


@pytest.mark.parametrize("tree", TREES)
def test_rbac_grants_exactly_what_the_code_calls(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    objects = rendered[tree]
    needed = needed_permissions(CODE)
    granted = _granted(_rules(objects, "ClusterRole")) | _granted(_rules(objects, "Role"))
    assert sorted(needed - granted) == [], "needed by the code but not granted"
    assert sorted(granted - needed) == [], "granted but never called by the code"


def test_no_wildcards_and_no_cluster_wide_secrets_or_leases(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["base"]
    for name, rule in _rules(objects, "ClusterRole") + _rules(objects, "Role"):
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], f"{name}: wildcard in {key}"
    for name, rule in _rules(objects, "ClusterRole"):
        assert not NAMESPACE_ONLY & set(rule["resources"]), f"ClusterRole {name}: {rule}"
    role = find(objects, "Role", "citadel")
    assert role["metadata"]["namespace"] == "citadel-system"


def test_secret_and_lease_rules_are_limited_to_the_names_the_code_uses(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    by_verb: dict[tuple[str, str], list[str] | None] = {}
    for _, rule in _rules(rendered["base"], "Role"):
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                by_verb[(resource, verb)] = rule.get("resourceNames")
    assert sorted(by_verb[("secrets", "get")] or []) == sorted(
        [CACERTS_SECRET_NAME, ROOT_CA_SECRET_NAME]
    )
    assert by_verb[("secrets", "update")] == [ROOT_CA_SECRET_NAME]
    assert by_verb[("leases", "get")] == [DEFAULT_LEASE_NAME]
    assert by_verb[("leases", "update")] == [DEFAULT_LEASE_NAME]
    # create cannot be limited by name; it is the only unnamed verb on these resources.
    unnamed = sorted(key for key, names in by_verb.items() if names is None)
    assert unnamed == [("leases", "create"), ("secrets", "create")]


def test_bindings_give_the_roles_to_the_ca_service_account_only(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["base"]
    bindings = [o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert bindings
    for binding in bindings:
        role_kind = "ClusterRole" if binding["kind"] == "ClusterRoleBinding" else "Role"
        assert binding["roleRef"]["kind"] == role_kind
        find(objects, role_kind, binding["roleRef"]["name"])
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "citadel", "namespace": "citadel-system"}
        ]


def test_the_scanned_code_exists() -> None:
    names = {Path(p).name for p in CODE}
    assert {"token_review.py", "root_cert_controller.py", "lease_elector.py"} <= names
