"""``leader_election:`` and the replica settings of the server configuration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from citadel.k8s.client import KubeClientSettings
from citadel.server.config import KubernetesAuthConfig, ServerConfig
from citadel.server.config_file import load_server_config
from citadel.server.errors import ServerConfigError
from citadel.server.leader_config import LeaderElectionConfig, default_holder_identity


def test_default_is_a_database_lock_named_like_the_lease_the_rbac_grants() -> None:
    config = ServerConfig().leader_election
    assert config.backend == "database"
    assert config.name == "citadel-leader"
    assert config.retry_period < config.renew_deadline < config.lease_duration
    assert ServerConfig().automatic_rotation is True


def test_yaml_sets_the_leader_election_and_replica_settings(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(
        "leader_election:\n"
        "  backend: database\n"
        "  lease_duration: 3\n"
        "  renew_deadline: 2s\n"
        "  retry_period: 0.5\n"
        "  name: ca-leader\n"
        "  identity: replica-a\n"
        "automatic_rotation: false\n"
        "authority_watch_interval: 1s\n"
    )
    config = load_server_config(path)
    assert config.leader_election == LeaderElectionConfig(
        lease_duration=timedelta(seconds=3),
        renew_deadline=timedelta(seconds=2),
        retry_period=timedelta(milliseconds=500),
        name="ca-leader",
        identity="replica-a",
    )
    assert config.automatic_rotation is False
    assert config.authority_watch_interval == timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("leader_election: {backend: zookeeper}", "backend must be one of"),
        ("leader_election: {lease_duration: 5s, renew_deadline: 5s}", "renew_deadline <"),
        ("leader_election: {retry_period: 0}", "0 < retry_period"),
        ("leader_election: {lease_duration: 0.5}", "at least 1s"),
        ("leader_election: {name: Not_A_Name}", "not a valid Kubernetes object name"),
        ("leader_election: {namespace: 'a b'}", "not a valid namespace"),
        ("leader_election: {identity: ''}", "printable characters"),
        ("leader_election: {leese_duration: 5s}", "unknown key(s) leese_duration"),
        ("leader_election: {backend: kubernetes}", "needs the kubernetes section"),
        ("authority_watch_interval: 0", "authority_watch_interval"),
        ("automatic_rotation: sometimes", "must be true or false"),
    ],
    ids=[
        "unknown-backend",
        "deadline-not-below-lease",
        "zero-retry",
        "sub-second-lease",
        "bad-name",
        "bad-namespace",
        "empty-identity",
        "typo",
        "kubernetes-without-api",
        "zero-watch-interval",
        "rotation-not-a-flag",
    ],
)
def test_bad_leader_election_settings_are_refused_with_the_field_named(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ServerConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_server_config(path)


def test_kubernetes_backend_is_accepted_with_an_api_server() -> None:
    config = ServerConfig(
        kubernetes=KubernetesAuthConfig(api=KubeClientSettings(host="https://10.0.0.1")),
        leader_election=LeaderElectionConfig(backend="kubernetes", namespace="citadel-system"),
    )
    assert config.leader_election.backend == "kubernetes"


def test_holder_identities_are_unique_per_process_and_name_the_pod() -> None:
    first = default_holder_identity({"POD_NAME": "citadel-7d9f-abcde"})
    second = default_holder_identity({"POD_NAME": "citadel-7d9f-abcde"})
    assert first.startswith("citadel-7d9f-abcde_")
    assert first != second  # two workers of one pod never share a lease identity
    assert LeaderElectionConfig(identity="fixed").holder_identity() == "fixed"


def test_token_review_defaults_let_a_mass_start_through_and_yaml_can_publish_root_certs(
    tmp_path: Path,
) -> None:
    defaults = KubernetesAuthConfig(api=KubeClientSettings(host="https://10.0.0.1"))
    assert defaults.qps >= 500 and defaults.burst >= 1000
    assert defaults.max_cache_entries >= 10_000  # every pod of a mass start stays cached
    assert defaults.publish_root_cert is False
    path = tmp_path / "server.yaml"
    path.write_text(
        "kubernetes: {api_server: 'https://10.0.0.1', publish_root_cert: true, qps: 20}\n"
    )
    kube = load_server_config(path).kubernetes
    assert kube is not None and kube.publish_root_cert is True and kube.qps == 20


def test_command_line_picks_the_backend_and_turns_rotation_off() -> None:
    from citadel.server.app import build_server_config
    from tests.unit.server.test_process_helpers import _options

    config = build_server_config(
        None,
        _options(
            kube_api_server="http://127.0.0.1:1",
            leader_election="kubernetes",
            automatic_rotation=False,
        ),
    )
    assert config.leader_election.backend == "kubernetes"
    assert config.automatic_rotation is False
    with pytest.raises(ServerConfigError, match="needs the kubernetes section"):
        build_server_config(None, _options(leader_election="kubernetes"))
