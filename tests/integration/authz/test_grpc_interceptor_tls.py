"""The interceptors (sync and aio) on real TLS gRPC servers bound to 127.0.0.1:0."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from citadel.authz.enforcer import EnforcerOptions
from citadel.authz.method_table import DEFAULT_CA_METHOD_RULES, MethodRule, MethodTable
from citadel.authz.policy_store import PolicyStore
from citadel.authz.policy_watcher import PolicyWatcher
from citadel.identity.clock import ManualClock
from citadel.identity.spiffe_id import TrustDomain
from tests.unit.authz.conftest import BACKEND, FRONTEND, Pki, allow_policy, request_authentication
from tests.unit.authz.servers import (
    HEALTH_CHECK,
    WHO,
    WHO_STREAM,
    Recorder,
    health_check,
    secure_channel,
    tls_grpc_server,
)
from tests.unit.authz.tokens import ISSUER, Signer, jwks_of, standard_claims

KINDS = ["sync", "aio"]
OPTIONS = EnforcerOptions(trust_domains=frozenset({TrustDomain("example.org")}))


@pytest.fixture
def store(policy_dir: Path, clock: ManualClock, signer: Signer) -> PolicyStore:
    (policy_dir / "authn.yaml").write_text(request_authentication(jwks=jwks_of(signer)))
    (policy_dir / "allow.yaml").write_text(
        allow_policy("frontend-echo", principals=[FRONTEND], grpc_methods=["/test.Echo/*"])
    )
    (policy_dir / "alice.yaml").write_text(
        allow_policy("alice", request_principals=[f"{ISSUER}/alice"], grpc_methods=[WHO])
    )
    return PolicyStore(policy_dir, clock=clock, options=OPTIONS)


def _unary(channel: grpc.Channel, method: str, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    call: Any = channel.unary_unary(method)
    return json.loads(call(b"", metadata=metadata, timeout=10))


def _stream(channel: grpc.Channel, method: str) -> list[bytes]:
    call: Any = channel.unary_stream(method)
    return list(call(b"", timeout=10))


@pytest.mark.parametrize("kind", KINDS)
def test_allowed_call_reaches_handler_with_the_verified_identity(
    kind: str, store: PolicyStore, pki: Pki
) -> None:
    with (
        tls_grpc_server(kind, store, server_leaf=pki.server, roots=pki.ca.cert_pem) as port,
        secure_channel(port, pki.ca, pki.frontend) as channel,
    ):
        assert _unary(channel, WHO) == {"principal": FRONTEND, "request_principal": None}


@pytest.mark.parametrize("kind", KINDS)
def test_server_streaming_call_is_enforced(kind: str, store: PolicyStore, pki: Pki) -> None:
    with tls_grpc_server(kind, store, server_leaf=pki.server, roots=pki.ca.cert_pem) as port:
        with secure_channel(port, pki.ca, pki.frontend) as channel:
            replies = _stream(channel, WHO_STREAM)
            assert [json.loads(r)["principal"] for r in replies] == [FRONTEND, FRONTEND]
        with secure_channel(port, pki.ca, pki.backend) as channel:
            with pytest.raises(grpc.RpcError) as info:
                _stream(channel, WHO_STREAM)
            assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("kind", KINDS)
def test_jwt_from_metadata_sets_the_request_principal(
    kind: str, store: PolicyStore, pki: Pki, clock: ManualClock, signer: Signer
) -> None:
    metadata = (("authorization", f"Bearer {signer.token(standard_claims(clock.now()))}"),)
    with (
        tls_grpc_server(kind, store, server_leaf=pki.server, roots=pki.ca.cert_pem) as port,
        secure_channel(port, pki.ca, pki.backend) as channel,
    ):
        assert _unary(channel, WHO, metadata) == {
            "principal": BACKEND,
            "request_principal": f"{ISSUER}/alice",
        }


@pytest.mark.parametrize("kind", KINDS)
def test_denied_call_gets_permission_denied_with_a_short_message(
    kind: str, store: PolicyStore, pki: Pki
) -> None:
    recorder = Recorder(store)
    with (
        tls_grpc_server(kind, recorder, server_leaf=pki.server, roots=pki.ca.cert_pem) as port,
        secure_channel(port, pki.ca, pki.backend) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        _unary(channel, WHO)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert info.value.details() == "permission denied"
    assert recorder.last_kind == "no_allow_match"


@pytest.mark.parametrize("kind", KINDS)
def test_missing_required_jwt_is_unauthenticated(
    kind: str, store: PolicyStore, pki: Pki, policy_dir: Path, signer: Signer
) -> None:
    (policy_dir / "authn.yaml").write_text(
        request_authentication(jwks=jwks_of(signer), required=True)
    )
    assert store.reload()
    with (
        tls_grpc_server(kind, store, server_leaf=pki.server, roots=pki.ca.cert_pem) as port,
        secure_channel(port, pki.ca, pki.frontend) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        _unary(channel, WHO)
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert info.value.details() == "unauthenticated"


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_jwt_is_unauthenticated_even_for_an_allowed_peer(
    kind: str, store: PolicyStore, pki: Pki, clock: ManualClock, signer: Signer
) -> None:
    expired = signer.token(standard_claims(clock.now(), exp=int(clock.now().timestamp()) - 60))
    with (
        tls_grpc_server(kind, store, server_leaf=pki.server, roots=pki.ca.cert_pem) as port,
        secure_channel(port, pki.ca, pki.frontend) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        _unary(channel, WHO, (("authorization", f"Bearer {expired}"),))
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("kind", KINDS)
def test_exempt_method_skips_authz(kind: str, store: PolicyStore, pki: Pki) -> None:
    with (
        tls_grpc_server(
            kind, store, server_leaf=pki.server, roots=pki.ca.cert_pem, exempt=(HEALTH_CHECK,)
        ) as port,
        secure_channel(port, pki.ca, pki.backend) as channel,
    ):
        assert health_check(channel).status == 1  # SERVING
        with pytest.raises(grpc.RpcError) as info:
            _unary(channel, WHO)
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("kind", KINDS)
def test_method_table_guards_ca_rpcs(kind: str, pki: Pki) -> None:
    table = MethodTable(
        {**DEFAULT_CA_METHOD_RULES, "/test.Echo/*": MethodRule(allow_admin=True)},
        admin_principals=[BACKEND],
    )
    with tls_grpc_server(kind, table, server_leaf=pki.server, roots=pki.ca.cert_pem) as port:
        with secure_channel(port, pki.ca, pki.frontend) as channel:
            assert health_check(channel).status == 1
            with pytest.raises(grpc.RpcError) as info:
                _unary(channel, WHO)
            assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
        with secure_channel(port, pki.ca, pki.backend) as channel:
            assert _unary(channel, WHO)["principal"] == BACKEND


def test_default_ca_table_denies_unlisted_methods(pki: Pki) -> None:
    with (
        tls_grpc_server(
            "sync", MethodTable(), server_leaf=pki.server, roots=pki.ca.cert_pem
        ) as port,
        secure_channel(port, pki.ca, pki.frontend) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        _unary(channel, WHO)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_policy_change_applies_to_a_running_server(
    store: PolicyStore, pki: Pki, policy_dir: Path
) -> None:
    with (
        PolicyWatcher(store, debounce=timedelta(milliseconds=50)),
        tls_grpc_server("sync", store, server_leaf=pki.server, roots=pki.ca.cert_pem) as port,
        secure_channel(port, pki.ca, pki.backend) as channel,
    ):
        with pytest.raises(grpc.RpcError):
            _unary(channel, WHO)
        (policy_dir / "backend.yaml").write_text(
            allow_policy("backend", principals=[BACKEND], grpc_methods=[WHO])
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                assert _unary(channel, WHO)["principal"] == BACKEND
                break
            except grpc.RpcError:
                time.sleep(0.05)
        else:
            pytest.fail("the new policy was not applied within 10 s")
