"""The CLI's error contract: one line, an exit code, never a traceback."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from citadel.ca.errors import CaNotReadyError
from citadel.cli import CitadelGroup, cli
from citadel.cli_errors import ErrorHandlingGroup, one_line
from citadel.cli_params import normalise_serial, parse_duration
from tests.unit.cli.cli_testkit import assert_fails, assert_ok, run


def _group_raising(exc: BaseException) -> click.Group:
    @click.group(cls=ErrorHandlingGroup)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise exc

    return group


@pytest.mark.parametrize(
    ("exc", "code", "fragment"),
    [
        (CaNotReadyError("the CA is not\ninitialised"), 1, "the CA is not initialised"),
        (PermissionError(13, "Permission denied", "/k"), 1, "Permission denied: /k"),
        (RuntimeError("secret internal detail"), 70, "unexpected internal error (RuntimeError)"),
        (KeyError("x"), 70, "unexpected internal error (KeyError)"),
        (KeyboardInterrupt(), 130, "aborted"),
        (click.UsageError("bad flag"), 2, "bad flag"),
    ],
    ids=["citadel-error", "os-error", "unexpected", "unexpected-keyerror", "interrupt", "usage"],
)
def test_every_failure_becomes_one_error_line_and_an_exit_code(
    exc: BaseException, code: int, fragment: str
) -> None:
    result = CliRunner().invoke(_group_raising(exc), ["boom"], catch_exceptions=False)
    line = assert_fails(result, code, fragment)
    assert "secret internal detail" not in line


def test_unexpected_errors_log_their_detail_only_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("DEBUG", logger="citadel.cli"):
        CliRunner().invoke(_group_raising(RuntimeError("boom detail")), ["boom"])
    records = [r for r in caplog.records if r.name == "citadel.cli"]
    assert records and all(r.levelname == "DEBUG" for r in records)
    assert records[-1].exc_info is not None


def test_one_line_collapses_newlines_and_caps_length() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 10_000)) == 500


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("30d", timedelta(days=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 2H ", timedelta(hours=2)),
        ("0s", timedelta(0)),
    ],
    ids=["seconds", "minutes", "hours", "days", "combined", "case-and-space", "zero"],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "24", "h", "-1h", "1.5h", "1w", "24 h", "1h-", "99999999999d", "36501d", "1e3s"],
    ids=[
        "empty", "no-unit", "no-number", "negative", "fraction", "weeks", "inner-space",
        "trailing-junk", "too-many-digits", "over-100-years", "exponent",
    ],
)
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|100 years"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0A:1b", "a1b"), ("0x00ff", "ff"), ("DEADBEEF", "deadbeef"), ("0", "0")],
    ids=["colons-and-leading-zero", "0x-prefix", "uppercase", "zero"],
)
def test_serials_are_normalised_like_stored_ones(text: str, expected: str) -> None:
    assert normalise_serial(text) == expected


def test_help_lists_every_command_and_needs_no_data_dir(tmp_path: Path) -> None:
    out = assert_ok(run(tmp_path / "absent", "--help"))
    for command in ("init", "db", "ca", "bundle", "cert", "audit", "serve"):
        assert f"  {command}" in out
    assert not (tmp_path / "absent").exists()


def test_version_is_printed() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "citadel, version" in result.output


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    assert_fails(run(tmp_path, "frobnicate"), 2, "No such command 'frobnicate'")


def test_bad_trust_domain_is_a_usage_error(tmp_path: Path) -> None:
    assert_fails(run(tmp_path, "--trust-domain", "Example.ORG", "ca", "show"), 2, "lowercase")


def _lazy_group() -> CitadelGroup:
    @click.group(cls=CitadelGroup)
    def group() -> None:
        pass

    @click.command("serve")
    def fallback() -> None:
        raise click.ClickException("the CA server is not available")

    group.add_lazy_command("serve", "citadel.no_such_module", "serve_command", fallback=fallback)
    group.add_lazy_command("authz", "citadel.no_such_module.cli", "authz")
    group.add_lazy_command("real", "citadel.cli_cert", "cert")
    return group


def test_a_missing_optional_module_falls_back_or_is_hidden() -> None:
    group = _lazy_group()
    ctx = click.Context(group)
    assert group.list_commands(ctx) == ["real", "serve"]
    assert group.get_command(ctx, "authz") is None
    assert_fails(CliRunner().invoke(group, ["serve"]), 1, "not available")


def test_a_present_optional_module_is_loaded_on_demand() -> None:
    group = _lazy_group()
    command = group.get_command(click.Context(group), "real")
    assert command is not None and command.name == "cert"


def test_serve_and_authz_resolve_to_their_packages_when_installed() -> None:
    ctx = click.Context(cli)
    serve = cli.get_command(ctx, "serve")
    assert serve is not None and serve.callback is not None
    try:
        import citadel.server.app  # noqa: F401
    except ModuleNotFoundError:
        assert serve.callback.__module__ == "citadel.cli"
    else:
        assert serve.callback.__module__ != "citadel.cli"


def test_db_upgrade_creates_the_schema_on_a_fresh_data_dir(tmp_path: Path) -> None:
    out = assert_ok(run(tmp_path / "fresh", "db", "upgrade"))
    assert "is at the latest schema" in out
    assert (tmp_path / "fresh" / "citadel.db").is_file()
    assert_ok(run(tmp_path / "fresh", "db", "upgrade"))  # idempotent


def test_db_upgrade_hides_the_password_of_the_url(tmp_path: Path) -> None:
    result = run(tmp_path, "--db-url", "postgresql+psycopg://u:hunter2@127.0.0.1:1/db",
                 "db", "upgrade")
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_malformed_db_url_fails_cleanly(tmp_path: Path) -> None:
    assert_fails(run(tmp_path, "--db-url", "nonsense", "db", "upgrade"), 1, "database URL")
