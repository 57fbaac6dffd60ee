"""Every manifest is a valid Kubernetes object: known fields only, required fields present,
references resolve, and the pods run locked down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.deploy.conftest import KUBERNETES, TREES, find
from tests.unit.deploy.k8s_models import deserialize, model_name, unknown_fields
from tests.unit.deploy.kustomize_render import RenderError, apply_json_patch, load_objects

KUSTOMIZE_KINDS = {"Kustomization"}


def manifest_documents() -> list[tuple[str, int, dict[str, Any]]]:
    documents = []
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        if path.name == "kustomization.yaml" or "patches" in path.parts:
            continue
        for index, document in enumerate(load_objects(path)):
            documents.append((str(path.relative_to(KUBERNETES)), index, document))
    return documents


DOCUMENTS = manifest_documents()


@pytest.mark.parametrize(
    "document", [d[2] for d in DOCUMENTS], ids=[f"{d[0]}#{d[1]}" for d in DOCUMENTS]
)
def test_manifest_deserializes_into_the_kubernetes_model_without_unknown_fields(
    document: dict[str, Any],
) -> None:
    assert {"apiVersion", "kind", "metadata"} <= set(document)
    deserialize(document)  # required fields and types
    assert unknown_fields(document, model_name(document["apiVersion"], document["kind"])) == []


def test_manifest_checks_catch_an_unknown_field_and_a_missing_required_one() -> None:
    deployment = find(
        [d[2] for d in DOCUMENTS if d[2]["kind"] == "Deployment"], "Deployment", "citadel"
    )
    typo = apply_json_patch(
        deployment,
        [{"op": "add", "path": "/spec/template/spec/containers/0/readinesProbe", "value": {}}],
    )
    assert unknown_fields(typo, "V1Deployment") == [
        "spec.template.spec.containers[0].readinesProbe"
    ]
    nameless = apply_json_patch(
        deployment, [{"op": "remove", "path": "/spec/template/spec/containers/0/name"}]
    )
    with pytest.raises(ValueError, match="name"):
        deserialize(nameless)


@pytest.mark.parametrize("tree", TREES)
def test_rendered_tree_objects_are_valid(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    for obj in rendered[tree]:
        deserialize(obj)
        assert unknown_fields(obj, model_name(obj["apiVersion"], obj["kind"])) == [], obj["kind"]


def test_every_kustomization_resource_and_patch_exists() -> None:
    import yaml

    for kustomization in KUBERNETES.rglob("kustomization.yaml"):
        data = yaml.safe_load(kustomization.read_text())
        for entry in data.get("resources", []):
            assert (kustomization.parent / entry).exists(), f"{kustomization}: {entry}"
        for patch in data.get("patches", []):
            assert (kustomization.parent / patch["path"]).is_file(), f"{kustomization}: {patch}"


def test_every_manifest_file_is_used_by_a_kustomization() -> None:
    import yaml

    used: set[Path] = set()
    for kustomization in KUBERNETES.rglob("kustomization.yaml"):
        data = yaml.safe_load(kustomization.read_text())
        for entry in [*data.get("resources", []), *(p["path"] for p in data.get("patches", []))]:
            used.add((kustomization.parent / entry).resolve())
    files = {p.resolve() for p in KUBERNETES.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert files - used == set()


def test_a_broken_patch_fails_the_render() -> None:
    with pytest.raises(RenderError):
        apply_json_patch({"spec": {}}, [{"op": "replace", "path": "/spec/replicas", "value": 1}])
    with pytest.raises(RenderError):
        apply_json_patch({"a": [1]}, [{"op": "test", "path": "/a/0", "value": 2}])


def test_base_runs_two_ca_replicas_with_a_disruption_budget(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    base = rendered["base"]
    assert find(base, "Deployment", "citadel")["spec"]["replicas"] == 2
    assert find(base, "PodDisruptionBudget", "citadel")["spec"]["minAvailable"] == 1
    assert {o["metadata"].get("namespace") for o in base if o["kind"] != "Namespace"} <= {
        "citadel-system",
        None,
    }


def test_dev_overlay_is_one_replica_on_sqlite_with_the_example_workload(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    dev = rendered["overlays/dev"]
    deployment = find(dev, "Deployment", "citadel")
    assert deployment["spec"]["replicas"] == 1
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "CITADEL_DB_URL" not in env
    assert "CITADEL_DATA_DIR" in env
    assert find(dev, "PodDisruptionBudget", "citadel")["spec"] == {
        "maxUnavailable": 1,
        "selector": find(rendered["base"], "PodDisruptionBudget", "citadel")["spec"]["selector"],
    }
    find(dev, "Secret", "citadel-key-passphrase")
    find(dev, "Deployment", "web")
    find(dev, "ConfigMap", "web-envoy-bootstrap")


def test_ha_overlay_spreads_three_replicas_over_nodes(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    deployment = find(rendered["overlays/ha"], "Deployment", "citadel")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        find(rendered["overlays/ha"], "PodDisruptionBudget", "citadel")["spec"]["minAvailable"] == 2
    )


def _pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in ("Deployment", "DaemonSet")
    ]


def test_selectors_match_their_pod_templates(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["overlays/dev"]
    templates = {}
    for obj in objects:
        if obj["kind"] in ("Deployment", "DaemonSet"):
            labels = obj["spec"]["template"]["metadata"]["labels"]
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= labels.items(), obj["metadata"]["name"]
            templates[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = labels
    for obj in objects:
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        elif obj["kind"] == "PodDisruptionBudget":
            selector = obj["spec"]["selector"]["matchLabels"]
        else:
            continue
        namespace = obj["metadata"]["namespace"]
        assert any(
            ns == namespace and selector.items() <= labels.items()
            for (ns, _), labels in templates.items()
        ), f"{obj['kind']}/{obj['metadata']['name']} selects no pods"


# Created outside the manifests: by the operator (database URL, passphrase, the CA's encrypted
# key files) or by the CA itself (the root ConfigMap it publishes into every namespace).
EXTERNAL = {
    ("Secret", "citadel-db"),
    ("Secret", "citadel-key-passphrase"),
    ("Secret", "citadel-ca-keys"),
    ("ConfigMap", "istio-ca-root-cert"),
}


@pytest.mark.parametrize("tree", TREES)
def test_pod_references_resolve(rendered: dict[str, list[dict[str, Any]]], tree: str) -> None:
    objects = rendered[tree]
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for where, spec in _pod_specs(objects):
        assert ("ServiceAccount", spec["serviceAccountName"]) in names, where
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                ref = ("ConfigMap", volume["configMap"]["name"])
            elif "secret" in volume:
                ref = ("Secret", volume["secret"]["secretName"])
            else:
                continue
            assert ref in names or ref in EXTERNAL, f"{where}: {ref}"
        containers = [*spec.get("initContainers", []), *spec["containers"]]
        mounts = {m["name"] for c in containers for m in c.get("volumeMounts", [])}
        assert mounts <= {v["name"] for v in spec.get("volumes", [])}, where
        for container in containers:
            for env in container.get("env", []):
                secret = env.get("valueFrom", {}).get("secretKeyRef")
                if secret:
                    assert ("Secret", secret["name"]) in names | EXTERNAL, where


def _probe_ports(container: dict[str, Any]) -> list[Any]:
    ports = []
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        handler = container.get(probe, {})
        for kind in ("httpGet", "tcpSocket", "grpc"):
            if kind in handler:
                ports.append(handler[kind]["port"])
    return ports


def test_probes_use_declared_ports(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for where, spec in _pod_specs(rendered["overlays/dev"]):
        for container in spec["containers"]:
            declared = {p.get("name") for p in container.get("ports", [])} | {
                p["containerPort"] for p in container.get("ports", [])
            }
            for port in _probe_ports(container):
                assert port in declared, f"{where}/{container['name']}: probe port {port}"


def test_ca_probes_target_the_grpc_and_health_ports(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    container = find(rendered["base"], "Deployment", "citadel")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["livenessProbe"]["tcpSocket"]["port"] == "grpc"
    assert container["readinessProbe"]["httpGet"]["port"] == "metrics"
    service = find(rendered["base"], "Service", "citadel")
    assert {(p["name"], p["port"]) for p in service["spec"]["ports"]} >= {
        ("grpc", 15012),
        ("metrics", 15014),
    }


# The only container allowed to run as root: it hands the hostPath socket dir to the agent.
ROOT_INIT_CONTAINERS = {("DaemonSet/citadel-agent", "socket-dir")}


@pytest.mark.parametrize("tree", TREES)
def test_containers_are_locked_down(rendered: dict[str, list[dict[str, Any]]], tree: str) -> None:
    for where, spec in _pod_specs(rendered[tree]):
        pod_context = spec.get("securityContext", {})
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            context = container.get("securityContext", {})
            label = f"{where}/{container['name']}"
            assert context.get("allowPrivilegeEscalation") is False, label
            assert context.get("readOnlyRootFilesystem") is True, label
            assert context.get("capabilities", {}).get("drop") == ["ALL"], label
            assert not context.get("privileged", False), label
            if (where, container["name"]) not in ROOT_INIT_CONTAINERS:
                assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, label
                assert context.get("runAsUser", pod_context.get("runAsUser", 1)) != 0, label
                assert not context.get("capabilities", {}).get("add"), label
            resources = container.get("resources", {})
            assert "memory" in resources.get("limits", {}), label
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), label


def test_agent_socket_directory_is_the_host_path(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    spec = find(rendered["base"], "DaemonSet", "citadel-agent")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "socket-dir")
    assert volume["hostPath"] == {"path": "/var/run/citadel", "type": "DirectoryOrCreate"}
    assert spec["automountServiceAccountToken"] is False
    token = next(v for v in spec["volumes"] if v["name"] == "token")
    assert token["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "istio-ca"
