"""Which gRPC calls a rule can match at most: the key of the engine's method index."""

from __future__ import annotations

from dataclasses import dataclass

from citadel.authz.patterns import PatternKind, parse_pattern
from citadel.authz.policy import Rule

__all__ = ["MethodScope", "grpc_method_scope"]


@dataclass(frozen=True, slots=True)
class MethodScope:
    """The gRPC calls a rule can match at most: exact methods and whole services."""

    methods: frozenset[str]
    services: frozenset[str]

    def admits(self, grpc_method: str | None) -> bool:
        if grpc_method is None:
            return False
        if grpc_method in self.methods:
            return True
        return grpc_method[: grpc_method.rfind("/") + 1] in self.services


def grpc_method_scope(rule: Rule) -> MethodScope | None:
    """The rule's :class:`MethodScope` when every ``to`` entry lists only exact methods or
    ``/pkg.Service/*``; else None (the rule may match any call).

    Used to index rules by method: such a rule never matches a call outside its scope.
    """
    if not rule.operations:
        return None
    methods: set[str] = set()
    services: set[str] = set()
    for op in rule.operations:
        if not op.grpc_methods:
            return None
        for value in op.grpc_methods:
            pattern = parse_pattern(value)
            if pattern.kind is PatternKind.EXACT:
                methods.add(pattern.text)
            elif pattern.kind is PatternKind.PREFIX and pattern.text.endswith("/"):
                services.add(pattern.text)
            else:
                return None
    return MethodScope(frozenset(methods), frozenset(services))
