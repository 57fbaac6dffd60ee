"""Load and validate policy YAML. Every error names the file and the field.

A policy directory holds ``*.yaml``/``*.yml`` files (hidden names are skipped, so Kubernetes
ConfigMap mounts work); each file holds one or more documents::

    apiVersion: authz.citadel/v1
    kind: AuthorizationPolicy            # or RequestAuthentication
    metadata: {name: allow-frontend}
    spec:
      targets: ["spiffe://example.org/ns/prod/sa/backend"]   # optional
      action: ALLOW                      # ALLOW (default) | DENY | AUDIT
      rules:
      - from: [{source: {principals: ["spiffe://example.org/ns/prod/sa/frontend"]}}]
        to: [{operation: {grpcMethods: ["/pkg.Svc/Get"]}}]
        when: [{key: "request.auth.claims[groups]", values: ["admins"]}]

    kind: RequestAuthentication
    spec:
      required: false
      jwtRules:
      - issuer: https://issuer.example
        audiences: [citadel]
        jwksUri: https://issuer.example/jwks.json     # or jwksFile: / jwks: {keys: [...]}
        jwksFormat: jwks                              # or spiffe (keys with use jwt-svid)
        fromHeaders: [{name: authorization, prefix: "Bearer "}]
        outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]

Unknown fields, duplicate keys, YAML aliases and wrong types are errors: a typo must not
silently widen a policy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from citadel.authz.authorization_spec import parse_authorization_spec
from citadel.authz.errors import PolicyError
from citadel.authz.policy import AuthorizationPolicy, PolicySet, RequestAuthentication
from citadel.authz.request_authentication_spec import parse_request_authentication_spec
from citadel.authz.yaml_fields import Node, load_yaml_file, yaml_documents

__all__ = [
    "API_VERSION",
    "load_policy_dir",
    "load_policy_file",
    "parse_policy_text",
    "policy_files",
]

API_VERSION = "authz.citadel/v1"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _document(node: Node, base_dir: Path) -> AuthorizationPolicy | RequestAuthentication:
    fields = node.mapping(("apiVersion", "kind", "metadata", "spec"))
    for required in ("apiVersion", "kind", "metadata", "spec"):
        if required not in fields:
            node.fail(f"'{required}' is required")
    if fields["apiVersion"].value != API_VERSION:
        fields["apiVersion"].fail(f"must be {API_VERSION!r}")
    meta = fields["metadata"].mapping(("name", "labels", "annotations"))
    if "name" not in meta:
        fields["metadata"].fail("'name' is required")
    name = meta["name"].string()
    if not _NAME.match(name):
        meta["name"].fail("must be lowercase letters, digits, '-' and '.' (at most 253)")
    kind = fields["kind"].string()
    spec = fields["spec"]
    if kind == "AuthorizationPolicy":
        return parse_authorization_spec(name, node.origin, spec)
    if kind == "RequestAuthentication":
        return parse_request_authentication_spec(name, node.origin, spec, base_dir)
    fields["kind"].fail(f"{kind!r} is not AuthorizationPolicy or RequestAuthentication")


def _documents(
    documents: list[Any], origin: str, base_dir: Path
) -> list[AuthorizationPolicy | RequestAuthentication]:
    out: list[AuthorizationPolicy | RequestAuthentication] = []
    for index, value in enumerate(documents):
        if value is None:
            continue
        prefix = f"document[{index}]" if len(documents) > 1 else ""
        out.append(_document(Node(value, origin, prefix), base_dir))
    return out


def parse_policy_text(
    text: str, origin: str, base_dir: Path | None = None
) -> list[AuthorizationPolicy | RequestAuthentication]:
    """Parse every document of one YAML text. Relative file paths resolve from ``base_dir``.

    Raises:
        PolicyError: the message names ``origin``, the document and the field.
    """
    return _documents(yaml_documents(text, origin), origin, base_dir or Path.cwd())


def load_policy_file(path: str | Path) -> list[AuthorizationPolicy | RequestAuthentication]:
    """Read and parse one policy file.

    Raises:
        PolicyError: unreadable, too large, not UTF-8, or invalid.
    """
    path = Path(path)
    return _documents(load_yaml_file(path), str(path), path.parent)


def policy_files(directory: str | Path) -> list[Path]:
    """The policy files of a directory, sorted by name (hidden names skipped).

    Raises:
        PolicyError: the directory does not exist or cannot be listed.
    """
    directory = Path(directory)
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise PolicyError(
            str(directory), "", f"cannot list directory: {exc.strerror or exc}"
        ) from exc
    return [
        p
        for p in entries
        if not p.name.startswith(".") and p.suffix in (".yaml", ".yml") and p.is_file()
    ]


def load_policy_dir(directory: str | Path) -> PolicySet:
    """Load every policy file of a directory into one :class:`PolicySet`.

    Raises:
        PolicyError: any file is invalid, or two policies of one kind share a name.
    """
    authorization: list[AuthorizationPolicy] = []
    authentication: list[RequestAuthentication] = []
    seen: dict[tuple[str, str], str] = {}
    files = policy_files(directory)
    for path in files:
        for doc in load_policy_file(path):
            key = (type(doc).__name__, doc.name)
            if key in seen:
                raise PolicyError(
                    doc.origin,
                    "metadata.name",
                    f"{key[0]} {doc.name!r} is already defined in {seen[key]}",
                )
            seen[key] = doc.origin
            if isinstance(doc, AuthorizationPolicy):
                authorization.append(doc)
            else:
                authentication.append(doc)
    return PolicySet(
        authorization=tuple(authorization),
        request_authentication=tuple(authentication),
        files=tuple(str(p) for p in files),
    )
