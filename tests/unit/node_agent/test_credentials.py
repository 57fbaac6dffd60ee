from __future__ import annotations

from pathlib import Path

import pytest

from node_agent.credentials import JoinTokenCredential, TokenFileCredential
from node_agent.errors import CredentialError


def test_token_file_is_re_read_on_every_call(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first.jwt.value\n")
    credential = TokenFileCredential(token_file)
    assert credential.call_auth().metadata == (("authorization", "Bearer first.jwt.value"),)
    token_file.write_text("rotated.jwt.value")
    assert credential.call_auth().metadata == (("authorization", "Bearer rotated.jwt.value"),)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"  \n\t ", "is empty"),
        (b"\x00\xff\xfe binary", "does not hold a token"),
        (b"two words", "does not hold a token"),
        ("caf\u00e9".encode(), "does not hold a token"),
        (b"x" * (64 * 1024 + 1), "larger than"),
    ],
    ids=["empty", "whitespace-only", "binary", "inner-space", "non-ascii", "oversized"],
)
def test_garbage_token_file_is_a_credential_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_bytes(content)
    with pytest.raises(CredentialError, match=message):
        TokenFileCredential(token_file).call_auth()


def test_missing_token_file_is_a_credential_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="cannot read token file"):
        TokenFileCredential(tmp_path / "absent").call_auth()


def test_join_token_goes_in_its_own_header() -> None:
    auth = JoinTokenCredential(token="abcdefghijklmnopqrstuvwxyz0123456789").call_auth()
    assert auth.metadata == (("citadel-join-token", "abcdefghijklmnopqrstuvwxyz0123456789"),)
    assert auth.client_chain_pem is None


def test_token_never_appears_in_the_error_message(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_bytes(b"secret part\x01")
    with pytest.raises(CredentialError) as caught:
        TokenFileCredential(token_file).call_auth()
    assert "secret" not in caught.value.message
