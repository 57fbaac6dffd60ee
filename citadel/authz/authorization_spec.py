"""Parse and validate the ``spec`` of an AuthorizationPolicy document.

Field names follow the YAML (camelCase); every error names the dotted field path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from citadel.authz.claims import CLAIMS_PREFIX, claim_path
from citadel.authz.matchers import HEADERS_PREFIX
from citadel.authz.patterns import (
    check_grpc_method_pattern,
    check_header_name,
    check_host_pattern,
    check_http_method_pattern,
    check_ip_block,
    check_namespace_pattern,
    check_path_pattern,
    check_port,
    check_principal_pattern,
    check_request_principal_pattern,
    parse_pattern,
)
from citadel.authz.policy import Action, AuthorizationPolicy, Condition, Operation, Rule, Source
from citadel.authz.yaml_fields import Checker, Node

__all__ = ["parse_authorization_spec"]


def _any_pattern(value: str) -> str | None:
    if not value:
        return "must not be empty"
    try:
        parse_pattern(value)
    except ValueError as exc:
        return str(exc)
    return None


_SOURCE_FIELDS: dict[str, tuple[str, Checker]] = {
    "principals": ("principals", check_principal_pattern),
    "notPrincipals": ("not_principals", check_principal_pattern),
    "namespaces": ("namespaces", check_namespace_pattern),
    "notNamespaces": ("not_namespaces", check_namespace_pattern),
    "requestPrincipals": ("request_principals", check_request_principal_pattern),
    "notRequestPrincipals": ("not_request_principals", check_request_principal_pattern),
    "ipBlocks": ("ip_blocks", check_ip_block),
    "notIpBlocks": ("not_ip_blocks", check_ip_block),
}
_OPERATION_FIELDS: dict[str, tuple[str, Checker]] = {
    "grpcMethods": ("grpc_methods", check_grpc_method_pattern),
    "notGrpcMethods": ("not_grpc_methods", check_grpc_method_pattern),
    "methods": ("methods", check_http_method_pattern),
    "notMethods": ("not_methods", check_http_method_pattern),
    "paths": ("paths", check_path_pattern),
    "notPaths": ("not_paths", check_path_pattern),
    "hosts": ("hosts", check_host_pattern),
    "notHosts": ("not_hosts", check_host_pattern),
    "ports": ("ports", check_port),
    "notPorts": ("not_ports", check_port),
}
_CONDITION_KEYS: dict[str, Checker] = {
    "request.auth.principal": check_request_principal_pattern,
    "request.auth.audiences": _any_pattern,
    "source.ip": check_ip_block,
    "source.principal": check_principal_pattern,
    "source.namespace": check_namespace_pattern,
    "destination.port": check_port,
}


def _fields(node: Node, table: dict[str, tuple[str, Checker]], what: str) -> dict[str, Any]:
    fields = node.mapping(table)
    if not fields:
        node.fail(f"an empty {what} matches everything; set at least one field")
    return {
        table[key][0]: sub.patterns(table[key][1], allow_int=key in ("ports", "notPorts"))
        for key, sub in fields.items()
    }


def _condition_checker(key_node: Node) -> Checker:
    key = key_node.string()
    if key.startswith(CLAIMS_PREFIX):
        try:
            claim_path(key)
        except ValueError as exc:
            key_node.fail(f"{key!r}: {exc} (e.g. request.auth.claims[groups])")
        return _any_pattern
    if key.startswith(HEADERS_PREFIX):
        name = key[len(HEADERS_PREFIX) :]
        if not (name.startswith("[") and name.endswith("]")) or check_header_name(name[1:-1]):
            key_node.fail(f"{key!r}: expected request.headers[<lowercase-name>]")
        return _any_pattern
    checker = _CONDITION_KEYS.get(key)
    if checker is None:
        known = ", ".join([f"{CLAIMS_PREFIX}[...]", f"{HEADERS_PREFIX}[...]", *_CONDITION_KEYS])
        key_node.fail(f"unsupported key {key!r} (supported: {known})")
    return checker


def _condition(node: Node) -> Condition:
    fields = node.mapping(("key", "values", "notValues"))
    if "key" not in fields:
        node.fail("'key' is required")
    checker = _condition_checker(fields["key"])
    if "values" not in fields and "notValues" not in fields:
        node.fail("set 'values' or 'notValues'")
    return Condition(
        key=fields["key"].string(),
        values=fields["values"].patterns(checker) if "values" in fields else (),
        not_values=fields["notValues"].patterns(checker) if "notValues" in fields else (),
    )


def _entries(node: Node, wrapper: str) -> Iterator[Node]:
    items = node.items()
    if not items:
        node.fail("must not be an empty list (omit it to match any request)")
    for item in items:
        fields = item.mapping((wrapper,))
        if wrapper not in fields:
            item.fail(f"'{wrapper}' is required")
        yield fields[wrapper]


def _rule(node: Node) -> Rule:
    if node.value is None:
        node.fail("a rule must be a mapping (use {} to match every request)")
    fields = node.mapping(("from", "to", "when"))
    sources = (
        tuple(
            Source(**_fields(n, _SOURCE_FIELDS, "source"))
            for n in _entries(fields["from"], "source")
        )
        if "from" in fields
        else ()
    )
    operations = (
        tuple(
            Operation(**_fields(n, _OPERATION_FIELDS, "operation"))
            for n in _entries(fields["to"], "operation")
        )
        if "to" in fields
        else ()
    )
    conditions: tuple[Condition, ...] = ()
    if "when" in fields:
        items = fields["when"].items()
        if not items:
            fields["when"].fail("must not be an empty list (omit it)")
        conditions = tuple(_condition(n) for n in items)
    return Rule(sources=sources, operations=operations, conditions=conditions)


def parse_authorization_spec(name: str, origin: str, spec: Node) -> AuthorizationPolicy:
    """Raises PolicyError naming the field."""
    fields = spec.mapping(("targets", "action", "rules"))
    action = Action.ALLOW
    if "action" in fields:
        text = fields["action"].string()
        if text not in Action.__members__:
            fields["action"].fail(f"{text!r} is not one of ALLOW, DENY, AUDIT")
        action = Action(text)
    rules: tuple[Rule, ...] = ()
    if "rules" in fields and fields["rules"].value is not None:
        rules = tuple(_rule(n) for n in fields["rules"].items())
    targets = fields["targets"].patterns(check_principal_pattern) if "targets" in fields else ()
    return AuthorizationPolicy(
        name=name, origin=origin, action=action, targets=targets, rules=rules
    )
