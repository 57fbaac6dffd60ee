"""The log scan finds planted secrets, and a session whose logs hold one fails."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

import pytest

from citadel.identity.keys import KeyType, generate_private_key, private_key_to_pkcs8_pem
from tests.integration.server.tokens import unsigned_token
from tests.unit.hygiene.plugin import planted, scan_log_file, session_scanner
from tests.unit.hygiene.secret_scan import SecretScanner

ROOT = Path(__file__).resolve().parents[3]


def _key_pem() -> str:
    return private_key_to_pkcs8_pem(generate_private_key(KeyType.EC_P256)).decode()


def _jwt() -> str:
    return unsigned_token({"alg": "ES256", "kid": "k"}, {"sub": "spiffe://x/y"}, b"sig")


@pytest.mark.parametrize(
    ("make_text", "kind"),
    [
        (lambda: f"loaded key:\n{_key_pem()}", "private_key"),
        (lambda: "-----BEGIN EC PRIVATE KEY-----\nMHc...\n", "private_key"),
        (lambda: f"authorization: Bearer {_jwt()}", "jwt"),
    ],
    ids=["pkcs8-pem", "sec1-pem-header", "bearer-jwt"],
)
def test_scanner_finds_a_planted_secret(make_text: object, kind: str) -> None:
    scanner = SecretScanner()
    text = make_text()  # type: ignore[operator]
    found = scanner.scan_text(text, "sample")
    assert [f.kind for f in found] == [kind]
    assert scanner.findings == found


def test_scanner_finds_a_known_join_token_and_never_repeats_it() -> None:
    scanner = SecretScanner()
    token = "Zk3p0Q" + "x" * 37
    scanner.remember_token(token)
    found = scanner.scan_text(f"first line\nCSR with token {token} refused", "log")
    assert [f.kind for f in found] == ["join_token"]
    assert "(line 2)" in found[0].where
    assert token not in found[0].describe()


@pytest.mark.parametrize(
    "text",
    [
        "certificate issued serial=5f3a spiffe_id=spiffe://example.org/ns/a/sa/b",
        "fingerprint sha256=" + "ab" * 32,
        "kid=Zk3p0Qxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx (unknown key)",
        "public key -----BEGIN PUBLIC KEY-----",
    ],
    ids=["serial-and-id", "fingerprint", "key-id", "public-key"],
)
def test_scanner_lets_what_logs_may_hold_pass(text: str) -> None:
    assert SecretScanner().scan_text(text, "log") == []


def test_a_log_record_with_a_key_is_caught_by_the_session_handler() -> None:
    with planted() as made:
        logging.getLogger("citadel.hygiene.probe").error("oops %s", _key_pem())
    assert [f.kind for f in made] == ["private_key"]
    assert "citadel.hygiene.probe" in made[0].where
    assert made[0] not in session_scanner().findings  # withdrawn: planted on purpose


def test_a_harness_log_file_with_a_token_is_caught(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    log.write_text(f"INFO ok\nDEBUG header authorization=Bearer {_jwt()}\n")
    with planted() as made:
        scan_log_file(log)
    assert [f.kind for f in made] == ["jwt"]
    assert str(log) in made[0].where


def test_a_session_whose_logs_hold_a_key_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_leak=textwrap.dedent(
            """
            import logging

            from citadel.identity.keys import generate_private_key, private_key_to_pkcs8_pem

            def test_passes_but_logs_a_key():
                key = private_key_to_pkcs8_pem(generate_private_key()).decode()
                logging.getLogger("leaky").warning("here it is: %s", key)

            def test_clean():
                logging.getLogger("fine").warning("serial=01ab")
            """
        )
    )
    env_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", env_path)  # the subprocess imports tests.*
    result = pytester.runpytest_subprocess(
        "-p", "tests.unit.hygiene.plugin", "-p", "no:cacheprovider", timeout=120
    )
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*secrets found in logs*", "private_key in log record of 'leaky'*"]
    )
    assert "BEGIN PRIVATE KEY" not in result.stdout.str()


def test_a_clean_session_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(
        test_clean=textwrap.dedent(
            """
            import logging

            def test_clean():
                logging.getLogger("fine").warning("serial=01ab")
            """
        )
    )
    env_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", env_path)
    result = pytester.runpytest_subprocess(
        "-p", "tests.unit.hygiene.plugin", "-p", "no:cacheprovider", timeout=120
    )
    assert result.ret == pytest.ExitCode.OK
