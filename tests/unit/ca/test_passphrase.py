from __future__ import annotations

import stat
from pathlib import Path

import pytest

from citadel.ca.config import CaConfig
from citadel.ca.errors import KeyManagerError
from citadel.ca.passphrase import read_passphrase_file, resolve_passphrase

ENV = "CITADEL_KEY_PASSPHRASE"


def _config(tmp_path: Path, **kwargs: object) -> CaConfig:
    return CaConfig(data_dir=tmp_path, **kwargs)  # type: ignore[arg-type]


def test_explicit_passphrase_wins_over_file_and_environment(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(b"from-file\n")
    config = _config(tmp_path, key_passphrase=b"explicit", key_passphrase_file=tmp_path / "pw")
    assert resolve_passphrase(config, environ={ENV: "from-env"}) == b"explicit"


def test_passphrase_file_wins_over_environment_and_drops_the_newline(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(b"from-file\r\nsecond line ignored\n")
    config = _config(tmp_path, key_passphrase_file=tmp_path / "pw")
    assert resolve_passphrase(config, environ={ENV: "from-env"}) == b"from-file"


def test_environment_is_used_when_nothing_else_is_configured(tmp_path: Path) -> None:
    assert resolve_passphrase(_config(tmp_path), environ={ENV: "from-env"}) == b"from-env"


def test_without_any_source_a_passphrase_file_is_generated_on_first_start(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    first = resolve_passphrase(config, environ={}, create=True)
    assert len(first) >= 32
    assert stat.S_IMODE(config.generated_passphrase_file.stat().st_mode) == 0o600
    assert resolve_passphrase(config, environ={}) == first


def test_without_any_source_and_no_generated_file_it_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyManagerError, match="no key passphrase is configured"):
        resolve_passphrase(_config(tmp_path), environ={})


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\n", "empty"), (b"x" * 5000, "too large")],
    ids=["empty", "only-newline", "oversized"],
)
def test_unusable_passphrase_files_are_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "pw").write_bytes(content)
    with pytest.raises(KeyManagerError, match=message):
        read_passphrase_file(tmp_path / "pw")


def test_missing_passphrase_file_is_a_clear_error(tmp_path: Path) -> None:
    config = _config(tmp_path, key_passphrase_file=tmp_path / "absent")
    with pytest.raises(KeyManagerError, match="cannot be read"):
        resolve_passphrase(config, environ={ENV: "ignored"})


def test_empty_explicit_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyManagerError, match="empty"):
        resolve_passphrase(_config(tmp_path, key_passphrase=b""), environ={})
