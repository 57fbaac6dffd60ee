from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from node_agent.cli import main

ROOT = Path(__file__).resolve().parents[3]


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node_agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("spiffe_id: [unclosed\n", "invalid YAML at line 2"),
        ("spiffe_id: spiffe://example.org/a\n", "'ca' is required"),
        ("spiffe_id: spiffe://example.org/a\nbogus: 1\n", "unknown key 'bogus'"),
    ],
    ids=["syntax-error", "missing-section", "unknown-key"],
)
def test_config_error_exits_2_with_one_clear_line_and_no_traceback(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(content)
    result = _run_cli("run", "--config", str(config))
    assert result.returncode == 2
    assert message in result.stderr
    assert "configuration error" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--config", str(tmp_path / "absent.yaml")])
    assert code == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_status_of_an_agent_that_is_not_running_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["status", "--url", f"http://127.0.0.1:{port}"])
    assert code == 1
    assert "cannot reach the agent's status endpoint" in capsys.readouterr().err


def test_status_without_a_target_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CITADEL_AGENT_CONFIG", raising=False)
    assert main(["status"]) == 2
    assert "--url or --config" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "No such command" in capsys.readouterr().err


_LISTENER = (
    "import socket, sys, time\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "s.bind(sys.argv[1]); s.listen(4)\n"
    "print('listening', flush=True)\n"
    "time.sleep(60)\n"
)


def test_run_refuses_a_socket_held_by_another_process(tmp_path: Path) -> None:
    socket_path = tmp_path / "sds.sock"
    holder = subprocess.Popen(
        [sys.executable, "-c", _LISTENER, str(socket_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "listening"
        (tmp_path / "roots.pem").write_text("")
        config = tmp_path / "agent.yaml"
        config.write_text(
            "spiffe_id: spiffe://example.org/ns/a/sa/b\n"
            "ca:\n"
            "  address: 127.0.0.1:1\n"
            f"  root_bundle: {tmp_path / 'roots.pem'}\n"
            "  credential: {type: join_token, token: abc}\n"
            f"sds: {{socket_path: {socket_path}}}\n"
            "status: {port: 0}\n"
        )
        result = _run_cli("run", "--config", str(config))
        assert result.returncode == 1
        assert f"SDS socket {socket_path} is in use by another live process" in result.stderr
        assert f"pid {holder.pid}" in result.stderr
        assert "Traceback" not in result.stderr
        assert socket_path.exists()
    finally:
        holder.kill()
        holder.wait(10)
