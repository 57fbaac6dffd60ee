"""parse_csr finds the CSR PEM block with a fast path when the input has one BEGIN and one
END marker; it must pick exactly the block (or reject exactly the inputs) that the lazy
pattern's full scan does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from citadel.identity.csr import _PEM_CSR, _one_pem_block

PIECES = [
    b"-----BEGIN CERTIFICATE REQUEST-----",
    b"-----BEGIN NEW CERTIFICATE REQUEST-----",
    b"-----END CERTIFICATE REQUEST-----",
    b"-----END NEW CERTIFICATE REQUEST-----",
    b"-----BEGIN CERTIFICATE-----",
    b"-----BEGIN",
    b"-----END",
    b"-----",
    b"-",
    b"\n",
    b"\r\n",
    b"\r",
    b"MIIBxzCCAW0CAQAw",
    b"Proc-Type: 4,ENCRYPTED",
    b" ",
    b"\x00",
]


def _reference(raw: bytes) -> bytes | None:
    matches = list(_PEM_CSR.finditer(raw))
    return matches[0].group(0) if len(matches) == 1 else None


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12))
def test_the_fast_path_finds_the_same_pem_block_as_the_full_scan(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    assert _one_pem_block(raw) == _reference(raw)


def test_a_well_formed_block_with_surrounding_text_is_found() -> None:
    block = b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----"
    assert _one_pem_block(b"junk\n" + block + b"\ntrailer\n") == block
    assert _one_pem_block(block + b"\n" + block) is None
    empty_body = b"-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----"
    assert _one_pem_block(empty_body) is None
