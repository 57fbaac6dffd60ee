"""Which Kubernetes API permissions the code needs, read from its source.

Every call of a ``kubernetes`` API method (``create_token_review``, ``list_namespace``,
``read_namespaced_secret``, ...) is mapped to an RBAC (apiGroup, resource, verb). A ``list_*``
method handed to the list+watch loop (``list_fn=...``) or to ``Watch().stream(...)`` needs
``list`` and ``watch``. An API method missing from :data:`KINDS` fails loudly: add it there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s

__all__ = ["KINDS", "Permission", "needed_permissions", "permissions_in_source"]

# API method singular -> (apiGroup, resource)
KINDS = {
    "namespace": ("", "namespaces"),
    "config_map": ("", "configmaps"),
    "secret": ("", "secrets"),
    "lease": ("coordination.k8s.io", "leases"),
    "token_review": ("authentication.k8s.io", "tokenreviews"),
}
VERBS = {
    "create": "create",
    "read": "get",
    "list": "list",
    "replace": "update",
    "patch": "patch",
    "delete": "delete",
}
_CALL = re.compile(r"\.((?:create|read|list|replace|patch|delete)_[a-z0-9_]+)\s*\(")
_WATCHED = re.compile(r"(?:list_fn\s*=|\.stream\(\s*)[\w.]*?\.(list_[a-z0-9_]+)")
_API_METHODS = frozenset(
    name
    for api in (getattr(k8s, n) for n in dir(k8s) if n.endswith("Api") and n != "ApiClient")
    for name in dir(api)
    if not name.startswith("_")
)


@dataclass(frozen=True, order=True)
class Permission:
    api_group: str
    resource: str
    verb: str


def _permission(method: str) -> Permission:
    verb_word, _, rest = method.partition("_")
    kind = rest.removeprefix("namespaced_").removesuffix("_for_all_namespaces")
    kind = kind.removesuffix("_with_http_info").removesuffix("_without_preload_content")
    if kind not in KINDS:
        raise LookupError(f"API method {method} is not mapped: add {kind!r} to KINDS")
    group, resource = KINDS[kind]
    return Permission(group, resource, VERBS[verb_word])


def permissions_in_source(text: str) -> set[Permission]:
    found: set[Permission] = set()
    for method in _CALL.findall(text):
        if method in _API_METHODS:
            found.add(_permission(method))
    for method in _WATCHED.findall(text):
        if method in _API_METHODS:
            permission = _permission(method)  # the loop lists, then watches
            found.add(permission)
            found.add(Permission(permission.api_group, permission.resource, "watch"))
    return found


def needed_permissions(paths: Iterable[Path]) -> set[Permission]:
    found: set[Permission] = set()
    for path in paths:
        found |= permissions_in_source(path.read_text(encoding="utf-8"))
    return found
