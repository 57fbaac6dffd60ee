"""The client library and the ``citadel token`` / ``citadel csr`` commands against a real
server."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.client import (
    BearerToken,
    ClientCertificate,
    CsrClient,
    CsrRejectedError,
    JoinToken,
    ServerUnreachableError,
)
from citadel.identity.chain import verify_svid_chain
from citadel.identity.keys import (
    KeyType,
    generate_private_key,
    load_private_key_pem,
    private_key_to_pkcs8_pem,
    public_keys_equal,
)
from citadel.identity.pem import load_certificates_pem
from citadel.identity.spiffe_id import SpiffeId
from citadel.server.rate_limit import RateLimit
from tests.integration.server.conftest import ServedCa, ServeFactory
from tests.integration.server.serve_process import citadel

VM = SpiffeId.parse("spiffe://cluster.local/ns/vm/sa/db")


def _root_file(served: ServedCa, tmp_path: Path) -> Path:
    path = tmp_path / "root.pem"
    path.write_bytes(served.root_pem)
    return path


def _request(
    served: ServedCa,
    tmp_path: Path,
    out: Path,
    *credential: str,
    server: str = "",
    spiffe_id: SpiffeId = VM,
) -> tuple[int, str, str]:
    result = citadel(
        served.ca.config.data_dir,
        "csr", "request", "--server", server or served.target,
        "--ca-cert", str(_root_file(served, tmp_path)), *credential,
        "--spiffe-id", str(spiffe_id), "--server-name", "localhost", "--out", str(out),
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def _check_files(out: Path, served: ServedCa, spiffe_id: SpiffeId) -> None:
    key = load_private_key_pem((out / "key.pem").read_bytes())
    chain = load_certificates_pem((out / "cert-chain.pem").read_bytes())
    roots = load_certificates_pem((out / "root-cert.pem").read_bytes())
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600
    assert verify_svid_chain(chain[0], chain[1:], roots, at=served.clock.now()) == spiffe_id
    assert public_keys_equal(chain[0].public_key(), key)  # type: ignore[arg-type]


def test_token_create_then_csr_request_with_the_join_token(
    served: ServedCa, tmp_path: Path
) -> None:
    created = citadel(
        served.ca.config.data_dir, "token", "create", "--spiffe-id", str(VM), "--ttl", "10m"
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    out = tmp_path / "svid"

    code, stdout, stderr = _request(served, tmp_path, out, "--join-token", token)

    assert code == 0, stderr
    assert "issued spiffe://cluster.local/ns/vm/sa/db" in stdout
    _check_files(out, served, VM)
    again, _, stderr = _request(served, tmp_path, tmp_path / "again", "--join-token", token)
    assert again == 1
    assert "UNAUTHENTICATED" in stderr
    assert "Traceback" not in stderr


def test_join_tokens_are_stored_only_as_hashes(served: ServedCa) -> None:
    created = citadel(served.ca.config.data_dir, "token", "create", "--spiffe-id", str(VM))
    token = created.stdout.strip()
    database = served.ca.config.data_dir / "citadel.db"
    with sqlite3.connect(database) as connection:
        dump = "\n".join(connection.iterdump())
    assert token not in dump
    assert hashlib.sha256(token.encode()).hexdigest() in dump


def test_csr_request_with_a_token_file(served: ServedCa, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(served.k8s_token("vm", "db"))
    out = tmp_path / "svid"
    code, _, stderr = _request(served, tmp_path, out, "--token-file", str(token_file))
    assert code == 0, stderr
    _check_files(out, served, VM)


def test_csr_request_renews_with_the_existing_svid_over_mtls(
    served: ServedCa, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(served.k8s_token("vm", "db"))
    first = tmp_path / "first"
    assert _request(served, tmp_path, first, "--token-file", str(token_file))[0] == 0
    renewed = tmp_path / "renewed"

    code, _, stderr = _request(
        served, tmp_path, renewed, "--cert", str(first / "cert-chain.pem"),
        "--key", str(first / "key.pem"), server=served.mtls_target,
    )  # fmt: skip

    assert code == 0, stderr
    _check_files(renewed, served, VM)
    assert (renewed / "key.pem").read_bytes() != (first / "key.pem").read_bytes()


def test_csr_request_needs_exactly_one_credential(served: ServedCa, tmp_path: Path) -> None:
    code, _, stderr = _request(served, tmp_path, tmp_path / "out")
    assert code == 2
    assert "exactly one credential" in stderr


def test_client_reports_a_refusal_with_its_code(served: ServedCa) -> None:
    client = CsrClient(
        served.target,
        served.root_pem,
        BearerToken(served.k8s_token("vm", "db")),
        server_name="localhost",
        clock=served.clock,
    )
    with client, pytest.raises(CsrRejectedError) as caught:
        client.request(
            SpiffeId.parse("spiffe://cluster.local/ns/vm/sa/other"),
            generate_private_key(KeyType.EC_P256),
        )
    assert caught.value.code == "PERMISSION_DENIED"


def test_client_reports_the_retry_hint_of_a_rate_limit(serve: ServeFactory) -> None:
    served = serve(identity_limit=RateLimit(rate=0.01, burst=1))
    client = CsrClient(
        served.target,
        served.root_pem,
        BearerToken(served.k8s_token("vm", "db")),
        server_name="localhost",
        clock=served.clock,
    )
    with client:
        client.request(VM, generate_private_key(KeyType.EC_P256))
        with pytest.raises(CsrRejectedError) as caught:
            client.request(VM, generate_private_key(KeyType.EC_P256))
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= timedelta(seconds=1)


def test_client_reports_an_unreachable_server(served: ServedCa) -> None:
    created = served.join_token(str(VM))
    client = CsrClient(
        "127.0.0.1:1",
        served.root_pem,
        JoinToken(created.token),
        server_name="localhost",
        timeout=timedelta(seconds=2),
    )
    with client, pytest.raises(ServerUnreachableError):
        client.request(VM, generate_private_key(KeyType.EC_P256))


def test_client_library_renews_over_mtls(served: ServedCa) -> None:
    key = generate_private_key(KeyType.EC_P256)
    with CsrClient(
        served.target,
        served.root_pem,
        JoinToken(served.join_token(str(VM)).token),
        server_name="localhost",
        clock=served.clock,
    ) as client:
        svid = client.request(VM, key, timedelta(hours=1))
    identity = ClientCertificate(chain_pem=svid.chain_pem, key_pem=private_key_to_pkcs8_pem(key))
    with CsrClient(
        served.mtls_target, served.root_pem, identity, server_name="localhost", clock=served.clock
    ) as client:
        renewed = client.request(VM, generate_private_key(KeyType.EC_P256))
    assert renewed.serial_hex != svid.serial_hex
    assert renewed.not_after - svid.not_after < timedelta(days=2)
