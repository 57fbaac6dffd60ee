from __future__ import annotations

import json
from pathlib import Path

import pytest

from citadel.server.app import build_server_config
from citadel.server.errors import ServerConfigError
from citadel.server.rate_limit import RateLimit
from citadel.server.ready_file import remove_ready_file, write_ready_file
from citadel.server.supervisor import restart_delay


def test_ready_file_is_written_whole_and_removed_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "run" / "ready.json"
    write_ready_file(path, port=1, mtls_port=None, metrics_port=3, pid=42, workers=2)
    assert json.loads(path.read_text()) == {
        "port": 1, "mtls_port": None, "metrics_port": 3, "pid": 42, "workers": 2,
    }  # fmt: skip
    remove_ready_file(path, pid=7)
    assert path.exists()
    remove_ready_file(path, pid=42)
    assert not path.exists()
    assert [p.name for p in path.parent.iterdir()] == []


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 0.5), (1, 0.5), (2, 1.0), (5, 8.0), (50, 30.0)],
    ids=["none", "first", "second", "fifth", "capped"],
)
def test_restart_delay_backs_off_and_is_capped(failures: int, delay: float) -> None:
    assert restart_delay(failures) == delay


def _options(**changes: object) -> dict[str, object]:
    options: dict[str, object] = {
        key: None for key in (
            "listen", "mtls_listen", "metrics_listen", "workers", "ready_file",
            "serving_cert_ttl", "grace", "join_tokens", "rate", "burst", "identity_rate",
            "identity_burst", "kube_api_server", "kube_token_file", "kube_ca_file",
            "cluster_id", "kube_qps", "kube_burst", "oidc_issuer", "oidc_jwks_file",
            "oidc_jwks_url", "oidc_subject_prefix",
        )
    }  # fmt: skip
    options.update(
        dns_name=(), trusted_agent=(), kube_in_cluster=False, token_audience=(),
        kube_issuer=(), oidc_audience=(),
    )  # fmt: skip
    options.update(changes)
    return options


def test_command_line_builds_a_config() -> None:
    config = build_server_config(None, _options(
        listen="127.0.0.1:0", mtls_listen="off", workers=2, rate=0.0, identity_rate=3.0,
        kube_api_server="http://127.0.0.1:1", token_audience=("istio-ca",), kube_issuer=("i",),
        trusted_agent=("spiffe://td/ns/s/sa/agent=spiffe://td/ns/a,spiffe://td/ns/b",),
        dns_name=("localhost", "citadel.svc"),
    ))  # fmt: skip
    assert config.mtls_listen is None
    assert config.workers == 2
    assert config.global_limit is None
    assert config.identity_limit == RateLimit(rate=3.0, burst=20)
    assert config.kubernetes is not None
    assert config.kubernetes.issuers == ("i",)
    assert config.node_agents == {
        "spiffe://td/ns/s/sa/agent": ("spiffe://td/ns/a", "spiffe://td/ns/b")
    }
    assert config.dns_names == ("localhost", "citadel.svc")
    assert config.oidc is None


def test_trusted_agent_option_needs_a_prefix() -> None:
    with pytest.raises(ServerConfigError):
        build_server_config(None, _options(trusted_agent=("spiffe://td/ns/s/sa/agent",)))
