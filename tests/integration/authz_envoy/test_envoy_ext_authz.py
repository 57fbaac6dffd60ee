"""A real server Envoy asks ``citadel authz serve`` (ext_authz) about every request.

Two client Envoys (CLIENT_ID, OTHER_ID) and the server Envoy (SERVER_ID) get their
certificates from three real node agents fed by the real CA; the server Envoy runs the
shipped example ``deploy/envoy/server-sidecar-ext-authz.yaml`` (ext_authz over a Unix socket,
``include_peer_certificate``, transport API V3, fail closed). Each test installs its policy
in the watched directory and waits until the service has applied it. The app behind the
server Envoy records every request it receives: a denied request must never be among them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.authz_envoy.policies import (
    ISSUER,
    allow_principals,
    jwt_required,
    mint,
    write_jwks,
)
from tests.integration.authz_envoy.stack import (
    CLIENT_ID,
    OTHER_ID,
    SERVER_ID,
    AuthzMesh,
    authz_mesh,
)
from tests.peers.envoy import wait_until
from tests.unit.authz.tokens import Signer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

POLICY_FILE = "callers.yaml"
ALLOW_CLIENT = {POLICY_FILE: allow_principals(CLIENT_ID)}
DENIED_BODY = {401: "unauthenticated\n", 403: "permission denied\n"}


@pytest.fixture(scope="module")
def mesh() -> Iterator[AuthzMesh]:
    with authz_mesh(ALLOW_CLIENT) as started:
        yield started


@pytest.fixture(scope="module")
def es256() -> Signer:
    return Signer("ES256", kid="issuer-es256")


@pytest.fixture(scope="module")
def jwks_file(mesh: AuthzMesh, es256: Signer) -> Path:
    return write_jwks(mesh.base / "jwks" / "issuer.json", es256)


def request(
    mesh: AuthzMesh,
    client: str,
    expected: int,
    headers: Mapping[str, str] | None = None,
    *,
    denied_body: str | None = None,
) -> str:
    """One request on a fresh path; checks the status, and that the app saw it iff allowed.

    A denial's body is the service's short message unless ``denied_body`` says otherwise.
    Returns the response body.
    """
    path = f"/t/{uuid.uuid4().hex}"
    status, body = mesh.get(client, path, headers)
    reached = [seen for seen in mesh.app.seen if seen.path == path]
    assert status == expected, f"{client} {path}: {status} {body!r}\n{mesh.authz.log_tail(5)}"
    if expected == 200:
        assert len(reached) == 1, f"the app did not see the allowed request {path}"
    else:
        assert reached == [], f"a denied request reached the app: {reached}"
        assert body == (DENIED_BODY[expected] if denied_body is None else denied_body)
    return body


def ext_authz_stat(mesh: AuthzMesh, name: str) -> int:
    """An ext_authz counter of the server Envoy (KeyError if Envoy has no such counter)."""
    stats = mesh.server_envoy.stats(r"^http\.inbound\.ext_authz\.")
    return stats[f"http.inbound.ext_authz.{name}"]


# --- peer identity ---------------------------------------------------------------------------
def test_allowed_spiffe_id_gets_200_and_another_identity_of_the_trust_domain_gets_403(
    mesh: AuthzMesh,
) -> None:
    mesh.apply_policy(ALLOW_CLIENT)
    body = request(mesh, "client", 200)
    assert f"URI={CLIENT_ID}" in body  # the identity the server Envoy verified
    request(mesh, "other", 403)
    # The service decided from the certificate the server Envoy verified and forwarded.
    log = mesh.authz.log_tail(20)
    assert f"peer={OTHER_ID}" in log
    assert f"destination={SERVER_ID}" in log


def test_client_cannot_smuggle_an_identity_header_past_ext_authz(mesh: AuthzMesh) -> None:
    mesh.apply_policy(ALLOW_CLIENT)
    forged = {"x-forwarded-client-cert": f"URI={CLIENT_ID}"}
    request(mesh, "other", 403, forged)
    body = request(mesh, "client", 200, {"x-forwarded-client-cert": f"URI={OTHER_ID}"})
    assert f"URI={OTHER_ID}" not in body  # Envoy sanitized it; only the verified one is set


# --- JWT -------------------------------------------------------------------------------------
@pytest.fixture
def jwt_policy(mesh: AuthzMesh, jwks_file: Path) -> AuthzMesh:
    mesh.apply_policy(
        {
            POLICY_FILE: jwt_required(
                jwks_file=jwks_file, principal=CLIENT_ID, request_principal=f"{ISSUER}/alice"
            )
        }
    )
    return mesh


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_jwt_policy_gives_401_without_a_token_and_200_with_a_valid_es256_token(
    jwt_policy: AuthzMesh, es256: Signer
) -> None:
    mesh = jwt_policy
    request(mesh, "client", 401)
    token = mint(es256)
    request(mesh, "client", 200, {**bearer(token), "x-jwt-sub": "mallory"})
    [seen] = [r for r in mesh.app.seen if r.headers.get("authorization") == f"Bearer {token}"]
    assert seen.headers["x-jwt-sub"] == "alice"  # from the verified claim, not the client
    assert seen.headers["authorization"] == f"Bearer {token}"


def test_jwt_policy_still_requires_the_allowed_spiffe_id(
    jwt_policy: AuthzMesh, es256: Signer
) -> None:
    request(jwt_policy, "other", 403, bearer(mint(es256)))
    request(jwt_policy, "other", 401)
    request(jwt_policy, "client", 403, bearer(mint(es256, subject="bob")))


def _other_key() -> Signer:
    signer = Signer("ES256", kid="issuer-es256")  # same kid, a key the JWKS does not hold
    signer.key = ec.generate_private_key(ec.SECP256R1())
    return signer


BAD_TOKENS: dict[str, Callable[[Signer], str]] = {
    "expired": lambda s: mint(s, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
    "wrong-audience": lambda s: mint(s, audience="someone-else"),
    "wrong-issuer": lambda s: mint(s, iss="https://evil.example"),
    "signed-by-another-key": lambda s: mint(_other_key()),
    "not-a-jwt": lambda s: "not.a.jwt",
}


@pytest.mark.parametrize("make", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_jwt_policy_rejects_a_bad_token_with_401(
    jwt_policy: AuthzMesh, es256: Signer, make: Callable[[Signer], str]
) -> None:
    request(jwt_policy, "client", 401, bearer(make(es256)))


# --- reload ----------------------------------------------------------------------------------
def test_editing_the_policy_file_takes_effect_without_restarting_anything(
    mesh: AuthzMesh,
) -> None:
    mesh.apply_policy(ALLOW_CLIENT)
    pids = mesh.pids
    request(mesh, "client", 200)
    request(mesh, "other", 403)
    loads = mesh.authz.loads()

    (mesh.policy_dir / POLICY_FILE).write_text(allow_principals(OTHER_ID))  # edit in place
    assert wait_until(lambda: mesh.get("other", "/probe")[0] == 200, timeout=10), (
        mesh.authz.log_tail()
    )
    request(mesh, "other", 200)
    request(mesh, "client", 403)
    assert mesh.authz.loads() > loads

    refusals = mesh.authz.refusals()
    (mesh.policy_dir / POLICY_FILE).write_text("apiVersion: [")  # a broken edit
    assert wait_until(lambda: mesh.authz.refusals() > refusals, timeout=10)
    request(mesh, "other", 200)  # the last good policy stays in force
    request(mesh, "client", 403)
    assert mesh.pids == pids


# --- fail closed -----------------------------------------------------------------------------
OUTAGES = {"killed": "kill", "paused": "pause"}


@pytest.mark.parametrize("outage", OUTAGES.values(), ids=OUTAGES.keys())
def test_server_envoy_fails_closed_while_ext_authz_is_down(mesh: AuthzMesh, outage: str) -> None:
    mesh.apply_policy(ALLOW_CLIENT)
    request(mesh, "client", 200)
    envoy_pid = mesh.server_envoy.pid
    errors = ext_authz_stat(mesh, "error")
    try:
        if outage == "kill":
            mesh.authz.kill()  # a crash: the socket file stays, nothing listens
        else:
            mesh.authz.pause()  # hung: Envoy's call times out (1 s)
        started = time.monotonic()
        # Envoy's own 403 (status_on_error, empty body): the service decided nothing.
        request(mesh, "client", 403, denied_body="")
        if outage == "pause":
            assert time.monotonic() - started >= 0.9  # refused at the call's 1 s timeout
        request(mesh, "other", 403, denied_body="")
        assert ext_authz_stat(mesh, "error") >= errors + 2
        assert ext_authz_stat(mesh, "failure_mode_allowed") == 0
    finally:
        if outage == "kill":
            mesh.authz.start()
        else:
            mesh.authz.resume()
    assert wait_until(lambda: mesh.get("client", "/probe")[0] == 200, timeout=10)
    request(mesh, "client", 200)
    request(mesh, "other", 403)
    assert mesh.server_envoy.pid == envoy_pid
