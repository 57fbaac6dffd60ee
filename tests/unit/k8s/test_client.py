"""Where the API server is and how we authenticate: explicit, in-cluster, kubeconfig."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from citadel.k8s import client as kube_client
from citadel.k8s.client import (
    KubeApis,
    KubeClientSettings,
    build_configuration,
    current_namespace,
    in_cluster_settings,
    kubeconfig_configuration,
    load_configuration,
    new_api_client,
)
from citadel.k8s.errors import KubeConfigError


def bearer(configuration: k8s.Configuration) -> str | None:
    """The Authorization header value the client would send."""
    setting = configuration.auth_settings().get("BearerToken")
    return None if setting is None else str(setting["value"])


@pytest.fixture
def sa_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("token-one\n")
    (directory / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (directory / "namespace").write_text("citadel-system\n")
    return directory


def test_explicit_settings_give_a_bearer_token_and_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    configuration = build_configuration(
        KubeClientSettings(host="https://10.0.0.1:6443/", token="abc", ca_file=ca)
    )
    assert configuration.host == "https://10.0.0.1:6443"
    assert bearer(configuration) == "Bearer abc"
    assert configuration.ssl_ca_cert == str(ca)
    assert configuration.verify_ssl is True


def test_settings_repr_hides_the_token() -> None:
    settings = KubeClientSettings(host="https://h", token="very-secret-token")
    assert "very-secret-token" not in repr(settings)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"host": "10.0.0.1:6443"},
        {"host": "https://h", "token": "a", "token_file": Path("/t")},
    ],
    ids=["host-without-scheme", "token-and-token-file"],
)
def test_inconsistent_settings_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(KubeConfigError):
        KubeClientSettings(**kwargs)  # type: ignore[arg-type]


def test_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="does not exist"):
        build_configuration(KubeClientSettings(host="https://h", ca_file=tmp_path / "nope"))


def test_in_cluster_settings_come_from_the_environment_and_service_account(sa_dir: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    settings = in_cluster_settings(env, sa_dir)
    assert settings.host == "https://10.96.0.1:443"
    assert settings.token_file == sa_dir / "token"
    assert settings.ca_file == sa_dir / "ca.crt"
    configuration = build_configuration(settings)
    assert bearer(configuration) == "Bearer token-one"


def test_in_cluster_ipv6_host_is_bracketed(sa_dir: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_settings(env, sa_dir).host == "https://[fd00::1]:443"


def test_outside_a_cluster_in_cluster_settings_fail_clearly(sa_dir: Path) -> None:
    with pytest.raises(KubeConfigError, match="not in a cluster"):
        in_cluster_settings({}, sa_dir)
    (sa_dir / "token").unlink()
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(KubeConfigError, match="token"):
        in_cluster_settings(env, sa_dir)


def test_rotated_token_file_is_picked_up(sa_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_client, "TOKEN_REREAD_SECONDS", 0.0)
    configuration = build_configuration(
        KubeClientSettings(host="https://h", token_file=sa_dir / "token")
    )
    assert bearer(configuration) == "Bearer token-one"
    (sa_dir / "token").write_text("token-two")
    assert bearer(configuration) == "Bearer token-two"


def test_empty_token_file_is_a_config_error(sa_dir: Path) -> None:
    (sa_dir / "token").write_text("\n")
    with pytest.raises(KubeConfigError, match="empty"):
        build_configuration(KubeClientSettings(host="https://h", token_file=sa_dir / "token"))


def _kubeconfig(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}},
                ],
                "users": [{"name": "u", "user": {"token": "kube-token"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


def test_kubeconfig_gives_host_and_token(tmp_path: Path) -> None:
    configuration = kubeconfig_configuration(_kubeconfig(tmp_path / "config"))
    assert configuration.host == "https://127.0.0.1:6443"
    assert bearer(configuration) == "Bearer kube-token"


def test_missing_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="cannot load"):
        kubeconfig_configuration(tmp_path / "missing")


def test_load_configuration_prefers_explicit_settings_then_kubeconfig_then_in_cluster(
    tmp_path: Path, sa_dir: Path
) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    explicit = load_configuration(
        settings=KubeClientSettings(host="http://127.0.0.1:1"), environ=env, sa_dir=sa_dir
    )
    assert explicit.host == "http://127.0.0.1:1"
    from_file = load_configuration(
        kubeconfig=_kubeconfig(tmp_path / "config"), environ=env, sa_dir=sa_dir
    )
    assert from_file.host == "https://127.0.0.1:6443"
    in_cluster = load_configuration(environ=env, sa_dir=sa_dir)
    assert in_cluster.host == "https://10.96.0.1:443"


def test_current_namespace_from_env_then_file(sa_dir: Path) -> None:
    assert current_namespace({"POD_NAMESPACE": "ns-a"}, sa_dir) == "ns-a"
    assert current_namespace({}, sa_dir) == "citadel-system"
    (sa_dir / "namespace").unlink()
    with pytest.raises(KubeConfigError, match="POD_NAMESPACE"):
        current_namespace({}, sa_dir)


def test_api_groups_share_one_client() -> None:
    api_client = new_api_client(build_configuration(KubeClientSettings(host="http://127.0.0.1:1")))
    apis = KubeApis.from_client(api_client)
    assert apis.core.api_client is api_client
    assert apis.coordination.api_client is api_client
