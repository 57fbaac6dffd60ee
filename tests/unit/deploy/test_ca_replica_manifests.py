"""The CA Deployment runs replicas that share one database and one set of keys: the keys come
from a Secret and are copied into a private directory the key manager accepts, the database
URL from a Secret, and the leader election uses the Lease the RBAC grants."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from citadel.ca.keymanager.encrypted_file import EncryptedFileKeyManager
from citadel.identity.keys import KeyType, public_keys_equal
from citadel.k8s.client import KubeClientSettings
from citadel.k8s.lease_elector import DEFAULT_LEASE_NAME
from tests.unit.deploy.conftest import find

SECRET_MOUNT = "/etc/citadel/ca-keys"
REPLICATED = ("base", "overlays/ha")


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = find(objects, "Deployment", "citadel")["spec"]["template"]["spec"]
    return spec


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def _key_copier(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (init,) = [c for c in _pod(objects)["initContainers"] if c["name"] == "ca-keys"]
    copier: dict[str, Any] = init
    return copier


def _data_dir(objects: list[dict[str, Any]]) -> str:
    value: str = _env(_pod(objects)["containers"][0])["CITADEL_DATA_DIR"]["value"]
    return value


def _fake_secret_mount(directory: Path, files: dict[str, bytes]) -> Path:
    """What the kubelet makes of a Secret: a timestamped dir, ``..data`` and symlinks."""
    stamped = directory / "..2026_06_01_12_00_00.000000001"
    stamped.mkdir(parents=True)
    for name, content in files.items():
        (stamped / name).write_bytes(content)
        (stamped / name).chmod(0o440)  # defaultMode 0400 plus the fsGroup's read bit
    (directory / "..data").symlink_to(stamped.name)
    for name in files:
        (directory / name).symlink_to(f"..data/{name}")
    return directory


def test_copied_secret_keys_load_in_the_key_manager_with_private_modes(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    source = EncryptedFileKeyManager(tmp_path / "operator-keys", b"passphrase")
    made = {
        key_id: source.generate_key(key_id, KeyType.EC_P256)
        for key_id in ("root-20260601T120000Z-0a1b2c3d", "intermediate-20260601T120000Z-4e5f")
    }
    files = {p.name: p.read_bytes() for p in source.directory.iterdir()}
    mount = _fake_secret_mount(tmp_path / "secret", files)
    data_dir = tmp_path / "volume" / "ca"
    script = _key_copier(rendered["base"])["args"][0]
    script = script.replace(SECRET_MOUNT, str(mount)).replace(
        _data_dir(rendered["base"]), str(data_dir)
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

    keys_dir = data_dir / "keys"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert sorted(os.listdir(keys_dir)) == sorted(files)  # no ..data, no timestamped dir
    assert all(stat.S_IMODE((keys_dir / n).stat().st_mode) == 0o600 for n in files)
    loaded = EncryptedFileKeyManager(keys_dir, b"passphrase")
    for key_id, key in made.items():
        assert public_keys_equal(loaded.get_key(key_id).public_key(), key.public_key())


@pytest.mark.parametrize("tree", [*REPLICATED, "overlays/dev"])
def test_the_key_copier_fills_the_data_directory_the_ca_uses(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    objects = rendered[tree]
    pod = _pod(objects)
    copier = _key_copier(objects)
    data_dir = _data_dir(objects)
    assert f'"{data_dir}"' in copier["args"][0]
    mounts = {m["name"]: m for m in copier["volumeMounts"]}
    assert mounts["ca-keys"]["mountPath"] == SECRET_MOUNT and mounts["ca-keys"]["readOnly"]
    ca_mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["data"]["mountPath"] == ca_mounts["data"]
    assert data_dir.startswith(ca_mounts["data"] + "/")  # a subdirectory the CA's user owns
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["ca-keys"]["secret"]["secretName"] == "citadel-ca-keys"
    # Replicas must not start without the shared keys; the dev CA makes its own.
    assert volumes["ca-keys"]["secret"].get("optional", False) is (tree == "overlays/dev")


@pytest.mark.parametrize("tree", REPLICATED)
def test_replicas_take_the_database_url_from_a_secret(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    env = _env(_pod(rendered[tree])["containers"][0])
    assert env["CITADEL_DB_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "citadel-db",
        "key": "url",
    }
    assert "fieldRef" in env["POD_NAME"]["valueFrom"]  # the Lease holder identity
    assert "fieldRef" in env["POD_NAMESPACE"]["valueFrom"]  # where the Lease lives


def test_the_server_config_elects_on_the_granted_lease_and_publishes_root_certs(
    rendered: dict[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from citadel.server import config_file

    pod = KubeClientSettings(host="https://10.96.0.1:443", token="pod-token")
    monkeypatch.setattr(config_file, "in_cluster_settings", lambda: pod)
    path = tmp_path / "server.yaml"
    path.write_text(find(rendered["base"], "ConfigMap", "citadel-config")["data"]["server.yaml"])
    config = config_file.load_server_config(path)
    assert config.leader_election.backend == "kubernetes"
    assert config.leader_election.name == DEFAULT_LEASE_NAME
    assert config.leader_election.namespace is None  # the pod's own (POD_NAMESPACE)
    assert config.kubernetes is not None and config.kubernetes.publish_root_cert
    assert config.kubernetes.qps >= 500 and config.kubernetes.burst >= 1000
    assert config.automatic_rotation is False  # keys from a Secret: rotate by hand
