from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from citadel.authz.cli import authz
from citadel.identity.clock import ManualClock
from tests.unit.authz.conftest import (
    BACKEND,
    FRONTEND,
    WritePolicy,
    allow_policy,
    request_authentication,
)
from tests.unit.authz.tokens import ISSUER, Signer, jwks_of, standard_claims


def _run(*args: str) -> Result:
    return CliRunner().invoke(authz, list(args))


@pytest.fixture
def policies(write_policy: WritePolicy, signer: Signer) -> Path:
    write_policy(
        "allow.yaml",
        allow_policy("allow-frontend-get", principals=[FRONTEND], grpc_methods=["/pkg.Svc/Get"]),
    )
    write_policy("ra.yaml", request_authentication(jwks=jwks_of(signer)))
    return write_policy(
        "alice.yaml", allow_policy("alice", request_principals=[f"{ISSUER}/alice"])
    ).parent


def test_check_allowed_prints_the_rule_and_exits_0(policies: Path) -> None:
    result = _run(
        "check", "--policy", str(policies), "--principal", FRONTEND, "--grpc-method", "/pkg.Svc/Get"
    )
    assert result.exit_code == 0, result.output
    assert "decision           ALLOW" in result.stdout
    assert "policy             allow-frontend-get" in result.stdout
    assert '"grpcMethods": ["/pkg.Svc/Get"]' in result.stdout


def test_check_denied_exits_3_and_json_explains(policies: Path) -> None:
    result = _run(
        "check",
        "--policy",
        str(policies),
        "--principal",
        BACKEND,
        "--grpc-method",
        "/pkg.Svc/Get",
        "--output",
        "json",
    )
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["allowed"] is False
    assert report["reason"] == "no_allow_match"
    assert report["principal"] == BACKEND
    assert report["rule_text"] is None


def test_check_with_jwt_file(
    policies: Path, tmp_path: Path, signer: Signer, clock: ManualClock
) -> None:
    token_file = tmp_path / "token.jwt"
    token_file.write_text(signer.token(standard_claims(clock.now())) + "\n")
    args = [
        "check",
        "--policy",
        str(policies),
        "--principal",
        BACKEND,
        "--jwt",
        str(token_file),
        "--method",
        "GET",
        "--path",
        "/x",
        "--output",
        "json",
    ]
    allowed = _run(*args, "--at", clock.now().isoformat())
    assert allowed.exit_code == 0, allowed.output
    report = json.loads(allowed.stdout)
    assert (report["policy"], report["request_principal"]) == ("alice", f"{ISSUER}/alice")
    expired = _run(*args, "--at", "2027-01-01T00:00:00Z")
    assert expired.exit_code == 3
    assert json.loads(expired.stdout)["reason"] == "token_expired"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--principal", "spiffe://example.org/ns/prod/sa/frontend/"],
            "path must not end with '/'",
        ),
        (["--principal", "https://example.org"], "not a valid SPIFFE ID"),
        (["--jwt", "/nonexistent/token"], "--jwt: cannot read"),
        (["--header", "novalue"], "NAME=VALUE"),
        (["--at", "yesterday"], "ISO 8601"),
        (["--source-ip", "10.0.0.1", "--trust-domain", "Bad_TD!"], "--trust-domain"),
    ],
    ids=[
        "principal-trailing-slash",
        "principal-not-spiffe",
        "unreadable-jwt",
        "bad-header",
        "bad-time",
        "bad-trust-domain",
    ],
)
def test_check_bad_input_exits_2(policies: Path, extra: list[str], message: str) -> None:
    result = _run("check", "--policy", str(policies), *extra)
    assert result.exit_code == 2
    assert message in result.stderr


def test_check_with_malformed_policy_exits_2_naming_file_and_field(
    write_policy: WritePolicy, policy_dir: Path
) -> None:
    write_policy("bad.yaml", allow_policy("x", principals=["spiffe://example.org/a/"]))
    result = _run("check", "--policy", str(policy_dir), "--principal", FRONTEND)
    assert result.exit_code == 2
    assert "bad.yaml: spec.rules[0].from[0].source.principals[0]" in result.stderr


def test_check_with_missing_policy_directory_exits_2(tmp_path: Path) -> None:
    result = _run("check", "--policy", str(tmp_path / "nope"), "--principal", FRONTEND)
    assert result.exit_code == 2
    assert "cannot list directory" in result.stderr


def test_check_default_action_allow(policy_dir: Path) -> None:
    assert _run("check", "--policy", str(policy_dir), "--principal", FRONTEND).exit_code == 3
    result = _run(
        "check", "--policy", str(policy_dir), "--principal", FRONTEND, "--default-action", "allow"
    )
    assert result.exit_code == 0


def test_lint_exit_codes(write_policy: WritePolicy, policy_dir: Path, tmp_path: Path) -> None:
    write_policy("a.yaml", allow_policy("a", principals=[FRONTEND]))
    clean = _run("lint", str(policy_dir))
    assert (clean.exit_code, clean.stdout.strip()) == (0, "0 error(s), 0 warning(s)")
    write_policy("b.yaml", allow_policy("b", principals=[BACKEND], action="DENY"))
    write_policy("c.yaml", allow_policy("c", principals=[BACKEND]))
    shadowed = _run("lint", str(policy_dir))
    assert shadowed.exit_code == 1
    assert "error: " in shadowed.stdout and "never allows anything" in shadowed.stdout
    assert _run("lint", str(tmp_path / "absent")).exit_code == 2


@pytest.mark.parametrize(
    ("listen", "message"),
    [("0.0.0.0:9191", "loopback"), ("nonsense", "HOST:PORT"), ("unix:relative", "absolute")],
    ids=["non-loopback", "malformed", "relative-unix"],
)
def test_serve_refuses_bad_listen_addresses(policy_dir: Path, listen: str, message: str) -> None:
    result = _run("serve", "--policy", str(policy_dir), "--listen", listen)
    assert result.exit_code == 2
    assert message in result.stderr


def test_serve_refuses_malformed_policy(write_policy: WritePolicy, policy_dir: Path) -> None:
    write_policy("bad.yaml", "spec: [")
    result = _run("serve", "--policy", str(policy_dir), "--listen", "127.0.0.1:0")
    assert result.exit_code == 2
    assert "bad.yaml: not valid YAML" in result.stderr


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "citadel.authz.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "check" in done.stdout and "lint" in done.stdout and "serve" in done.stdout
