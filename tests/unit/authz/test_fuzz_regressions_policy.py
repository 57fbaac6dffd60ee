"""Hostile policy files get a PolicyError, never another exception.

Properties (hypothesis) over whole policy documents and raw bytes, and the replay of every
crash the coverage-guided fuzzer (tests/fuzz/fuzz_policy.py) found:

* ``policy/crash-bae581b3…``: a YAML mapping with a *list* as a key reached the loader's
  duplicate-key check, which put it in a set: ``TypeError: unhashable type: 'list'``
  instead of a PolicyError (fixed in ``citadel.authz.yaml_fields.StrictLoader``);
* ``policy/crash-14fb04a8…``: a ``jwksUri`` with a malformed bracketed host
  (``https://issuer[].example/...``) made ``urllib.parse.urlsplit`` raise ValueError out of
  the loader (fixed in ``citadel.authz.request_authentication_spec``; a bad port, which
  used to pass the load and fail at fetch time, is now refused at load too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citadel.authz.errors import PolicyError
from citadel.authz.policy_loader import parse_policy_text
from tests.fuzz.strategies import FUZZ_SETTINGS, crasher_files, policy_documents
from tests.fuzz.targets import policy as target


@pytest.mark.parametrize("path", crasher_files("policy"), ids=lambda p: p.name[:14])
def test_policy_crasher_now_gets_a_policy_error(path: Path) -> None:
    with pytest.raises(PolicyError):
        parse_policy_text(path.read_bytes().decode("utf-8", errors="replace"), "crash.yaml")
    target.one_input(path.read_bytes())


@pytest.mark.parametrize(
    "text",
    ["? [a, b]\n: c\n", "? {a: 1}\n: c\n", "{[1]: x}\n", "spec:\n  ? [rules]\n  : []\n"],
    ids=["list-key", "mapping-key", "flow-list-key", "nested-list-key"],
)
def test_a_mapping_with_an_unhashable_key_is_a_policy_error(text: str) -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy_text(text, "p.yaml")


@pytest.mark.parametrize(
    "uri",
    ["https://issuer[].example/jwks", "https://[zz]/jwks", "https://h:99999/j", "https://h:x/j"],
    ids=["empty-brackets", "bad-ipv6", "port-out-of-range", "port-not-a-number"],
)
def test_a_malformed_jwks_uri_is_a_policy_error(uri: str) -> None:
    rule = {"issuer": "https://i.example", "audiences": ["a"], "jwksUri": uri}
    document = {
        "apiVersion": "authz.citadel/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "jwt"},
        "spec": {"jwtRules": [rule]},
    }
    with pytest.raises(PolicyError, match=r"jwksUri: must be an http\(s\) URL"):
        parse_policy_text(json.dumps(document), "p.yaml")


@FUZZ_SETTINGS
@given(policy_documents())
def test_any_policy_document_is_loaded_or_refused_with_a_policy_error(data: bytes) -> None:
    target.one_input(data)


@FUZZ_SETTINGS
@given(st.binary(max_size=512))
def test_any_bytes_are_loaded_or_refused_with_a_policy_error(data: bytes) -> None:
    target.one_input(data)
