"""Workload API request handling (``node_agent.workload_api.servicer``).

The input's first byte picks the RPC (FetchJWTSVID, ValidateJWTSVID, FetchX509SVID,
FetchJWTBundles) and whether the call carries the security header; the rest is the wire
request (unparsable requests are skipped; a ValidateJWTSVID request whose ``svid`` is
``<header JSON> NUL <claims JSON>`` gets it properly signed by a trusted JWT key first).
The servicer runs against an in-memory identity source, attesting this very process.
A call may be refused, but only with a typed error: an abort with any code except
INTERNAL. Anything that escapes otherwise is a crash.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from citadel._proto import workload_pb2
from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import ManualClock
from citadel.identity.jwt_svid import PrivateKeyJwtSigner
from citadel.identity.keys import generate_private_key
from citadel.identity.selectors import Selector
from node_agent.attestation import PeerCredentials, PeerProcess, ProcFs
from node_agent.workload_api.peer_registry import PeerRegistry
from node_agent.workload_api.servicer import SECURITY_HEADER, WorkloadApiServicer
from tests.fixtures.pki import make_pki
from tests.fuzz.targets.jwt_svid import AUDIENCE, AUTHORITIES, NOW, TRUST_DOMAIN, signed_token
from tests.unit.node_agent.workload_api.fakes import (
    FakeIdentitySource,
    make_entry,
    svid_material,
)

__all__ = ["Aborted", "FakeContext", "one_input", "seeds"]

WORKLOAD = "spiffe://example.org/ns/fuzz/sa/workload"
_SELECTORS = frozenset({Selector.parse("unix:uid:4242")})
METHODS = ("FetchJWTSVID", "ValidateJWTSVID", "FetchX509SVID", "FetchJWTBundles")
_REQUESTS: dict[str, Any] = {
    "FetchJWTSVID": workload_pb2.JWTSVIDRequest,
    "ValidateJWTSVID": workload_pb2.ValidateJWTSVIDRequest,
    "FetchX509SVID": workload_pb2.X509SVIDRequest,
    "FetchJWTBundles": workload_pb2.JWTBundlesRequest,
}


class Aborted(Exception):
    """``context.abort`` was called (gRPC raises to end the call; so does the fake)."""


class FakeContext:
    """Enough of ``grpc.aio.ServicerContext`` for the servicer."""

    def __init__(self, peer: str, *, header: bool) -> None:
        self._peer = peer
        self._metadata = (SECURITY_HEADER,) if header else (("workload.spiffe.io", "false"),)
        self.code: grpc.StatusCode | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise Aborted(details)


class _FixedAttestor:
    def attest(self, peer: PeerProcess) -> frozenset[Selector]:
        return _SELECTORS


def _servicer() -> tuple[WorkloadApiServicer, FakeIdentitySource, str]:
    pki = make_pki("example.org", now=NOW)
    source = FakeIdentitySource(
        clock=ManualClock(NOW),
        signer=PrivateKeyJwtSigner("minting", generate_private_key()),
        bundles=[TrustBundle(TRUST_DOMAIN, (pki.root,), AUTHORITIES)],
    )
    entry = make_entry("fuzz", WORKLOAD, "unix:uid:4242")
    source.put(entry, svid_material(pki, entry.spiffe_id))
    registry = PeerRegistry()
    address = registry.new_address()
    me = os.getpid()
    registry.register(
        address,
        PeerProcess(
            PeerCredentials(me, os.getuid(), os.getgid()),
            os.pidfd_open(me),
            ProcFs().start_time(me),
        ),
    )
    servicer = WorkloadApiServicer(
        source=source, attestor=_FixedAttestor(), registry=registry, clock=ManualClock(NOW)
    )
    return servicer, source, f"unix-abstract:{address}"


SERVICER, SOURCE, PEER = _servicer()
_LOOP = asyncio.new_event_loop()


async def _call(method: str, request: Any, context: FakeContext) -> None:
    untyped: Any = context
    handler = getattr(SERVICER, method)
    if method.startswith("Fetch") and method != "FetchJWTSVID":
        stream = handler(request, untyped)
        try:
            await asyncio.wait_for(anext(stream), 5)
        finally:
            await stream.aclose()
        return
    await handler(request, untyped)


def one_input(data: bytes) -> None:
    if not data:
        return
    method = METHODS[data[0] % len(METHODS)]
    context = FakeContext(PEER if data[0] & 0x40 == 0 else "unix:/elsewhere", header=data[0] < 0x80)
    try:
        request = _REQUESTS[method].FromString(data[1:])
    except DecodeError:
        return
    if method == "ValidateJWTSVID" and "\0" in request.svid:
        header, _, claims = request.svid.partition("\0")
        request.svid = signed_token(header.encode(), claims.encode())
    SOURCE.mint_calls.clear()
    SOURCE.attested.clear()
    try:
        _LOOP.run_until_complete(_call(method, request, context))
    except Aborted:
        assert context.code is not None and context.code is not grpc.StatusCode.INTERNAL, (
            f"{method} answered INTERNAL to a hostile request"
        )


def seeds() -> Iterable[bytes]:
    exp = int(NOW.timestamp()) + 300
    yield b"\x00" + workload_pb2.JWTSVIDRequest(audience=["a", "b"]).SerializeToString()
    yield (
        b"\x00"
        + workload_pb2.JWTSVIDRequest(audience=["a"], spiffe_id=WORKLOAD).SerializeToString()
    )
    claims = f'{{"sub":"{WORKLOAD}","aud":["{AUDIENCE}"],"exp":{exp}}}'
    yield (
        b"\x01"
        + workload_pb2.ValidateJWTSVIDRequest(
            audience=AUDIENCE, svid='{"alg":"ES256","kid":"ec","typ":"JWT"}\0' + claims
        ).SerializeToString()
    )
    yield b"\x02" + workload_pb2.X509SVIDRequest().SerializeToString()
    yield b"\x03"
    yield b"\x82"
