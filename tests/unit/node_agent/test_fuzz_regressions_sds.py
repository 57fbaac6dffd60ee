"""Hostile SDS clients: a stream refuses a bad request with SdsRequestError, never crashes,
and never pushes a secret that fails the push gate (the target checks every response).

Properties over scripts of SotW and Delta requests (any names, nonces, versions, NACKs, a
missing node, a foreign type URL) interleaved with cache changes (good, expired and
mismatched secrets). The coverage-guided fuzzer (tests/fuzz/fuzz_sds.py) found no crash in
its runs so far; a crash it finds goes to tests/fixtures/crashers/sds/ with a replay
test here (see tests/unit/authz/test_fuzz_regressions_policy.py).
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2
from hypothesis import given
from hypothesis import strategies as st

from node_agent.sds.envoy_secrets import SECRET_TYPE_URL
from tests.fuzz.strategies import FUZZ_SETTINGS
from tests.fuzz.targets import sds as target

FILES = target.FILES
NAMES = st.sampled_from(
    [
        "default",
        "ROOTCA",
        f"file-cert:{FILES}/cert.pem~{FILES}/key.pem",
        f"file-cert:{FILES}/cert.pem~{FILES}/missing.pem",
        f"file-root:{FILES}/root.pem",
        f"file-root:{FILES}/junk.pem",
        f"file-root:{FILES}/../etc/passwd",
        "file-root:/etc/ssl/private/key.pem",
        "file-cert:relative.pem~key.pem",
        "file-cert:/no-separator",
        "file-root:/a\0b",
        "ALL",
        "spiffe://example.org",
        "",
        "x" * 5000,
    ]
) | st.text(max_size=12)
NONCES = st.sampled_from(["", "n1", "n2", "n3", "n4", "n9", "stale"])
NODES = st.sampled_from([None, base_pb2.Node(id="web", cluster="c"), base_pb2.Node(cluster="c")])
TYPE_URLS = st.sampled_from([SECRET_TYPE_URL, "", "type.googleapis.com/envoy.config.cluster.v3"])
ERRORS = st.none() | st.builds(status_pb2.Status, code=st.integers(0, 16), message=st.text())


def _sotw(names: list[str], version: str, nonce: str, node: Any, type_url: str, error: Any) -> Any:
    request = discovery_pb2.DiscoveryRequest(
        resource_names=names, version_info=version, response_nonce=nonce, type_url=type_url
    )
    if node is not None:
        request.node.CopyFrom(node)
    if error is not None:
        request.error_detail.CopyFrom(error)
    return request


def _delta(
    subscribe: list[str],
    unsubscribe: list[str],
    initial: dict[str, str],
    nonce: str,
    node: Any,
    type_url: str,
    error: Any,
) -> Any:
    request = discovery_pb2.DeltaDiscoveryRequest(
        resource_names_subscribe=subscribe,
        resource_names_unsubscribe=unsubscribe,
        initial_resource_versions=initial,
        response_nonce=nonce,
        type_url=type_url,
    )
    if node is not None:
        request.node.CopyFrom(node)
    if error is not None:
        request.error_detail.CopyFrom(error)
    return request


SOTW = st.builds(
    _sotw, st.lists(NAMES, max_size=4), st.text(max_size=4), NONCES, NODES, TYPE_URLS, ERRORS
)
DELTA = st.builds(
    _delta,
    st.lists(NAMES, max_size=3),
    st.lists(NAMES, max_size=2),
    st.dictionaries(NAMES, st.text(max_size=3), max_size=2),
    NONCES,
    NODES,
    TYPE_URLS,
    ERRORS,
)
CHANGES = st.integers(0, 255).map(lambda n: b"!" + bytes([n]))


def _script(first: bytes, steps: list[Any]) -> bytes:
    parts = [s if isinstance(s, bytes) else s.SerializeToString() for s in steps]
    return first + target.SEPARATOR.join(parts)


@FUZZ_SETTINGS
@given(st.lists(SOTW | CHANGES, min_size=1, max_size=10))
def test_any_sotw_request_script_is_served_or_refused_with_a_typed_error(steps: list[Any]) -> None:
    target.one_input(_script(b"\0", steps))


@FUZZ_SETTINGS
@given(st.lists(DELTA | CHANGES, min_size=1, max_size=10))
def test_any_delta_request_script_is_served_or_refused_with_a_typed_error(steps: list[Any]) -> None:
    target.one_input(_script(b"\1", steps))


@FUZZ_SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_as_sds_requests_are_served_or_refused(data: bytes) -> None:
    target.one_input(data)
