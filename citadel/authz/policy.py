"""The policy model: request authentication (JWT rules) and authorization policies.

The YAML form is parsed by :mod:`citadel.authz.policy_loader`; the values here are already
validated. Pattern strings keep their YAML spelling (``spiffe://td/ns/a/*``, ``*/sa/x``,
``/pkg.Svc/*``) and are compiled into matchers by :mod:`citadel.authz.matchers`.

Semantics (close to Istio's AuthorizationPolicy):
    * a rule matches when each of ``from``, ``to`` and ``when`` matches; an omitted part
      matches everything; ``from``/``to`` match when any of their entries matches; an entry
      matches when every field it sets matches; ``when`` matches when every condition does;
    * a field with values matches when the request value matches one of them (an absent
      request value never matches); a ``not`` field matches when the request value is absent
      or matches none of them;
    * a policy with no rules matches no request (for ALLOW: it denies all its targets);
      ``rules: [{}]`` matches every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

__all__ = [
    "DEFAULT_HEADER_LOCATION",
    "Action",
    "AuthorizationPolicy",
    "ClaimToHeader",
    "Condition",
    "HeaderLocation",
    "JwksFormat",
    "JwksSpec",
    "JwtRule",
    "Operation",
    "PolicySet",
    "RequestAuthentication",
    "Rule",
    "Source",
]


class Action(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"


@dataclass(frozen=True, kw_only=True)
class Source:
    """One ``from[].source`` entry. Empty tuples are "not set"."""

    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()
    request_principals: tuple[str, ...] = ()
    not_request_principals: tuple[str, ...] = ()
    ip_blocks: tuple[str, ...] = ()
    not_ip_blocks: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One ``to[].operation`` entry. Empty tuples are "not set"."""

    grpc_methods: tuple[str, ...] = ()
    not_grpc_methods: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    not_hosts: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    not_ports: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Condition:
    """One ``when`` entry, e.g. ``request.auth.claims[groups]`` in ``["admins"]``."""

    key: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Rule:
    sources: tuple[Source, ...] = ()
    operations: tuple[Operation, ...] = ()
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AuthorizationPolicy:
    """A named policy. ``targets`` are destination principal patterns; empty = all targets."""

    name: str
    origin: str
    action: Action
    targets: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()


class JwksFormat(StrEnum):
    JWKS = "jwks"
    """A plain JWKS; keys whose ``use`` is set must say ``sig``."""
    SPIFFE = "spiffe"
    """A SPIFFE bundle; only keys with ``use: jwt-svid`` are used."""


@dataclass(frozen=True, kw_only=True)
class JwksSpec:
    """Where a rule's keys come from: exactly one of ``inline``, ``file`` or ``uri``.

    ``inline`` is the JWKS as canonical JSON text (so the spec stays hashable).
    """

    inline: str | None = None
    file: str | None = None
    uri: str | None = None
    format: JwksFormat = JwksFormat.JWKS
    refresh_interval: timedelta = timedelta(minutes=5)
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.inline, self.file, self.uri)) != 1:
            raise ValueError("exactly one of inline, file or uri must be set")


@dataclass(frozen=True, kw_only=True)
class HeaderLocation:
    """A header that may carry the token; ``name`` is lowercase."""

    name: str
    prefix: str = ""


DEFAULT_HEADER_LOCATION = HeaderLocation(name="authorization", prefix="Bearer ")


@dataclass(frozen=True, kw_only=True)
class ClaimToHeader:
    header: str
    claim: str


@dataclass(frozen=True, kw_only=True)
class JwtRule:
    issuer: str
    audiences: tuple[str, ...]
    jwks: JwksSpec
    from_headers: tuple[HeaderLocation, ...] = (DEFAULT_HEADER_LOCATION,)
    output_claim_to_headers: tuple[ClaimToHeader, ...] = ()
    leeway: timedelta = timedelta(seconds=30)
    max_token_bytes: int = 8192


@dataclass(frozen=True, kw_only=True)
class RequestAuthentication:
    """JWT rules for some targets. ``required`` makes a missing token an authentication error."""

    name: str
    origin: str
    targets: tuple[str, ...] = ()
    jwt_rules: tuple[JwtRule, ...] = ()
    required: bool = False


@dataclass(frozen=True, kw_only=True)
class PolicySet:
    """Everything loaded from one policy directory, in file then document order."""

    authorization: tuple[AuthorizationPolicy, ...] = ()
    request_authentication: tuple[RequestAuthentication, ...] = ()
    files: tuple[str, ...] = field(default=())
