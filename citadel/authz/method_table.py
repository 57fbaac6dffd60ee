"""A per-method allow table for the CA's own RPCs (admin, agent, local callers).

For each full gRPC method (``/pkg.Service/Method``, or ``/pkg.Service/*`` for a whole
service) the table says which callers may call it:

    * ``allow_admin``: peers whose SPIFFE ID matches ``admin_principals``;
    * ``allow_agent``: peers whose SPIFFE ID matches ``agent_principals``;
    * ``allow_local``: callers over a Unix socket;
    * ``allow_authenticated``: any peer with a verified SPIFFE ID;
    * ``allow_any``: everyone, anonymous included (the handler authenticates on its own,
      like the CSR API, or the method is harmless, like health checks).

A method that is not in the table is denied. The table is a :class:`CallAuthorizer`, so it
plugs into the same gRPC interceptors as policy directories. YAML form::

    adminPrincipals: ["spiffe://example.org/citadel/admin/*"]
    agentPrincipals: ["spiffe://example.org/citadel/agent/*"]
    methods:
      /citadel.admin.v1.Admin/*: {allowAdmin: true, allowLocal: true}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from citadel.authz.decision import Decision, Reason
from citadel.authz.enforcer import AccessRequest, AccessResult, log_result
from citadel.authz.errors import (
    AuthenticationError,
    AuthzError,
    ForeignTrustDomainError,
    PolicyError,
)
from citadel.authz.matchers import StringMatcher
from citadel.authz.metrics import record_decision
from citadel.authz.patterns import check_grpc_method_pattern, check_principal_pattern
from citadel.authz.principals import establish_peer
from citadel.authz.yaml_fields import Node, load_yaml_file
from citadel.identity.spiffe_id import TrustDomain

__all__ = [
    "DEFAULT_CA_METHOD_RULES",
    "MethodRule",
    "MethodTable",
    "load_method_table",
]

_TABLE = "method-table"


@dataclass(frozen=True, kw_only=True)
class MethodRule:
    allow_admin: bool = False
    allow_agent: bool = False
    allow_local: bool = False
    allow_authenticated: bool = False
    allow_any: bool = False

    def roles(self) -> tuple[str, ...]:
        names = ("admin", "agent", "local", "authenticated", "any")
        flags = (
            self.allow_admin,
            self.allow_agent,
            self.allow_local,
            self.allow_authenticated,
            self.allow_any,
        )
        return tuple(n for n, f in zip(names, flags, strict=True) if f)


DEFAULT_CA_METHOD_RULES: Mapping[str, MethodRule] = MappingProxyType(
    {
        # The CSR API authenticates each caller itself (mTLS, Kubernetes JWT, OIDC JWT).
        "/istio.v1.auth.IstioCertificateService/CreateCertificate": MethodRule(allow_any=True),
        "/grpc.health.v1.Health/Check": MethodRule(allow_any=True),
        "/grpc.health.v1.Health/Watch": MethodRule(allow_any=True),
    }
)
"""The CA's default table: every method not listed here (admin APIs included) is denied."""


def _method_key_problem(method: str) -> str | None:
    if method == "*":
        return "'*' alone is too broad; list services or methods"
    return check_grpc_method_pattern(method)


class MethodTable:
    """Decides calls by full method name and caller role. Immutable and thread-safe."""

    def __init__(
        self,
        rules: Mapping[str, MethodRule] = DEFAULT_CA_METHOD_RULES,
        *,
        admin_principals: Sequence[str] = (),
        agent_principals: Sequence[str] = (),
        trust_domains: frozenset[TrustDomain] | None = None,
    ) -> None:
        """Raises ValueError for a malformed method key or principal pattern."""
        for method in rules:
            if problem := _method_key_problem(method):
                raise ValueError(f"method table key {method!r}: {problem}")
        for pattern in (*admin_principals, *agent_principals):
            if problem := check_principal_pattern(pattern):
                raise ValueError(f"principal pattern {pattern!r}: {problem}")
        self._rules = dict(rules)
        self._admins = StringMatcher.compile(admin_principals)
        self._agents = StringMatcher.compile(agent_principals)
        self._has_admins = bool(admin_principals)
        self._has_agents = bool(agent_principals)
        self._trust_domains = trust_domains

    def rule_for(self, method: str) -> tuple[str, MethodRule] | None:
        """The entry for a method: exact first, then its service wildcard."""
        if method in self._rules:
            return method, self._rules[method]
        service, sep, _ = method.rpartition("/")
        key = f"{service}/*"
        if sep and key in self._rules:
            return key, self._rules[key]
        return None

    def decide(self, method: str, *, principal: str | None, local: bool) -> Decision:
        """Decide a call whose peer identity has been established already."""
        entry = self.rule_for(method)
        if entry is None:
            return Decision(
                allowed=False, reason=Reason.DEFAULT_DENY, detail=f"{method} is not in the table"
            )
        key, rule = entry
        allowed = (
            rule.allow_any
            or (rule.allow_local and local)
            or (principal is not None and rule.allow_authenticated)
            or (
                principal is not None
                and rule.allow_admin
                and self._has_admins
                and self._admins.matches(principal)
            )
            or (
                principal is not None
                and rule.allow_agent
                and self._has_agents
                and self._agents.matches(principal)
            )
        )
        return Decision(
            allowed=allowed,
            reason=Reason.ALLOWED_BY_POLICY if allowed else Reason.NO_ALLOW_MATCH,
            policy=_TABLE,
            origin=key,
            detail=f"{key} allows: {', '.join(rule.roles()) or 'nobody'}",
        )

    def check(self, request: AccessRequest) -> AccessResult:
        """The :class:`CallAuthorizer` entry point used by the gRPC interceptors."""
        result = self._evaluate(request)
        record_decision(result.allowed, result.decision.reason)
        log_result(request, result)
        return result

    def _evaluate(self, request: AccessRequest) -> AccessResult:
        try:
            principal = establish_peer(
                request.peer_principal, request.peer_certificate, self._trust_domains
            )
        except (AuthenticationError, ForeignTrustDomainError) as exc:
            error: AuthzError = exc
            return AccessResult(
                decision=Decision(allowed=False, reason=exc.kind, detail=exc.message),
                error=error,
            )
        decision = self.decide(request.grpc_method or "", principal=principal, local=request.local)
        return AccessResult(
            decision=decision,
            error=None if decision.allowed else decision.to_error(),
            principal=principal,
        )


_RULE_FIELDS = {
    "allowAdmin": "allow_admin",
    "allowAgent": "allow_agent",
    "allowLocal": "allow_local",
    "allowAuthenticated": "allow_authenticated",
    "allowAny": "allow_any",
}


def load_method_table(
    path: str | Path, *, trust_domains: frozenset[TrustDomain] | None = None
) -> MethodTable:
    """Load a method table from YAML (see the module docstring).

    Raises:
        PolicyError: the file is unreadable or invalid; the message names the field.
    """
    documents = [d for d in load_yaml_file(path) if d is not None]
    if len(documents) != 1:
        raise PolicyError(str(path), "", "a method table file holds exactly one YAML document")
    root = Node(documents[0], str(path), "")
    fields = root.mapping(("adminPrincipals", "agentPrincipals", "methods"))
    admins = (
        fields["adminPrincipals"].patterns(check_principal_pattern)
        if "adminPrincipals" in fields
        else ()
    )
    agents = (
        fields["agentPrincipals"].patterns(check_principal_pattern)
        if "agentPrincipals" in fields
        else ()
    )
    if "methods" not in fields:
        root.fail("'methods' is required")
    rules: dict[str, MethodRule] = {}
    for method, node in fields["methods"].mapping_any().items():
        if problem := _method_key_problem(method):
            node.fail(problem)
        flags = node.mapping(_RULE_FIELDS)
        rules[method] = MethodRule(**{_RULE_FIELDS[k]: v.boolean() for k, v in flags.items()})
    return MethodTable(
        rules, admin_principals=admins, agent_principals=agents, trust_domains=trust_domains
    )
