"""``citadel authz``: check a request against a policy directory, lint it, or serve ext_authz.

Exit codes: ``check`` 0 allowed, 3 denied, 2 bad input; ``lint`` 0 clean (warnings allowed),
1 errors found, 2 bad input; ``serve`` 2 on bad input, 0 after SIGTERM/SIGINT.

Run as ``citadel authz ...`` or ``python -m citadel.authz.cli ...``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import click
from prometheus_client import start_http_server

from citadel.authz.enforcer import AccessRequest, Enforcer, EnforcerOptions
from citadel.authz.errors import JwksError, PolicyError
from citadel.authz.explain import access_report, report_rows
from citadel.authz.ext_authz_server import ExtAuthzServer, parse_listen_address
from citadel.authz.lint import lint_policy_dir
from citadel.authz.policy import Action, PolicySet
from citadel.authz.policy_loader import load_policy_dir
from citadel.authz.policy_store import PolicyStore
from citadel.authz.policy_watcher import PolicyWatcher
from citadel.identity.clock import Clock, ManualClock, SystemClock
from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.spiffe_id import SpiffeId, TrustDomain

__all__ = ["EXIT_ALLOWED", "EXIT_BAD_INPUT", "EXIT_DENIED", "authz", "main"]

EXIT_ALLOWED = 0
EXIT_LINT_ERRORS = 1
EXIT_BAD_INPUT = 2
EXIT_DENIED = 3
_MAX_JWT_FILE_BYTES = 64 * 1024


def _fail(message: str) -> click.exceptions.Exit:
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(EXIT_BAD_INPUT)


def _trust_domains(values: tuple[str, ...]) -> frozenset[TrustDomain] | None:
    if not values:
        return None
    try:
        return frozenset(TrustDomain.parse(v) for v in values)
    except InvalidSpiffeIdError as exc:
        raise _fail(f"--trust-domain: {exc.message}") from exc


def _options(default_action: str, trust_domain: tuple[str, ...]) -> EnforcerOptions:
    return EnforcerOptions(
        default_action=Action(default_action.upper()), trust_domains=_trust_domains(trust_domain)
    )


def _read_jwt(path: str) -> str:
    try:
        if path == "-":
            data = sys.stdin.read(_MAX_JWT_FILE_BYTES + 1)
        else:
            with Path(path).open(encoding="utf-8") as handle:
                data = handle.read(_MAX_JWT_FILE_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"--jwt: cannot read {path}: {exc}") from exc
    if len(data) > _MAX_JWT_FILE_BYTES:
        raise _fail(f"--jwt: {path} is larger than {_MAX_JWT_FILE_BYTES} bytes")
    token = data.strip()
    if not token:
        raise _fail(f"--jwt: {path} is empty")
    return token


def _clock(at: str | None) -> Clock:
    if at is None:
        return SystemClock()
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _fail(f"--at: {at!r} is not an ISO 8601 time") from exc
    return ManualClock(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _headers(values: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    headers: dict[str, list[str]] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _fail(f"--header: expected NAME=VALUE, got {item!r}")
        headers.setdefault(name.strip().lower(), []).append(value)
    return {k: tuple(v) for k, v in headers.items()}


def _token_headers(policies: PolicySet, token: str) -> dict[str, tuple[str, ...]]:
    """Place the token where the policy's JWT rules look for it (first prefix per header)."""
    out: dict[str, tuple[str, ...]] = {}
    for ra in policies.request_authentication:
        for rule in ra.jwt_rules:
            for location in rule.from_headers:
                out.setdefault(location.name, (f"{location.prefix}{token}",))
    return out or {"authorization": (f"Bearer {token}",)}


_DEFAULT_ACTION = click.option(
    "--default-action",
    type=click.Choice(["allow", "deny"], case_sensitive=False),
    default="deny",
    show_default=True,
    help="Decision when no ALLOW policy applies to the target.",
)
_TRUST_DOMAIN = click.option(
    "--trust-domain",
    multiple=True,
    help="Accepted peer trust domain (repeatable); peers from others are denied.",
)


@click.group("authz")
def authz() -> None:
    """JWT and mTLS peer-identity authorization."""


@authz.command("check")
@click.option("--policy", "policy_dir", required=True, help="Policy directory.")
@click.option("--principal", help="Peer SPIFFE ID (omit for an anonymous peer).")
@click.option("--jwt", "jwt_file", help="File holding the request's JWT ('-' for stdin).")
@click.option("--method", help="HTTP method, e.g. GET.")
@click.option("--path", help="HTTP path, e.g. /api/x.")
@click.option("--grpc-method", help="Full gRPC method, e.g. /pkg.Service/Method.")
@click.option("--host", help="HTTP host (authority).")
@click.option("--port", type=click.IntRange(1, 65535), help="Destination port.")
@click.option("--source-ip", help="Source IP address.")
@click.option("--destination", help="SPIFFE ID of the protected workload (policy targets).")
@click.option("--header", "header_values", multiple=True, help="Extra header NAME=VALUE.")
@click.option("--at", help="Evaluate at this ISO 8601 time instead of now.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_DEFAULT_ACTION
@_TRUST_DOMAIN
def check_command(
    policy_dir: str,
    principal: str | None,
    jwt_file: str | None,
    method: str | None,
    path: str | None,
    grpc_method: str | None,
    host: str | None,
    port: int | None,
    source_ip: str | None,
    destination: str | None,
    header_values: tuple[str, ...],
    at: str | None,
    output: str,
    default_action: str,
    trust_domain: tuple[str, ...],
) -> None:
    """Decide one request and print the decision and the rule that made it."""
    for name, value in (("--principal", principal), ("--destination", destination)):
        if value is not None:
            try:
                SpiffeId.parse(value)
            except InvalidSpiffeIdError as exc:
                raise _fail(f"{name}: {value!r} is not a valid SPIFFE ID ({exc.message})") from exc
    headers = _headers(header_values)
    token = _read_jwt(jwt_file) if jwt_file is not None else None
    try:
        policies = load_policy_dir(policy_dir)
        enforcer = Enforcer(
            policies, clock=_clock(at), options=_options(default_action, trust_domain)
        )
    except (PolicyError, JwksError) as exc:
        raise _fail(str(exc)) from exc
    if token is not None:
        headers.update(_token_headers(policies, token))
    result = enforcer.check(
        AccessRequest(
            peer_principal=principal,
            headers=headers,
            grpc_method=grpc_method,
            method=method,
            path=path,
            host=host,
            port=port,
            source_ip=source_ip,
            destination=destination,
        )
    )
    report = access_report(result, policies)
    if output == "json":
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        rows = report_rows(report)
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            click.echo(f"{label:<{width}}  {value}")
    raise click.exceptions.Exit(EXIT_ALLOWED if result.allowed else EXIT_DENIED)


@authz.command("lint")
@click.argument("directory")
def lint_command(directory: str) -> None:
    """Report invalid and shadowed rules; exit 1 when any error is found."""
    try:
        findings = lint_policy_dir(directory)
    except PolicyError as exc:
        raise _fail(str(exc)) from exc
    for finding in findings:
        click.echo(str(finding))
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    click.echo(f"{errors} error(s), {warnings} warning(s)")
    raise click.exceptions.Exit(EXIT_LINT_ERRORS if errors else 0)


def _serve_logging() -> None:
    """Policy loads, refused reloads and denials are logged at INFO.

    Under ``citadel`` the root logger is already set up (WARNING unless ``-v``), which makes
    ``basicConfig`` a no-op: the authz loggers are raised to INFO explicitly.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    authz_logger = logging.getLogger("citadel.authz")
    if authz_logger.getEffectiveLevel() > logging.INFO:
        authz_logger.setLevel(logging.INFO)


@authz.command("serve")
@click.option("--policy", "policy_dir", required=True, help="Policy directory (watched).")
@click.option("--listen", required=True, help="Loopback HOST:PORT or unix:/path.")
@click.option("--destination", help="SPIFFE ID of the protected workload (policy targets).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve /metrics on 127.0.0.1.")
@_DEFAULT_ACTION
@_TRUST_DOMAIN
def serve_command(
    policy_dir: str,
    listen: str,
    destination: str | None,
    metrics_port: int | None,
    default_action: str,
    trust_domain: tuple[str, ...],
) -> None:
    """Serve Envoy ext_authz (envoy.service.auth.v3.Authorization/Check)."""
    _serve_logging()
    try:
        parse_listen_address(listen)
    except ValueError as exc:
        raise _fail(f"--listen: {exc}") from exc
    if destination is not None:
        try:
            SpiffeId.parse(destination)
        except InvalidSpiffeIdError as exc:
            raise _fail(f"--destination: {exc.message}") from exc
    try:
        store = PolicyStore(
            policy_dir, clock=SystemClock(), options=_options(default_action, trust_domain)
        )
    except PolicyError as exc:
        raise _fail(str(exc)) from exc
    server = ExtAuthzServer(store, listen, destination=destination)
    try:
        address = server.start()
    except OSError as exc:
        raise _fail(str(exc)) from exc
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"listening on {address}", nl=True)
    sys.stdout.flush()
    with PolicyWatcher(store):
        while not stop.wait(0.5):
            pass
    server.stop(grace=1.0)


def main() -> None:
    authz(prog_name="citadel authz")


if __name__ == "__main__":
    main()
