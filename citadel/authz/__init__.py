"""Citadel's authz layer: JWT and mTLS peer-identity policy.

Layout (one job per module):
    policy                                    the policy model (frozen dataclasses)
    policy_loader, yaml_fields                YAML files/directories, strict reading
    authorization_spec, request_authentication_spec   validation of each document kind
    patterns, claims                          pattern grammar, JWT claim paths
    matchers, method_scope, engine, decision  compiled rules, method index, decisions
    request                                   the engine's view of a request
    jwk_set, jwks_file, jwks_url, jwks        keys, file/URL sources (jwks re-exports all)
    jwks_factory, jwt_verifier                JWT verification (public API, reused by the CA)
    request_auth, principals, enforcer        authentication + authorization per request
    policy_store, policy_watcher, metrics     reload on change, counters
    grpc_interceptor, ext_authz, ext_authz_server   enforcement points (gRPC, Envoy)
    method_table                              the CA's per-method allow table
    grpc_status                               the one error-to-status mapping
    lint, explain, cli                        ``citadel authz check|lint|serve``

The gRPC-facing modules are not imported here; import them directly.
"""

from __future__ import annotations

from citadel.authz.decision import Decision, Reason
from citadel.authz.enforcer import (
    AccessRequest,
    AccessResult,
    CallAuthorizer,
    Enforcer,
    EnforcerOptions,
)
from citadel.authz.engine import AuthzEngine, EngineOptions
from citadel.authz.jwks import FileJwks, JwkKey, JwkSet, JwksSource, StaticJwks, UrlJwks
from citadel.authz.jwt_verifier import JwtVerifier, JwtVerifierConfig, VerifiedJwt
from citadel.authz.method_table import (
    DEFAULT_CA_METHOD_RULES,
    MethodRule,
    MethodTable,
    load_method_table,
)
from citadel.authz.policy import Action, AuthorizationPolicy, PolicySet, RequestAuthentication
from citadel.authz.policy_loader import load_policy_dir
from citadel.authz.policy_store import PolicyStore
from citadel.authz.policy_watcher import PolicyWatcher
from citadel.authz.request import RequestContext

__all__ = [
    "DEFAULT_CA_METHOD_RULES",
    "AccessRequest",
    "AccessResult",
    "Action",
    "AuthorizationPolicy",
    "AuthzEngine",
    "CallAuthorizer",
    "Decision",
    "Enforcer",
    "EnforcerOptions",
    "EngineOptions",
    "FileJwks",
    "JwkKey",
    "JwkSet",
    "JwksSource",
    "JwtVerifier",
    "JwtVerifierConfig",
    "MethodRule",
    "MethodTable",
    "PolicySet",
    "PolicyStore",
    "PolicyWatcher",
    "Reason",
    "RequestAuthentication",
    "RequestContext",
    "StaticJwks",
    "UrlJwks",
    "VerifiedJwt",
    "load_method_table",
    "load_policy_dir",
]
