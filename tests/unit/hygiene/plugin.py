"""pytest plugin: the whole session's logs are scanned for private keys, JWTs and join tokens.

Registered from ``tests/conftest.py``. It

* installs a handler on the root logger for the whole session; every record that reaches
  it is formatted (traceback included) and scanned;
* wraps the subprocess harnesses of the suite (``citadel serve``, ``citadel-agent``,
  ``citadel authz serve``, Envoy, PostgreSQL): when one is stopped (or killed), its log
  file is scanned before the test's temporary tree can be removed;
* remembers the value of every join token the session creates (in process through
  :func:`citadel.server.join_tokens.create_join_token`, or through the CA harness's
  ``citadel token create``), so that its appearance anywhere is recognised;
* fails the session (exit status 1) when anything was found, naming where — never the
  secret itself — in a terminal summary section.

Other log files (a test's own subprocess) go through :func:`scan_log_file`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.unit.hygiene.secret_scan import Finding, SecretScanner

__all__ = ["planted", "scan_log_file", "session_scanner"]

_SCANNER = SecretScanner()
LEVEL_ENV = "CITADEL_LOG_SCAN_LEVEL"
_FORMAT = "%(levelname)s %(name)s: %(message)s"
_state: dict[str, str] = {"test": "session start-up"}
_restore: list[Callable[[], None]] = []
_unwrapped: list[str] = []

# (module, class or None, attribute, where its log file is)
_LOGGED_HARNESSES: tuple[tuple[str, str, str, str], ...] = (
    ("tests.peers.citadel_server", "CitadelServer", "stop", "log_path"),
    ("tests.integration.server.serve_process", "CitadelServe", "stop", "log_file"),
    ("tests.integration.node_agent.agent_process", "AgentProcess", "stop", "log_path"),
    ("tests.integration.node_agent.agent_process", "AgentProcess", "kill", "log_path"),
    ("tests.peers.envoy", "EnvoyProcess", "stop", "log_path"),
    ("tests.integration.authz_envoy.authz_process", "AuthzServeProcess", "stop", "log_path"),
)


def session_scanner() -> SecretScanner:
    """The scanner whose findings fail the session."""
    return _SCANNER


def scan_log_file(path: Path) -> list[Finding]:
    """Scan one log file now (call it before the file's directory is removed)."""
    return _SCANNER.scan_file(path, f"{path} (stopped during {_state['test']})")


@contextmanager
def planted() -> Iterator[list[Finding]]:
    """For tests that plant a secret on purpose: the findings made inside the block are
    handed to the test and then withdrawn, so they do not fail the session."""
    before = set(_SCANNER.findings)
    made: list[Finding] = []
    try:
        yield made
    finally:
        made.extend(f for f in _SCANNER.findings if f not in before)
        _SCANNER.forget(made)


class _RecordScanner(logging.Handler):
    """Formats every record it sees (as a handler would) and scans the text."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a broken record must not break the test that logged it
            text = f"{record.msg!s} {record.args!r}"
        _SCANNER.scan_text(text, f"log record of {record.name!r} during {_state['test']}")


_HANDLER = _RecordScanner()


# --- wrapping the harnesses ------------------------------------------------------------------
def _patch(owner: Any, name: str, replacement: Any) -> None:
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    _restore.append(lambda: setattr(owner, name, original))


def _wrap_stop(cls: type[Any], method: str, log_attribute: str) -> None:
    original = getattr(cls, method)

    @functools.wraps(original)
    def stop_then_scan(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            path = getattr(self, log_attribute, None)
            if isinstance(path, Path):
                scan_log_file(path)

    _patch(cls, method, stop_then_scan)


def _wrap_harness(module_name: str, class_name: str, method: str, log_attribute: str) -> None:
    _wrap_stop(getattr(importlib.import_module(module_name), class_name), method, log_attribute)


def _wrap_postgres() -> None:
    module = importlib.import_module("tests.peers.postgres")
    original = module.stop_postgres

    @functools.wraps(original)
    def scan_before_stop(server: Any, *args: Any, **kwargs: Any) -> Any:
        # Before: stop_postgres removes the server's directory (the log with it).
        scan_log_file(Path(server.base_dir) / "server.log")
        return original(server, *args, **kwargs)

    _patch(module, "stop_postgres", scan_before_stop)


def _remembering(original: Callable[..., Any], token_of: Callable[[Any], object]) -> Any:
    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        token = token_of(result)
        if isinstance(token, str):
            _SCANNER.remember_token(token)
        return result

    return create


def _wrap_join_tokens() -> None:
    tokens = importlib.import_module("citadel.server.join_tokens")
    _patch(
        tokens,
        "create_join_token",
        _remembering(tokens.create_join_token, lambda created: getattr(created, "token", None)),
    )
    peers = importlib.import_module("tests.peers.citadel_server")
    server = peers.CitadelServer
    _patch(server, "create_join_token", _remembering(server.create_join_token, lambda t: t))


def _lower_levels() -> None:
    """With ``CITADEL_LOG_SCAN_LEVEL=DEBUG`` the project's loggers emit (and so have
    scanned) their debug records too; the default leaves every level as the tests set it."""
    level = os.environ.get(LEVEL_ENV, "").upper()
    if level not in logging.getLevelNamesMapping():
        return
    for name in ("citadel", "node_agent"):
        logger = logging.getLogger(name)
        previous = logger.level
        logger.setLevel(level)
        _restore.append(functools.partial(logger.setLevel, previous))


def install() -> None:
    """Wrap the harnesses and start scanning log records (idempotent)."""
    if _restore:
        return
    _lower_levels()
    root = logging.getLogger()
    root.addHandler(_HANDLER)
    _restore.append(lambda: root.removeHandler(_HANDLER))
    for module_name, class_name, method, log_attribute in _LOGGED_HARNESSES:
        _best_effort(
            f"{module_name}.{class_name}.{method}",
            functools.partial(_wrap_harness, module_name, class_name, method, log_attribute),
        )
    _best_effort("tests.peers.postgres.stop_postgres", _wrap_postgres)
    _best_effort("join token creation", _wrap_join_tokens)


def _best_effort(what: str, wrap: Callable[[], None]) -> None:
    """A harness that cannot be imported now fails its own tests, not the whole session;
    the summary says which log files went unscanned."""
    try:
        wrap()
    except Exception as exc:
        _unwrapped.append(f"{what}: {type(exc).__name__}: {exc}"[:300])


def uninstall() -> None:
    while _restore:
        _restore.pop()()


# --- hooks -----------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    install()


def pytest_unconfigure(config: pytest.Config) -> None:
    uninstall()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _state["test"] = nodeid


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _state["test"] = f"after {nodeid}"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SCANNER.findings and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for note in _unwrapped:
        terminalreporter.write_line(f"log scan: not watching {note}")
    findings = _SCANNER.findings
    if not findings:
        return
    terminalreporter.write_sep("=", "secrets found in logs (the session fails)", red=True)
    for finding in findings:
        terminalreporter.write_line(finding.describe())
    if _SCANNER.dropped:
        terminalreporter.write_line(f"... and {_SCANNER.dropped} more")
