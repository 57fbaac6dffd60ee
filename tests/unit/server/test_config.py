from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from citadel.server.config import ListenAddress, ServerConfig
from citadel.server.config_file import load_server_config
from citadel.server.errors import ServerConfigError
from citadel.server.rate_limit import RateLimit


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:15012", "127.0.0.1", 15012),
        ("localhost:0", "localhost", 0),
        ("[::1]:8443", "::1", 8443),
    ],
    ids=["ipv4", "name-port-zero", "ipv6"],
)
def test_listen_addresses_parse(text: str, host: str, port: int) -> None:
    assert ListenAddress.parse(text) == ListenAddress(host, port)


@pytest.mark.parametrize(
    "text",
    ["15012", "host:", ":80", "h:99999", "h:port"],
    ids=["no-host", "no-port", "empty-host", "port-range", "port-name"],
)
def test_bad_listen_addresses_are_refused(text: str) -> None:
    with pytest.raises(ServerConfigError):
        ListenAddress.parse(text)


def test_defaults_follow_istio() -> None:
    config = ServerConfig()
    assert config.listen == "127.0.0.1:15012"
    assert config.metrics_listen == "127.0.0.1:15014"
    assert config.dns_names == ("localhost",)
    assert config.max_receive_bytes == 256 * 1024
    assert config.workers >= 1


@pytest.mark.parametrize(
    "changes",
    [
        {"workers": 0},
        {"serving_cert_ttl": timedelta(seconds=5)},
        {"listen": "nope"},
        {"node_agents": {"spiffe://td/agent": ()}},
        {"node_agents": {"not-an-id": ("spiffe://td",)}},
        {"max_receive_bytes": 1},
    ],
    ids=[
        "no-workers",
        "tiny-ttl",
        "bad-listen",
        "agent-without-prefix",
        "bad-agent-id",
        "tiny-receive-limit",
    ],
)
def test_unusable_configs_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ServerConfigError):
        ServerConfig(**changes)  # type: ignore[arg-type]


def test_yaml_file_sets_everything_and_overrides_win(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    path = tmp_path / "server.yaml"
    path.write_text(
        f"""
listen: 127.0.0.1:9000
mtls_listen: null
workers: 3
dns_names: [localhost, citadel.svc]
serving_cert_ttl: 12h
rate_limit: {{rate: 100, burst: 10}}
identity_rate_limit: null
kubernetes:
  api_server: https://10.0.0.1:443
  audiences: [istio-ca, citadel]
  issuers: [https://kubernetes.default.svc]
  qps: 20
  cache_ttl: 2m
oidc:
  issuer: https://idp.example
  audiences: [citadel]
  jwks_file: {jwks}
  subject_prefix: oidc/users
  algorithms: [ES256]
node_agents:
  spiffe://cluster.local/ns/istio-system/sa/ztunnel: [spiffe://cluster.local/ns/apps]
"""
    )
    config = load_server_config(path, workers=2)
    assert config.listen == "127.0.0.1:9000"
    assert config.mtls_listen is None
    assert config.workers == 2
    assert config.serving_cert_ttl == timedelta(hours=12)
    assert config.global_limit == RateLimit(rate=100.0, burst=10)
    assert config.identity_limit is None
    assert config.kubernetes is not None
    assert config.kubernetes.audiences == ("istio-ca", "citadel")
    assert config.kubernetes.max_cache_ttl == timedelta(minutes=2)
    assert config.oidc is not None
    assert config.oidc.subject_prefix == "oidc/users"
    assert config.oidc.algorithms == frozenset({"ES256"})
    assert len(config.agent_grants()) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen: 1\n", "must be a string"),
        ("workers: many\n", "must be an integer"),
        ("grace: soon\n", "not a duration"),
        ("unknown_key: 1\n", "unknown key(s) unknown_key"),
        ("kubernetes: {audiences: [x]}\n", "api_server"),
        ("kubernetes: {api_server: https://h, secret_token: x}\n", "unknown key(s) secret_token"),
        ("oidc: {issuer: https://i}\n", "issuer and audiences are required"),
        ("rate_limit: {rate: 0, burst: 1}\n", "rate must be"),
        ("- a list\n", "must hold a mapping"),
        ("listen: [unclosed\n", "not valid YAML"),
    ],
    ids=[
        "type",
        "int",
        "duration",
        "unknown",
        "kube-host",
        "kube-unknown",
        "oidc-incomplete",
        "zero-rate",
        "not-a-mapping",
        "not-yaml",
    ],
)
def test_yaml_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ServerConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_server_config(path)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ServerConfigError, match="cannot read"):
        load_server_config(tmp_path / "absent.yaml")
