"""The pattern grammar shared by policy fields, and the checks that validate it at load.

A pattern is ``*`` (any present value), ``abc*`` (prefix), ``*abc`` (suffix) or an exact
string; ``*`` anywhere else is an error. Principals are SPIFFE IDs compared as written:
nothing is normalized, so ``spiffe://td/ns/a/sa/B`` and ``spiffe://td/ns/a/sa/b/`` never
match ``spiffe://td/ns/a/sa/b``.

Each ``check_*`` function returns ``None`` for a valid pattern or a short problem
description (the loader adds the file and the field).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import Enum

from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.spiffe_id import SCHEME, SpiffeId

__all__ = [
    "Pattern",
    "PatternKind",
    "check_grpc_method_pattern",
    "check_header_name",
    "check_host_pattern",
    "check_http_method_pattern",
    "check_ip_block",
    "check_namespace_pattern",
    "check_path_pattern",
    "check_port",
    "check_principal_pattern",
    "check_request_principal_pattern",
    "parse_pattern",
]


class PatternKind(Enum):
    ANY = "any"
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"


@dataclass(frozen=True, slots=True)
class Pattern:
    kind: PatternKind
    text: str
    """The literal part: the whole value, the prefix or the suffix (empty for ANY)."""

    def covers(self, other: Pattern) -> bool:
        """True when every value ``other`` matches is also matched by ``self``."""
        if self.kind is PatternKind.ANY:
            return True
        if other.kind is PatternKind.ANY:
            return False
        if self.kind is PatternKind.EXACT:
            return other.kind is PatternKind.EXACT and other.text == self.text
        if self.kind is PatternKind.PREFIX:
            return other.kind in (PatternKind.EXACT, PatternKind.PREFIX) and other.text.startswith(
                self.text
            )
        return other.kind in (PatternKind.EXACT, PatternKind.SUFFIX) and other.text.endswith(
            self.text
        )


def parse_pattern(value: str) -> Pattern:
    """Classify a pattern. Raises ValueError when ``*`` is in the middle."""
    if value == "*":
        return Pattern(PatternKind.ANY, "")
    if value.endswith("*") and "*" not in value[:-1]:
        return Pattern(PatternKind.PREFIX, value[:-1])
    if value.startswith("*") and "*" not in value[1:]:
        return Pattern(PatternKind.SUFFIX, value[1:])
    if "*" in value:
        raise ValueError("'*' is allowed only alone, at the start or at the end")
    return Pattern(PatternKind.EXACT, value)


def _classify(value: str) -> Pattern | str:
    if value == "":
        return "must not be empty"
    try:
        return parse_pattern(value)
    except ValueError as exc:
        return str(exc)


_PATH_SEGMENTS = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


def check_principal_pattern(value: str) -> str | None:
    """A SPIFFE ID, ``spiffe://td/path/*`` (prefix), ``*/path`` (suffix) or ``*``."""
    pattern = _classify(value)
    if isinstance(pattern, str):
        return pattern
    if pattern.kind is PatternKind.ANY:
        return None
    if pattern.kind is PatternKind.SUFFIX:
        if not _PATH_SEGMENTS.match(pattern.text) or any(
            s in (".", "..") for s in pattern.text.split("/")
        ):
            return "a suffix principal must look like '*/sa/name' (whole path segments)"
        return None
    if pattern.kind is PatternKind.PREFIX:
        if not pattern.text.endswith("/"):
            return "a prefix principal must end with '/*' (whole path segments)"
        candidate = pattern.text[:-1]
    else:
        candidate = pattern.text
    if not candidate.startswith(SCHEME):
        return "a principal must be a SPIFFE ID starting with 'spiffe://'"
    try:
        SpiffeId.parse(candidate)
    except InvalidSpiffeIdError as exc:
        return f"not a valid SPIFFE ID ({exc.message})"
    return None


_NAMESPACE_CHARS = re.compile(r"^[A-Za-z0-9._-]*$")


def check_namespace_pattern(value: str) -> str | None:
    pattern = _classify(value)
    if isinstance(pattern, str):
        return pattern
    if not _NAMESPACE_CHARS.match(pattern.text):
        return "a namespace may contain only letters, digits, '.', '-' and '_'"
    return None


def check_request_principal_pattern(value: str) -> str | None:
    """``iss/sub`` (the issuer may itself contain '/'), with the usual wildcards."""
    pattern = _classify(value)
    if isinstance(pattern, str):
        return pattern
    if pattern.kind is PatternKind.EXACT and "/" not in pattern.text:
        return "a request principal must be '<issuer>/<subject>'"
    return None


_GRPC_METHOD = re.compile(r"^/[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*$")
_GRPC_SERVICE = re.compile(r"^/[A-Za-z_][A-Za-z0-9_.]*/$")


def check_grpc_method_pattern(value: str) -> str | None:
    """``/pkg.Service/Method``, ``/pkg.Service/*`` or ``*``."""
    pattern = _classify(value)
    if isinstance(pattern, str):
        return pattern
    if pattern.kind is PatternKind.ANY:
        return None
    if pattern.kind is PatternKind.EXACT and _GRPC_METHOD.match(pattern.text):
        return None
    if pattern.kind is PatternKind.PREFIX and _GRPC_SERVICE.match(pattern.text):
        return None
    return "a gRPC method must be '/package.Service/Method', '/package.Service/*' or '*'"


_HTTP_METHOD = re.compile(r"^[A-Z]+$")


def check_http_method_pattern(value: str) -> str | None:
    if value == "*":
        return None
    if not _HTTP_METHOD.match(value):
        return "an HTTP method must be upper case letters (GET, POST, ...) or '*'"
    return None


def check_path_pattern(value: str) -> str | None:
    pattern = _classify(value)
    if isinstance(pattern, str):
        return pattern
    if pattern.kind in (PatternKind.EXACT, PatternKind.PREFIX) and not pattern.text.startswith("/"):
        return "a path must start with '/'"
    return None


_HOST = re.compile(r"^[A-Za-z0-9.:\[\]_-]*$")


def check_host_pattern(value: str) -> str | None:
    pattern = _classify(value)
    if isinstance(pattern, str):
        return pattern
    if not _HOST.match(pattern.text):
        return "a host may contain only letters, digits, '.', '-', '_', ':' and brackets"
    return None


def check_port(value: str) -> str | None:
    if not value.isdigit() or not 0 < int(value) < 65536:
        return "a port must be a number from 1 to 65535"
    return None


def check_ip_block(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        return f"not an IP address or CIDR block ({exc})"
    return None


_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")


def check_header_name(value: str) -> str | None:
    """A lowercase HTTP/2 header name (no pseudo-headers)."""
    if not _HEADER_NAME.match(value):
        return "a header name must be a lowercase token (letters, digits, '-', ...)"
    return None
