"""FetchJWTSVID and ValidateJWTSVID: the audience rule and the named bad inputs."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest

from citadel._proto import workload_pb2
from citadel.identity.clock import ManualClock
from citadel.identity.jwt_svid import MAX_JWT_SVID_BYTES, PrivateKeyJwtSigner, mint_jwt_svid
from citadel.identity.keys import KeyType, generate_private_key
from citadel.identity.spiffe_id import SpiffeId
from node_agent.errors import CaUnreachableError
from tests.unit.node_agent.workload_api.fakes import FakeIdentitySource, make_entry
from tests.unit.node_agent.workload_api.harness import HEADER, channel_to, running_server, stub_for

ROOT_UID = "unix:uid:0"
WEB = "spiffe://example.org/ns/default/sa/web"
API = "spiffe://example.org/ns/default/sa/api"


def serve(
    source: FakeIdentitySource, clock: ManualClock, scenario: Callable[[Any], Awaitable[None]]
) -> None:
    async def main() -> None:
        async with running_server(source, clock=clock) as server, channel_to(server) as channel:
            await scenario(stub_for(channel))

    asyncio.run(main())


def expect_status(
    source: FakeIdentitySource,
    clock: ManualClock,
    call: Callable[[Any], Any],
    code: grpc.StatusCode,
    details: str | None = None,
) -> None:
    async def scenario(stub: Any) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await asyncio.wait_for(call(stub), 5)
        assert info.value.code() == code, info.value.details()
        if details is not None:
            assert details in (info.value.details() or "")

    serve(source, clock, scenario)


def validate_request(token: str, audience: str = "billing") -> Callable[[Any], Any]:
    def call(stub: Any) -> Any:
        request = workload_pb2.ValidateJWTSVIDRequest(audience=audience, svid=token)
        return stub.ValidateJWTSVID(request, metadata=HEADER)

    return call


@pytest.fixture
def registered(source: FakeIdentitySource) -> FakeIdentitySource:
    source.put(make_entry("web", WEB, ROOT_UID, hint="main"), None)
    return source


def test_fetch_jwt_svid_mints_one_token_per_identity_for_the_audiences(
    registered: FakeIdentitySource, clock: ManualClock
) -> None:
    registered.put(make_entry("api", API, ROOT_UID), None)

    async def scenario(stub: Any) -> None:
        request = workload_pb2.JWTSVIDRequest(audience=["billing", "audit"])
        response = await stub.FetchJWTSVID(request, metadata=HEADER)
        assert [(s.spiffe_id, s.hint) for s in response.svids] == [(WEB, "main"), (API, "")]
        payload = response.svids[0].svid.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert (claims["sub"], claims["aud"]) == (WEB, ["billing", "audit"])

    serve(registered, clock, scenario)
    assert registered.mint_calls == [
        (SpiffeId.parse(WEB), ("billing", "audit")),
        (SpiffeId.parse(API), ("billing", "audit")),
    ]


def test_fetch_jwt_svid_for_one_requested_identity(
    registered: FakeIdentitySource, clock: ManualClock
) -> None:
    registered.put(make_entry("api", API, ROOT_UID), None)

    async def scenario(stub: Any) -> None:
        request = workload_pb2.JWTSVIDRequest(audience=["billing"], spiffe_id=API)
        response = await stub.FetchJWTSVID(request, metadata=HEADER)
        assert [s.spiffe_id for s in response.svids] == [API]

    serve(registered, clock, scenario)


def test_fetch_jwt_svid_for_an_identity_not_entitled_is_permission_denied(
    registered: FakeIdentitySource, clock: ManualClock
) -> None:
    def call(stub: Any) -> Any:
        request = workload_pb2.JWTSVIDRequest(audience=["billing"], spiffe_id=API)
        return stub.FetchJWTSVID(request, metadata=HEADER)

    expect_status(registered, clock, call, grpc.StatusCode.PERMISSION_DENIED)
    assert registered.mint_calls == []


@pytest.mark.parametrize(
    ("audience", "spiffe_id", "details"),
    [
        ([], "", "audience must be specified"),
        ([""], "", "audience must not be empty"),
        (["billing", ""], "", "audience must not be empty"),
        ([f"a{i}" for i in range(40)], "", "at most 32 audiences"),
        (["x" * 2000], "", "at most 1024 characters"),
        (["billing"], "not-a-spiffe-id", "requested SPIFFE ID is invalid"),
    ],
    ids=[
        "no-audience",
        "empty-audience",
        "one-empty-audience",
        "too-many-audiences",
        "oversized-audience",
        "malformed-spiffe-id",
    ],
)
def test_bad_jwt_svid_request_is_invalid_argument(
    registered: FakeIdentitySource,
    clock: ManualClock,
    audience: list[str],
    spiffe_id: str,
    details: str,
) -> None:
    def call(stub: Any) -> Any:
        request = workload_pb2.JWTSVIDRequest(audience=audience, spiffe_id=spiffe_id)
        return stub.FetchJWTSVID(request, metadata=HEADER)

    expect_status(registered, clock, call, grpc.StatusCode.INVALID_ARGUMENT, details)
    assert registered.mint_calls == []


def test_ca_outage_while_minting_is_unavailable(
    registered: FakeIdentitySource, clock: ManualClock
) -> None:
    registered.mint_error = CaUnreachableError("connection refused by ca.example:15012")

    def call(stub: Any) -> Any:
        return stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=["b"]), metadata=HEADER)

    expect_status(
        registered, clock, call, grpc.StatusCode.UNAVAILABLE, "identity provider is unavailable"
    )


# --- ValidateJWTSVID -------------------------------------------------------------------------


def test_validate_returns_the_subject_and_every_claim(
    registered: FakeIdentitySource, clock: ManualClock, jwt_signer: PrivateKeyJwtSigner
) -> None:
    async def scenario(stub: Any) -> None:
        fetched = await stub.FetchJWTSVID(
            workload_pb2.JWTSVIDRequest(audience=["billing"]), metadata=HEADER
        )
        token = fetched.svids[0].svid
        response = await validate_request(token)(stub)
        assert response.spiffe_id == WEB
        claims = dict(response.claims)
        assert claims["sub"] == WEB
        assert list(claims["aud"]) == ["billing"]
        assert claims["exp"] == int((clock.now() + timedelta(minutes=5)).timestamp())

    serve(registered, clock, scenario)


def _token(signer: PrivateKeyJwtSigner, clock: ManualClock, audience: str = "billing") -> str:
    return mint_jwt_svid(
        signer, SpiffeId.parse(WEB), [audience], ttl=timedelta(minutes=5), now=clock.now()
    )


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_validate_jwt_signed_by_an_unknown_key_is_invalid_argument(
    registered: FakeIdentitySource, clock: ManualClock
) -> None:
    stranger = PrivateKeyJwtSigner("stranger", generate_private_key(KeyType.EC_P256))
    expect_status(
        registered,
        clock,
        validate_request(_token(stranger, clock)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "'stranger' is not in the trust bundle",
    )


def test_validate_alg_none_is_invalid_argument(
    registered: FakeIdentitySource, clock: ManualClock
) -> None:
    now = int(clock.now().timestamp())
    claims = {"sub": WEB, "aud": ["billing"], "exp": now + 300}
    token = f"{_segment({'alg': 'none', 'kid': 'jwt-key-1'})}.{_segment(claims)}."
    expect_status(
        registered, clock, validate_request(token), grpc.StatusCode.INVALID_ARGUMENT, "not allowed"
    )


def test_validate_expired_jwt_is_invalid_argument(
    registered: FakeIdentitySource, clock: ManualClock, jwt_signer: PrivateKeyJwtSigner
) -> None:
    token = _token(jwt_signer, clock)
    clock.advance(timedelta(minutes=10))
    expect_status(
        registered, clock, validate_request(token), grpc.StatusCode.INVALID_ARGUMENT, "expired"
    )


def test_validate_jwt_for_another_audience_is_invalid_argument(
    registered: FakeIdentitySource, clock: ManualClock, jwt_signer: PrivateKeyJwtSigner
) -> None:
    token = _token(jwt_signer, clock, audience="reports")
    expect_status(
        registered,
        clock,
        validate_request(token, audience="billing"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "does not include 'billing'",
    )


def test_validate_oversized_jwt_is_invalid_argument(
    registered: FakeIdentitySource, clock: ManualClock
) -> None:
    token = "e" * (MAX_JWT_SVID_BYTES + 100)
    expect_status(
        registered, clock, validate_request(token), grpc.StatusCode.INVALID_ARGUMENT, "larger than"
    )


def test_validate_huge_request_is_refused_by_the_transport(
    registered: FakeIdentitySource, clock: ManualClock
) -> None:
    token = "e" * (1024 * 1024)
    expect_status(registered, clock, validate_request(token), grpc.StatusCode.RESOURCE_EXHAUSTED)


@pytest.mark.parametrize(
    ("audience", "token", "details"),
    [
        ("", "a.b.c", "audience must be specified"),
        ("billing", "", "svid must be specified"),
        ("billing", "not-a-jwt", "three '.'-separated parts"),
    ],
    ids=["empty-audience", "empty-svid", "garbage-svid"],
)
def test_validate_bad_request_is_invalid_argument(
    registered: FakeIdentitySource, clock: ManualClock, audience: str, token: str, details: str
) -> None:
    expect_status(
        registered,
        clock,
        validate_request(token, audience=audience),
        grpc.StatusCode.INVALID_ARGUMENT,
        details,
    )
