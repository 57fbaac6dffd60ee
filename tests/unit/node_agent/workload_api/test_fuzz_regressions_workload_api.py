"""Hostile Workload API requests get a typed refusal (never INTERNAL, never a crash).

Properties over JWTSVIDRequest / ValidateJWTSVIDRequest / X509SVIDRequest fields (any
audiences, SPIFFE IDs, tokens — also properly signed tokens with hostile claims), with and
without the security header, from an attested and an unknown peer. The coverage-guided
fuzzer (tests/fuzz/fuzz_workload_api.py) found no crash in its runs so far; a crash it finds
goes to tests/fixtures/crashers/workload_api/ with a replay test here.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from citadel._proto import workload_pb2
from tests.fuzz.strategies import (
    FUZZ_SETTINGS,
    jose_claims,
    jose_header,
    json_bytes,
)
from tests.fuzz.targets import workload_api as target
from tests.fuzz.targets.jwt_svid import AUDIENCE

SPIFFE_IDS = st.sampled_from(
    [target.WORKLOAD, "spiffe://example.org", "spiffe://other.org/x", "not-an-id", ""]
) | st.text(max_size=20)
AUDIENCES = st.lists(
    st.sampled_from([AUDIENCE, "", "a" * 1025]) | st.text(max_size=10), max_size=40
)
TOKENS = st.builds(
    lambda header, claims: (json_bytes(header) + b"\0" + json_bytes(claims)).decode(
        "utf-8", errors="replace"
    ),
    jose_header(["ES256", "PS256", "none"], ["ec", "rsa", "minting"]),
    jose_claims([target.WORKLOAD, "spiffe://other.org/x"], [AUDIENCE, "x"], ["i"]),
) | st.text(max_size=60)
MODES = st.sampled_from([0x00, 0x40, 0x80])  # attested with header / unknown peer / no header


def _call(method_index: int, mode: int, request: Any) -> None:
    target.one_input(bytes([method_index | mode]) + request.SerializeToString())


@FUZZ_SETTINGS
@given(MODES, AUDIENCES, SPIFFE_IDS)
def test_any_fetch_jwt_svid_request_is_answered_or_refused_with_a_typed_status(
    mode: int, audiences: list[str], spiffe_id: str
) -> None:
    _call(0, mode, workload_pb2.JWTSVIDRequest(audience=audiences, spiffe_id=spiffe_id))


@FUZZ_SETTINGS
@given(MODES, st.sampled_from([AUDIENCE, ""]) | st.text(max_size=10), TOKENS)
def test_any_validate_jwt_svid_request_is_answered_or_refused_with_a_typed_status(
    mode: int, audience: str, svid: str
) -> None:
    _call(1, mode, workload_pb2.ValidateJWTSVIDRequest(audience=audience, svid=svid))


@FUZZ_SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_as_a_workload_api_request_get_a_typed_status(data: bytes) -> None:
    target.one_input(data)
