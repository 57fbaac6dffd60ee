"""``citadel serve``: run the CA as a network service.

With one worker everything runs in this process; with more, :mod:`.supervisor` starts them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from prometheus_client import disable_created_metrics

from citadel.ca.config import CaConfig
from citadel.ca.lifecycle import open_serving_ca
from citadel.cli_params import POSITIVE_DURATION, DurationType
from citadel.cli_settings import settings_of
from citadel.k8s.client import KubeClientSettings, in_cluster_settings
from citadel.k8s.errors import KubeConfigError
from citadel.server.ca_server import CaServer
from citadel.server.config import (
    DEFAULT_LISTEN,
    DEFAULT_METRICS_LISTEN,
    DEFAULT_MTLS_LISTEN,
    KubernetesAuthConfig,
    OidcAuthConfig,
    ServerConfig,
)
from citadel.server.config_file import load_server_config
from citadel.server.errors import ServerConfigError
from citadel.server.leader_config import LEADER_BACKENDS
from citadel.server.logging_setup import configure_server_logging
from citadel.server.metrics import ServerMetrics
from citadel.server.metrics_http import MetricsEndpoint, start_metrics_endpoint
from citadel.server.rate_limit import RateLimit
from citadel.server.ready_file import remove_ready_file, write_ready_file
from citadel.server.replica import ReplicaServices
from citadel.server.shutdown import StopSignal

__all__ = ["run_in_process", "serve_command"]

_log = logging.getLogger(__name__)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def run_in_process(server_config: ServerConfig, ca_config: CaConfig) -> int:
    """Serve with a single worker in this process until SIGTERM/SIGINT."""
    stop = StopSignal().install()
    ca = open_serving_ca(ca_config, plugin_dir=server_config.plugin_ca_dir)
    endpoint: MetricsEndpoint | None = None
    try:
        metrics = ServerMetrics()
        server = CaServer(ca=ca, config=server_config, metrics=metrics)
        services = ReplicaServices(
            ca=ca, config=server_config, metrics=metrics, server_issuer=server.issuer
        )
        server.attach_lifecycle(services.lifecycle)
        ports = server.start()
        try:
            services.start()
            if server_config.metrics_listen is not None:
                endpoint = start_metrics_endpoint(server_config.metrics_listen, metrics.registry)
            if server_config.ready_file is not None:
                write_ready_file(
                    server_config.ready_file,
                    port=ports.port,
                    mtls_port=ports.mtls_port,
                    metrics_port=endpoint.port if endpoint else None,
                    pid=os.getpid(),
                    workers=1,
                )
            stop.wait()
        finally:
            try:
                services.stop()  # step down first: another replica takes over at once
            finally:
                server.stop()
    finally:
        if endpoint is not None:
            endpoint.close()
        if server_config.ready_file is not None:
            remove_ready_file(server_config.ready_file, pid=os.getpid())
        ca.close()
    return 0


def _address(value: str | None) -> str | None:
    """``""`` or ``off`` disables a listener."""
    if value is None:
        return None
    return None if value.strip().lower() in ("", "off", "none") else value


def _limit(rate: float | None, burst: int | None, default: RateLimit | None) -> RateLimit | None:
    if rate is None and burst is None:
        return default
    if rate is not None and rate <= 0:
        return None
    base = default or RateLimit(rate=rate or 1.0, burst=burst or 1)
    try:
        return RateLimit(rate=rate or base.rate, burst=burst or base.burst)
    except ValueError as exc:
        raise ServerConfigError(f"rate limit: {exc}") from exc


def _agents(values: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    agents: dict[str, tuple[str, ...]] = {}
    for value in values:
        agent, sep, prefixes = value.partition("=")
        if not sep or not agent or not prefixes:
            raise ServerConfigError(f"--trusted-agent {value[:80]!r}: use AGENT_ID=PREFIX[,PREFIX]")
        agents[agent.strip()] = tuple(p.strip() for p in prefixes.split(",") if p.strip())
    return agents


def _kubernetes(options: dict[str, Any], base: KubernetesAuthConfig | None) -> Any:
    api_server = options.pop("kube_api_server")
    in_cluster = options.pop("kube_in_cluster")
    token_file = options.pop("kube_token_file")
    ca_file = options.pop("kube_ca_file")
    audiences = options.pop("token_audience")
    cluster_id = options.pop("cluster_id")
    issuers = options.pop("kube_issuer")
    qps = options.pop("kube_qps")
    burst = options.pop("kube_burst")
    if not (api_server or in_cluster) and base is None:
        return None
    try:
        api = (
            in_cluster_settings()
            if in_cluster
            else KubeClientSettings(host=api_server, token_file=token_file, ca_file=ca_file)
            if api_server
            else None
        )
    except KubeConfigError as exc:
        raise ServerConfigError(f"kubernetes: {exc.message}") from exc
    if base is None:
        assert api is not None
        base = KubernetesAuthConfig(api=api)
    changes: dict[str, Any] = {}
    if api is not None:
        changes["api"] = api
    if audiences:
        changes["audiences"] = audiences
    if cluster_id is not None:
        changes["cluster_id"] = cluster_id or None
    if issuers:
        changes["issuers"] = issuers
    if qps is not None:
        changes["qps"] = qps
    if burst is not None:
        changes["burst"] = burst
    return replace(base, **changes)


def _oidc(options: dict[str, Any], base: OidcAuthConfig | None) -> Any:
    issuer = options.pop("oidc_issuer")
    audiences = options.pop("oidc_audience")
    jwks_file = options.pop("oidc_jwks_file")
    jwks_url = options.pop("oidc_jwks_url")
    prefix = options.pop("oidc_subject_prefix")
    if issuer is None and base is None:
        return None
    if base is None:
        return OidcAuthConfig(
            issuer=issuer,
            audiences=audiences or (),
            jwks_file=jwks_file,
            jwks_url=jwks_url,
            subject_prefix=prefix,
        )
    changes: dict[str, Any] = {}
    for key, value in (
        ("issuer", issuer),
        ("audiences", audiences or None),
        ("subject_prefix", prefix),
    ):
        if value is not None:
            changes[key] = value
    if jwks_file is not None or jwks_url is not None:
        changes["jwks_file"], changes["jwks_url"] = jwks_file, jwks_url
    return replace(base, **changes)


def build_server_config(config_file: Path | None, options: dict[str, Any]) -> ServerConfig:
    """Combine the YAML file (if any) with command-line options (which win)."""
    base = load_server_config(config_file) if config_file else ServerConfig()
    overrides: dict[str, Any] = {}
    for key in ("listen", "mtls_listen", "metrics_listen"):
        if options[key] is not None:
            overrides[key] = _address(options[key])
    for key in ("workers", "ready_file", "serving_cert_ttl", "grace"):
        if options[key] is not None:
            overrides[key] = options[key]
    if options.get("plugin_ca_dir") is not None:
        overrides["plugin_ca_dir"] = options["plugin_ca_dir"]
    if options["dns_name"]:
        overrides["dns_names"] = options["dns_name"]
    if options["join_tokens"] is not None:
        overrides["join_tokens"] = options["join_tokens"]
    if options.get("automatic_rotation") is not None:
        overrides["automatic_rotation"] = options["automatic_rotation"]
    if options.get("leader_election") is not None:
        overrides["leader_election"] = replace(
            base.leader_election, backend=options["leader_election"]
        )
    overrides["global_limit"] = _limit(options["rate"], options["burst"], base.global_limit)
    overrides["identity_limit"] = _limit(
        options["identity_rate"], options["identity_burst"], base.identity_limit
    )
    if options["trusted_agent"]:
        overrides["node_agents"] = {**base.node_agents, **_agents(options["trusted_agent"])}
    overrides["kubernetes"] = _kubernetes(options, base.kubernetes)
    overrides["oidc"] = _oidc(options, base.oidc)
    try:
        return replace(base, **overrides)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ServerConfigError):
            raise
        raise ServerConfigError(str(exc)) from exc


_DURATION = DurationType()


@click.command("serve")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML server configuration (command-line options override it).",
)
@click.option("--listen", default=None, help=f"CSR API address [default: {DEFAULT_LISTEN}].")
@click.option(
    "--mtls-listen",
    default=None,
    help=f"mTLS-only listener ('off' disables) [default: {DEFAULT_MTLS_LISTEN}].",
)
@click.option(
    "--metrics-listen",
    default=None,
    help=f"/metrics address ('off' disables) [default: {DEFAULT_METRICS_LISTEN}].",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Server processes sharing the port [default: number of CPUs].",
)
@click.option(
    "--ready-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write {port, mtls_port, metrics_port, pid} here once serving.",
)
@click.option("--dns-name", multiple=True, help="DNS SAN of the serving certificate (repeat).")
@click.option(
    "--plugin-ca-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="A plug-in CA directory (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem, "
    "optional ca-crl.pem): installed before serving and watched for changes.",
)
@click.option("--serving-cert-ttl", type=POSITIVE_DURATION, default=None)
@click.option("--grace", type=_DURATION, default=None, help="Shutdown grace period.")
@click.option("--rate", type=float, default=None, help="Global CSR rate (/s); 0 disables.")
@click.option("--burst", type=click.IntRange(1), default=None, help="Global CSR burst.")
@click.option("--identity-rate", type=float, default=None, help="Per-identity rate; 0 disables.")
@click.option("--identity-burst", type=click.IntRange(1), default=None)
@click.option("--join-tokens/--no-join-tokens", default=None)
@click.option(
    "--leader-election",
    type=click.Choice(LEADER_BACKENDS),
    default=None,
    help="Who elects the replica that runs the singleton jobs: a lock row in the CA database "
    "or a Kubernetes Lease [default: database].",
)
@click.option(
    "--automatic-rotation/--no-automatic-rotation",
    default=None,
    help="The elected leader rotates the root and intermediate on schedule [default: on].",
)
@click.option(
    "--trusted-agent",
    multiple=True,
    metavar="AGENT_ID=PREFIX[,PREFIX]",
    help="A node agent that may request identities under the prefixes (repeat).",
)
@click.option("--kube-api-server", default=None, help="Kubernetes API URL for TokenReviews.")
@click.option("--kube-in-cluster", is_flag=True, default=False)
@click.option("--kube-token-file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--kube-ca-file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--kube-issuer", multiple=True, help="Service-account token issuer (repeat).")
@click.option("--kube-qps", type=float, default=None)
@click.option("--kube-burst", type=click.IntRange(1), default=None)
@click.option("--token-audience", multiple=True, help="TokenReview audience [default: istio-ca].")
@click.option("--cluster-id", default=None)
@click.option("--oidc-issuer", default=None)
@click.option("--oidc-audience", multiple=True)
@click.option("--oidc-jwks-file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--oidc-jwks-url", default=None)
@click.option(
    "--oidc-subject-prefix",
    default=None,
    help="Map sub to spiffe://TD/PREFIX/<sub> (default: sub is a SPIFFE ID).",
)
@click.option("--log-level", type=click.Choice(sorted(_LEVELS)), default="info", show_default=True)
@click.pass_context
def serve_command(
    ctx: click.Context, /, config_file: Path | None, log_level: str, **options: Any
) -> None:
    """Serve the Istio-compatible CSR API (gRPC over TLS), health, reflection and metrics.

    A fresh data directory is initialised first (self-signed root and intermediate).
    """
    settings = settings_of(ctx)
    level = _LEVELS[log_level]
    if settings.verbose:
        level = logging.DEBUG
    configure_server_logging(level)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    server_config = build_server_config(config_file, options)
    ca_config = settings.ca_config()
    if server_config.workers == 1:
        code = run_in_process(server_config, ca_config)
    else:
        open_serving_ca(ca_config, plugin_dir=server_config.plugin_ca_dir).close()
        from citadel.server.supervisor import run_supervisor

        code = run_supervisor(server_config, ca_config, level)
    ctx.exit(code)
