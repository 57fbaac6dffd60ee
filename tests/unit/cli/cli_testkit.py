"""Running the ``citadel`` CLI in-process (click's CliRunner) for tests."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from citadel.cli import cli

PASSPHRASE = "cli test passphrase"
WORKLOAD = "spiffe://cluster.local/ns/default/sa/web"


def run(data_dir: Path, *args: str, passphrase: str | None = PASSPHRASE) -> Result:
    """``citadel --data-dir DATA_DIR ARGS...`` with a clean CITADEL_* environment."""
    env = {
        "CITADEL_DATA_DIR": None,
        "CITADEL_DB_URL": None,
        "CITADEL_TRUST_DOMAIN": None,
        "CITADEL_KEY_PASSPHRASE_FILE": None,
        "CITADEL_KEY_PASSPHRASE": passphrase,
    }
    return CliRunner().invoke(
        cli, ["--data-dir", str(data_dir), *args], env=env, catch_exceptions=False
    )


def assert_ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def assert_fails(result: Result, code: int, *fragments: str) -> str:
    """The command failed with ``code``, a one-line ``Error:`` and no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def initialised(data_dir: Path) -> Path:
    assert_ok(run(data_dir, "init"))
    return data_dir
