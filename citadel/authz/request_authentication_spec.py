"""Parse and validate the ``spec`` of a RequestAuthentication document (JWT rules).

Relative ``jwksFile``/``jwksCaFile`` paths resolve from the policy file's directory; an
inline ``jwks`` is parsed here so a bad key set is refused at load.
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import timedelta
from pathlib import Path

from citadel.authz.errors import JwksError, PolicyError
from citadel.authz.jwk_set import JwkSet
from citadel.authz.patterns import check_header_name, check_principal_pattern
from citadel.authz.policy import (
    DEFAULT_HEADER_LOCATION,
    ClaimToHeader,
    HeaderLocation,
    JwksFormat,
    JwksSpec,
    JwtRule,
    RequestAuthentication,
)
from citadel.authz.yaml_fields import Node

__all__ = ["parse_request_authentication_spec"]


_JWT_RULE_FIELDS = (
    "issuer",
    "audiences",
    "jwks",
    "jwksFile",
    "jwksUri",
    "jwksFormat",
    "jwksRefreshInterval",
    "jwksCaFile",
    "fromHeaders",
    "outputClaimToHeaders",
    "leeway",
    "maxTokenBytes",
)


def _file_path(node: Node, base_dir: Path) -> str:
    path = Path(node.string())
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        node.fail(f"file {str(path)!r} does not exist or is not a regular file")
    return str(path)


def _jwks_spec(fields: dict[str, Node], node: Node, base_dir: Path) -> JwksSpec:
    given = [k for k in ("jwks", "jwksFile", "jwksUri") if k in fields]
    if len(given) != 1:
        node.fail("set exactly one of jwks, jwksFile, jwksUri")
    fmt = JwksFormat.JWKS
    if "jwksFormat" in fields:
        text = fields["jwksFormat"].string()
        if text not in {f.value for f in JwksFormat}:
            fields["jwksFormat"].fail(f"{text!r} is not one of jwks, spiffe")
        fmt = JwksFormat(text)
    refresh = timedelta(minutes=5)
    if "jwksRefreshInterval" in fields:
        refresh = fields["jwksRefreshInterval"].duration(timedelta(seconds=1), timedelta(days=1))
    ca_file = _file_path(fields["jwksCaFile"], base_dir) if "jwksCaFile" in fields else None
    if "jwks" in fields:
        inline = fields["jwks"]
        if not isinstance(inline.value, dict):
            inline.fail("must be a JWKS mapping with a 'keys' list")
        try:
            JwkSet.parse(inline.value, fmt)
        except JwksError as exc:
            inline.fail(exc.message)
        text = json.dumps(inline.value, sort_keys=True, separators=(",", ":"))
        return JwksSpec(inline=text, format=fmt)
    if "jwksFile" in fields:
        return JwksSpec(file=_file_path(fields["jwksFile"], base_dir), format=fmt)
    uri_node = fields["jwksUri"]
    uri = uri_node.string()
    try:
        parts = urllib.parse.urlsplit(uri)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        valid = valid and (parts.port or 0) >= 0  # reading port checks it
    except ValueError:  # a malformed bracketed host or port
        valid = False
    if not valid:
        uri_node.fail("must be an http(s) URL with a host")
    return JwksSpec(uri=uri, format=fmt, refresh_interval=refresh, ca_file=ca_file)


def _header_locations(node: Node) -> tuple[HeaderLocation, ...]:
    out: list[HeaderLocation] = []
    for item in node.items():
        fields = item.mapping(("name", "prefix"))
        if "name" not in fields:
            item.fail("'name' is required")
        name = fields["name"].string().lower()
        if problem := check_header_name(name):
            fields["name"].fail(problem)
        prefix = ""
        if "prefix" in fields:
            if not isinstance(fields["prefix"].value, str):
                fields["prefix"].fail("must be a string")
            prefix = fields["prefix"].value
        out.append(HeaderLocation(name=name, prefix=prefix))
    if not out:
        node.fail("must not be an empty list (omit it for 'authorization: Bearer')")
    return tuple(out)


def _claim_headers(node: Node) -> tuple[ClaimToHeader, ...]:
    out: list[ClaimToHeader] = []
    for item in node.items():
        fields = item.mapping(("header", "claim"))
        for required in ("header", "claim"):
            if required not in fields:
                item.fail(f"'{required}' is required")
        header = fields["header"].string()
        if problem := check_header_name(header):
            fields["header"].fail(problem)
        if header in ("authorization", "host", "cookie"):
            fields["header"].fail(f"{header!r} cannot carry a claim")
        out.append(ClaimToHeader(header=header, claim=fields["claim"].string()))
    return tuple(out)


def _jwt_rule(node: Node, base_dir: Path) -> JwtRule:
    fields = node.mapping(_JWT_RULE_FIELDS)
    for required in ("issuer", "audiences"):
        if required not in fields:
            node.fail(f"'{required}' is required")
    return JwtRule(
        issuer=fields["issuer"].string(),
        audiences=fields["audiences"].patterns(
            lambda v: "must not contain '*'" if "*" in v else None
        ),
        jwks=_jwks_spec(fields, node, base_dir),
        from_headers=_header_locations(fields["fromHeaders"])
        if "fromHeaders" in fields
        else (DEFAULT_HEADER_LOCATION,),
        output_claim_to_headers=_claim_headers(fields["outputClaimToHeaders"])
        if "outputClaimToHeaders" in fields
        else (),
        leeway=fields["leeway"].duration(timedelta(0), timedelta(minutes=5))
        if "leeway" in fields
        else timedelta(seconds=30),
        max_token_bytes=fields["maxTokenBytes"].integer(256, 65536)
        if "maxTokenBytes" in fields
        else 8192,
    )


def parse_request_authentication_spec(
    name: str, origin: str, spec: Node, base_dir: Path
) -> RequestAuthentication:
    """Raises PolicyError naming the field."""
    fields = spec.mapping(("targets", "required", "jwtRules"))
    if "jwtRules" not in fields:
        spec.fail("'jwtRules' is required")
    rules_node = fields["jwtRules"]
    rules = tuple(_jwt_rule(n, base_dir) for n in rules_node.items())
    if not rules:
        rules_node.fail("must list at least one rule")
    issuers = [r.issuer for r in rules]
    for index, issuer in enumerate(issuers):
        if issuer in issuers[:index]:
            raise PolicyError(origin, f"{rules_node.path}[{index}].issuer", "issuer repeated")
    return RequestAuthentication(
        name=name,
        origin=origin,
        targets=fields["targets"].patterns(check_principal_pattern) if "targets" in fields else (),
        jwt_rules=rules,
        required=fields["required"].boolean() if "required" in fields else False,
    )
