from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from node_agent.config import load_config, parse_config
from node_agent.errors import ConfigError

MINIMAL = {
    "spiffe_id": "spiffe://example.org/ns/default/sa/web",
    "ca": {
        "address": "127.0.0.1:15012",
        "root_bundle": "/etc/citadel/root-cert.pem",
        "credential": {"type": "token_file", "path": "/var/run/secrets/token"},
    },
}


def _with(**changes: object) -> dict[str, object]:
    import copy

    doc = copy.deepcopy(MINIMAL)
    doc.update(changes)
    return doc


def test_minimal_config_gets_the_documented_defaults() -> None:
    config = parse_config(MINIMAL, {})
    assert config.rotation.ratio == 0.5
    assert config.rotation.jitter_fraction == 0.01
    assert config.sds.socket_path == Path("/run/citadel-agent/sds.sock")
    assert config.status.port == 15021
    assert config.renew_with_certificate is False  # projected tokens are re-read instead
    assert config.ttl is None


def test_environment_overrides_the_file() -> None:
    config = parse_config(
        MINIMAL,
        {
            "CITADEL_AGENT_CA_ADDRESS": "10.0.0.1:15012",
            "CITADEL_AGENT_SDS_SOCKET_PATH": "/tmp/x/sds.sock",
            "CITADEL_AGENT_ROTATION_RATIO": "0.25",
            "CITADEL_AGENT_TTL_SECONDS": "600",
            "CITADEL_AGENT_FILE_SECRETS_ALLOWED_DIRS": "/etc/certs,/etc/more",
            "CITADEL_AGENT_CONFIG": "/ignored/by/the/parser.yaml",
        },
    )
    assert config.ca.address == "10.0.0.1:15012"
    assert config.sds.socket_path == Path("/tmp/x/sds.sock")
    assert config.rotation.ratio == 0.25
    assert config.ttl == timedelta(seconds=600)
    assert config.file_secrets.allowed_dirs == (Path("/etc/certs"), Path("/etc/more"))


def test_join_token_always_renews_with_the_certificate() -> None:
    doc = _with()
    doc["ca"]["credential"] = {"type": "join_token", "token": "t" * 43}  # type: ignore[index]
    doc["rotation"] = {"renew_with_certificate": False}
    assert parse_config(doc, {}).renew_with_certificate is True


@pytest.mark.parametrize(
    ("doc", "env", "message"),
    [
        ({}, {}, "'spiffe_id' is required"),
        (_with(spiffe_id="spiffe://example.org"), {}, "needs a path"),
        (_with(spiffe_id="http://x/y"), {}, "'spiffe_id' is invalid"),
        (
            _with(sds={"socket_pth": "/x"}),
            {},
            "unknown key 'sds.socket_pth' (did you mean 'socket_path'?)",
        ),
        (_with(rotation={"ratio": 1.5}), {}, "ratio"),
        (_with(rotation={"ratio": "half"}), {}, "'rotation.ratio' must be a number"),
        (_with(status={"port": 70000}), {}, "status.port"),
        (_with(key_type="dsa"), {}, "'key_type' must be one of"),
        (_with(ttl_seconds=-5), {}, "positive number of seconds"),
        (_with(output_dir="relative/dir"), {}, "must be an absolute path"),
        (MINIMAL, {"CITADEL_AGENT_CA_ADRESS": "x"}, "unknown environment override"),
        (["a", "list"], {}, "must be a mapping"),
    ],
    ids=[
        "empty",
        "trust-domain-id",
        "not-spiffe",
        "typo-with-suggestion",
        "ratio-out-of-range",
        "ratio-wrong-type",
        "port-out-of-range",
        "unknown-key-type",
        "negative-ttl",
        "relative-output-dir",
        "unknown-env-override",
        "not-a-mapping",
    ],
)
def test_invalid_setting_is_a_config_error_naming_the_key(
    doc: object, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("credential", "message"),
    [
        ({"type": "password"}, "must be one of"),
        ({"type": "token_file"}, "'ca.credential.path' is required"),
        ({"type": "join_token"}, "exactly one of"),
        ({"type": "certificate", "cert_file": "/a"}, "key_file"),
    ],
    ids=["unknown-type", "token-file-without-path", "join-token-without-token", "cert-without-key"],
)
def test_incomplete_credential_is_a_config_error(credential: object, message: str) -> None:
    doc = _with()
    doc["ca"]["credential"] = credential  # type: ignore[index]
    with pytest.raises(ConfigError, match=message):
        parse_config(doc, {})


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("spiffe_id: spiffe://example.org/a\nca: [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d"):
        load_config(path, {})


def test_json_config_is_accepted_and_its_errors_name_the_line(tmp_path: Path) -> None:
    import json

    good = tmp_path / "agent.json"
    good.write_text(json.dumps(MINIMAL))
    assert str(load_config(good, {}).spiffe_id) == MINIMAL["spiffe_id"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"spiffe_id": \n}')
    with pytest.raises(ConfigError, match="invalid JSON at line 2"):
        load_config(bad, {})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml", {})


def test_binary_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path, {})


def test_shipped_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[3] / "deploy" / "envoy" / "citadel-agent.yaml"
    config = load_config(example, {})
    assert str(config.spiffe_id) == "spiffe://example.org/ns/default/sa/server"
    assert config.ca.mtls_address == "127.0.0.1:15013"
    assert config.file_secrets.allowed_dirs == (Path("/etc/certs"),)


def test_entries_and_workload_api_are_off_unless_configured() -> None:
    config = parse_config(MINIMAL, {})
    assert (config.entries, config.workload_api) == (None, None)


def test_a_workload_api_socket_turns_on_entry_identities() -> None:
    config = parse_config(_with(workload_api={"socket": "/run/citadel/workload.sock"}), {})
    assert config.workload_api is not None
    assert str(config.workload_api.socket_path) == "/run/citadel/workload.sock"
    assert config.entries is not None
    assert config.entries.sync_interval == timedelta(seconds=5)


def test_entry_sync_interval_can_be_overridden_from_the_environment() -> None:
    env = {"CITADEL_AGENT_ENTRIES_SYNC_INTERVAL_SECONDS": "2"}
    config = parse_config(_with(entries={}), env)
    assert config.entries is not None
    assert config.entries.sync_interval == timedelta(seconds=2)


def test_an_unknown_key_in_the_entries_section_is_refused() -> None:
    with pytest.raises(ConfigError, match="entries"):
        parse_config(_with(entries={"sync_every": 5}), {})
