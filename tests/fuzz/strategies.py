"""Hypothesis strategies and settings shared by the ``test_fuzz_regressions_*`` modules.

They build *structured* hostile input (JSON documents, JOSE headers and claims, policy
documents, SDS request scripts) for the targets in :mod:`tests.fuzz.targets`, which the
coverage-guided harnesses feed with raw bytes instead.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = [
    "FUZZ_SETTINGS",
    "crasher_files",
    "jose_claims",
    "jose_header",
    "jose_times",
    "json_bytes",
    "json_values",
    "policy_documents",
]

FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # no example database in the source tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Numbers that break date arithmetic and JSON number handling.
EDGE_NUMBERS = st.sampled_from(
    [0, -1, 2**31, 2**63, 10**400, 253402300799, 253402300800, -62135596800, 1e308, -1e308,
     float("inf"), float("nan"), 1780000000, 1780000000.5, True, False]
)  # fmt: skip
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | EDGE_NUMBERS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def json_bytes(value: Any) -> bytes:
    """``value`` as JSON (NaN/Infinity as JavaScript literals, as a hostile peer may send)."""
    return json.dumps(value).encode("utf-8", errors="surrogatepass")


def jose_header(algs: list[str], kids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly well-formed headers (so later checks are reached), with hostile members."""
    typs: st.SearchStrategy[Any] = st.sampled_from(
        ["JWT", "JOSE", "jwt", "at+jwt", [], ["JWT"], {}, 1, None, True]
    )
    return st.fixed_dictionaries(
        {
            "alg": st.one_of(st.sampled_from(algs), st.sampled_from(algs), json_values),
            "kid": st.one_of(st.sampled_from(kids), st.sampled_from(kids), json_values),
        },
        optional={"typ": typs | json_values},
    ) | st.fixed_dictionaries(
        {"alg": st.sampled_from(algs), "kid": st.sampled_from(kids), "crit": json_values}
    )


def _numbers() -> st.SearchStrategy[Any]:
    return EDGE_NUMBERS | st.integers(1_700_000_000, 1_900_000_000) | json_values


def jose_claims(
    subjects: list[str], audiences: list[str], issuers: list[str]
) -> st.SearchStrategy[dict[str, Any]]:
    """Claims with any member present or absent, any type."""
    return st.fixed_dictionaries(
        {},
        optional={
            "sub": st.sampled_from(subjects) | json_values,
            "aud": st.sampled_from(audiences) | st.lists(st.sampled_from(audiences)) | json_values,
            "iss": st.sampled_from(issuers) | json_values,
            "exp": _numbers(),
            "nbf": _numbers(),
            "iat": _numbers(),
        },
    )


def jose_times(subject: str, audience: str, issuer: str) -> st.SearchStrategy[dict[str, Any]]:
    """Otherwise valid claims whose ``exp``/``nbf``/``iat`` are hostile numbers."""
    return st.fixed_dictionaries(
        {
            "sub": st.just(subject),
            "aud": st.just([audience]),
            "iss": st.just(issuer),
            "exp": EDGE_NUMBERS | st.floats() | st.integers(),
        },
        optional={"nbf": EDGE_NUMBERS | st.floats(), "iat": EDGE_NUMBERS | st.floats()},
    )


_POLICY_FIELDS = ["action", "targets", "rules", "from", "to", "when", "source", "operation",
                  "principals", "notPrincipals", "ipBlocks", "grpcMethods", "ports", "key",
                  "values", "jwtRules", "issuer", "audiences", "jwks", "jwksUri", "leeway",
                  "required", "fromHeaders", "name", "prefix"]  # fmt: skip
_policy_values: st.SearchStrategy[Any] = st.recursive(
    _scalars
    | st.sampled_from(
        [
            "ALLOW",
            "DENY",
            "AUDIT",
            "spiffe://example.org/ns/a/*",
            "10.0.0.0/8",
            "/pkg.Svc/*",
            "30s",
            "source.ip",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(_POLICY_FIELDS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def policy_documents() -> st.SearchStrategy[bytes]:
    """Whole policy files: a plausible envelope around a hostile ``spec``, as YAML or JSON."""
    document = st.fixed_dictionaries(
        {
            "apiVersion": st.just("authz.citadel/v1") | _scalars,
            "kind": st.sampled_from(["AuthorizationPolicy", "RequestAuthentication"]) | _scalars,
            "metadata": st.fixed_dictionaries({"name": st.just("p") | _scalars}) | _policy_values,
            "spec": _policy_values,
        }
    )
    as_yaml = document.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode())
    return as_yaml | document.map(json_bytes)


def crasher_files(target: str) -> list[Any]:
    """The kept crash inputs of one fuzz target (tests/fixtures/crashers/<target>/)."""
    from pathlib import Path

    directory = Path(__file__).resolve().parents[1] / "fixtures" / "crashers" / target
    return sorted(directory.glob("crash-*"))
