"""Check manifest objects against the Kubernetes object models of the ``kubernetes`` package.

Deserializing through ``ApiClient`` validates required fields and types (the models are
pydantic), but silently drops unknown keys; :func:`unknown_fields` finds those by walking the
input against each model's ``attribute_map`` and ``openapi_types``.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client as k8s

__all__ = ["deserialize", "model_name", "unknown_fields"]

_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")
_OPTIONAL = re.compile(r"^Optional\[(.+)\]$")


def model_name(api_version: str, kind: str) -> str:
    """``apps/v1`` + ``Deployment`` -> ``V1Deployment``."""
    version = api_version.rsplit("/", 1)[-1]
    return f"{version[0].upper()}{version[1:]}{kind}"


def deserialize(data: dict[str, Any]) -> Any:
    """The model object for a manifest document (raises on missing/mistyped fields)."""
    name = model_name(data["apiVersion"], data["kind"])
    if not hasattr(k8s.models, name):
        raise LookupError(f"no model {name} for {data['apiVersion']} {data['kind']}")
    api_client = k8s.ApiClient()
    return api_client._ApiClient__deserialize(data, name)  # type: ignore[attr-defined]


def unknown_fields(data: Any, type_name: str, path: str = "") -> list[str]:
    """Paths of keys in ``data`` that the model ``type_name`` does not define."""
    optional = _OPTIONAL.match(type_name)
    if optional:
        type_name = optional.group(1)
    listed = _LIST.match(type_name)
    if listed:
        if not isinstance(data, list):
            return [f"{path} (expected a list)"]
        found: list[str] = []
        for index, item in enumerate(data):
            found.extend(unknown_fields(item, listed.group(1), f"{path}[{index}]"))
        return found
    mapped = _DICT.match(type_name)
    if mapped:
        if not isinstance(data, dict):
            return [f"{path} (expected a mapping)"]
        found = []
        for key, value in data.items():
            child = f"{path}.{key}" if path else key
            found.extend(unknown_fields(value, mapped.group(1), child))
        return found
    model = getattr(k8s.models, type_name, None)
    if model is None or not hasattr(model, "attribute_map"):
        return []  # a primitive, object (IntOrString, Quantity) or datetime
    if not isinstance(data, dict):
        return [f"{path} (expected an object for {type_name})"]
    by_json_key = {json_key: python for python, json_key in model.attribute_map.items()}
    found = []
    for key, value in data.items():
        python_name = by_json_key.get(key)
        if python_name is None:
            found.append(f"{path}.{key}" if path else key)
            continue
        child = f"{path}.{key}" if path else key
        found.extend(unknown_fields(value, model.openapi_types[python_name], child))
    return found
