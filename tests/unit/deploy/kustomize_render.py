"""A small kustomize renderer for the features deploy/kubernetes uses (no kustomize binary).

Supported kustomization keys: apiVersion, kind, namespace, resources (files or directories),
labels (metadata only), images, secretGenerator/configMapGenerator (literals, no hash
suffix), patches (RFC 6902 JSON patches from a file, selected by kind and name). Anything
else is an error, so a manifest can never rely on a feature these tests ignore.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = ["RenderError", "apply_json_patch", "load_objects", "render"]

SUPPORTED_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "labels",
    "images",
    "secretGenerator",
    "configMapGenerator",
    "patches",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


class RenderError(Exception):
    pass


def load_objects(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a manifest file."""
    with path.open(encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if d is not None]


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build directory`` would produce (for our feature subset)."""
    kustomization = _kustomization(directory)
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            objects.extend(render(target))
        elif target.is_file():
            objects.extend(load_objects(target))
        else:
            raise RenderError(f"{directory}: resource {entry} does not exist")
    objects.extend(_generated(kustomization))
    for patch in kustomization.get("patches", []):
        _apply_patch(directory, patch, objects)
    namespace = kustomization.get("namespace")
    for obj in objects:
        if namespace and obj.get("kind") not in CLUSTER_SCOPED:
            obj.setdefault("metadata", {})["namespace"] = namespace
        for label in kustomization.get("labels", []):
            if label.get("includeSelectors") or label.get("includeTemplates"):
                raise RenderError("labels with includeSelectors/includeTemplates unsupported")
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
        for image in kustomization.get("images", []):
            _set_image(obj, image)
    return objects


def _kustomization(directory: Path) -> dict[str, Any]:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise RenderError(f"{directory} has no kustomization.yaml")
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    unknown = set(data) - SUPPORTED_KEYS
    if unknown:
        raise RenderError(f"{path}: unsupported keys {sorted(unknown)}")
    if data.get("kind") != "Kustomization":
        raise RenderError(f"{path}: kind must be Kustomization")
    return dict(data)


def _generated(kustomization: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key, kind in (("secretGenerator", "Secret"), ("configMapGenerator", "ConfigMap")):
        for generator in kustomization.get(key, []):
            if not generator.get("options", {}).get("disableNameSuffixHash"):
                raise RenderError("generators must set options.disableNameSuffixHash")
            if set(generator) - {"name", "namespace", "literals", "options"}:
                raise RenderError(f"unsupported generator keys in {generator['name']}")
            values = dict(item.split("=", 1) for item in generator.get("literals", []))
            metadata = {"name": generator["name"]}
            if "namespace" in generator:
                metadata["namespace"] = generator["namespace"]
            obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": metadata}
            if kind == "Secret":
                obj["type"] = "Opaque"
                obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
            else:
                obj["data"] = values
            yield obj


def _apply_patch(directory: Path, patch: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    if set(patch) != {"target", "path"}:
        raise RenderError(f"{directory}: only target+path patches are supported")
    target = patch["target"]
    if set(target) - {"kind", "name"}:
        raise RenderError(f"{directory}: patch targets may only name kind and name")
    path = directory / patch["path"]
    if not path.is_file():
        raise RenderError(f"{directory}: patch {patch['path']} does not exist")
    with path.open(encoding="utf-8") as handle:
        operations = yaml.safe_load(handle)
    matched = [
        o
        for o in objects
        if o.get("kind") == target["kind"] and o["metadata"]["name"] == target["name"]
    ]
    if len(matched) != 1:
        raise RenderError(f"{directory}: patch target {target} matches {len(matched)} objects")
    index = objects.index(matched[0])
    objects[index] = apply_json_patch(matched[0], operations)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise RenderError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(document: Any, parts: list[str]) -> Any:
    for part in parts:
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def apply_json_patch(document: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add/remove/replace/test (enough for our overlays); errors are RenderError."""
    result = copy.deepcopy(document)
    for operation in operations:
        op, parts = operation["op"], _pointer(operation["path"])
        try:
            parent = _walk(result, parts[:-1])
            last = parts[-1]
            if op == "test":
                if _walk(result, parts) != operation["value"]:
                    raise RenderError(f"test failed at {operation['path']}")
            elif op == "remove":
                if isinstance(parent, list):
                    del parent[int(last)]
                else:
                    del parent[last]
            elif op in ("add", "replace"):
                value = copy.deepcopy(operation["value"])
                if isinstance(parent, list):
                    if op == "add":
                        parent.insert(len(parent) if last == "-" else int(last), value)
                    else:
                        parent[int(last)] = value
                else:
                    if op == "replace" and last not in parent:
                        raise RenderError(f"replace of missing {operation['path']}")
                    parent[last] = value
            else:
                raise RenderError(f"unsupported JSON patch op {op!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise RenderError(f"JSON patch {op} {operation['path']} failed: {exc!r}") from exc
    return result


def _set_image(obj: dict[str, Any], image: dict[str, str]) -> None:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        if container.get("image") == image["name"]:
            container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
