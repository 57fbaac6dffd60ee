"""Workload CSRs: building them, parsing them, and the strict checks the CA applies."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from citadel.identity.csr import (
    MAX_CSR_BYTES,
    build_csr,
    csr_to_pem,
    parse_csr,
    validate_workload_csr,
)
from citadel.identity.errors import InvalidCsrError
from citadel.identity.keys import (
    KeyType,
    PrivateKey,
    generate_private_key,
    public_keys_equal,
)
from citadel.identity.spiffe_id import SpiffeId
from tests.conftest import FIXED_NOW
from tests.fixtures.csr_defects import DEFECTIVE_CSRS, CsrShape, build_csr_der
from tests.fixtures.der import ECDSA_WITH_SHA1, assemble_signed, split_signed
from tests.fixtures.x509_defects import key_usage
from tests.peers import require_binary

WEB = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return generate_private_key(KeyType.EC_P256)


@pytest.fixture(scope="module")
def csr_der(key: PrivateKey) -> bytes:
    return build_csr(key, WEB).public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def csr_pem(key: PrivateKey) -> str:
    return csr_to_pem(build_csr(key, WEB))


def _reject(data: bytes | str, *, allow_dns_names: bool = False) -> InvalidCsrError:
    with pytest.raises(InvalidCsrError) as caught:
        validate_workload_csr(parse_csr(data), allow_dns_names=allow_dns_names)
    assert caught.value.kind == "invalid_csr"
    return caught.value


# --- valid CSRs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key_type",
    [pytest.param(kt, id=kt.value) for kt in (KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048)],
)
def test_valid_csr_yields_its_spiffe_id_and_key(key_type: KeyType) -> None:
    key = generate_private_key(key_type)
    info = validate_workload_csr(parse_csr(csr_to_pem(build_csr(key, WEB))))
    assert info.spiffe_id == WEB
    assert info.key_type is key_type
    assert public_keys_equal(info.public_key, key)
    assert info.dns_names == ()


def test_built_csr_has_an_empty_subject_and_a_critical_san(key: PrivateKey) -> None:
    csr = build_csr(key, WEB)
    assert len(csr.subject) == 0
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [str(WEB)]


def test_der_csr_is_accepted(csr_der: bytes) -> None:
    assert validate_workload_csr(parse_csr(csr_der)).spiffe_id == WEB


def test_pem_csr_given_as_str_or_bytes_is_accepted(csr_pem: str) -> None:
    assert validate_workload_csr(parse_csr(csr_pem)).spiffe_id == WEB
    assert validate_workload_csr(parse_csr(csr_pem.encode())).spiffe_id == WEB


def test_pem_csr_with_new_certificate_request_label_is_accepted(csr_pem: str) -> None:
    legacy = csr_pem.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")
    assert validate_workload_csr(parse_csr(legacy)).spiffe_id == WEB


def test_pem_csr_with_crlf_line_endings_and_surrounding_text_is_accepted(csr_pem: str) -> None:
    wrapped = "comment before\r\n" + csr_pem.replace("\n", "\r\n") + "trailing text\r\n"
    assert validate_workload_csr(parse_csr(wrapped)).spiffe_id == WEB


def test_csr_with_allowed_key_usage_and_eku_extensions_is_accepted() -> None:
    shape = CsrShape(
        extensions=(
            (key_usage(), True),
            (
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                False,
            ),
        )
    )
    assert validate_workload_csr(parse_csr(build_csr_der(shape))).spiffe_id == WEB


def test_rsa_pss_signed_csr_is_accepted() -> None:
    key = generate_private_key(KeyType.RSA_2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(WEB))]), critical=True
        )
        .sign(
            key,
            hashes.SHA256(),
            rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
        )
    )
    assert validate_workload_csr(csr).key_type is KeyType.RSA_2048


# --- DNS names -----------------------------------------------------------------------------


def test_dns_san_is_rejected_by_default(key: PrivateKey) -> None:
    csr = csr_to_pem(build_csr(key, WEB, dns_names=["web.example.org"]))
    assert _reject(csr).message == "CSR must not carry DNS SANs"


def test_dns_san_is_allowed_when_policy_permits_and_comes_back_lowercased(key: PrivateKey) -> None:
    csr = build_csr(key, WEB, dns_names=["Web.Example.ORG", "*.apps.example.org"])
    info = validate_workload_csr(csr, allow_dns_names=True)
    assert info.dns_names == ("web.example.org", "*.apps.example.org")


def test_invalid_dns_name_is_rejected_by_default_as_a_dns_san(key: PrivateKey) -> None:
    csr = csr_to_pem(build_csr(key, WEB, dns_names=["bad_name.example.org"]))
    assert _reject(csr).message == "CSR must not carry DNS SANs"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("bad_name.example.org", id="underscore"),
        pytest.param("-web.example.org", id="leading-hyphen"),
        pytest.param("web-.example.org", id="trailing-hyphen"),
        pytest.param("web..example.org", id="empty-label"),
        pytest.param("web.example.org.", id="trailing-dot"),
        pytest.param("a" * 64 + ".example.org", id="label-over-63"),
        pytest.param(".".join(["a" * 60] * 5), id="name-over-253"),
        pytest.param("web.*.example.org", id="wildcard-not-leftmost"),
        pytest.param("web.example.org\n", id="trailing-newline-regression"),
        pytest.param("web example.org", id="space"),
        pytest.param("", id="empty"),
    ],
)
def test_invalid_dns_name_is_rejected_even_when_dns_names_are_allowed(
    key: PrivateKey, name: str
) -> None:
    csr = csr_to_pem(build_csr(key, WEB, dns_names=[name]))
    message = _reject(csr, allow_dns_names=True).message
    assert message.startswith("DNS SAN ")
    assert message.endswith(" is not a valid DNS name")


# --- CSRs with one defect each --------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [pytest.param(shape, fragment, id=name) for name, (shape, fragment) in DEFECTIVE_CSRS.items()],
)
def test_defective_csr_is_rejected_naming_the_rule(shape: CsrShape, fragment: str) -> None:
    assert _reject(build_csr_der(shape)).message == fragment


# --- signatures and algorithms ----------------------------------------------------------


def test_csr_with_a_tampered_signature_byte_is_rejected(csr_der: bytes) -> None:
    parts = split_signed(csr_der)
    signature = bytearray(parts.signature)
    signature[-1] ^= 0x01
    tampered = assemble_signed(parts.tbs, parts.algorithm, bytes(signature))
    assert _reject(tampered).message == "CSR signature does not verify"


def test_csr_carrying_the_signature_of_another_csr_is_rejected(csr_der: bytes) -> None:
    other = split_signed(
        build_csr(generate_private_key(), WEB).public_bytes(serialization.Encoding.DER)
    )
    mine = split_signed(csr_der)
    swapped = assemble_signed(mine.tbs, other.algorithm, other.signature)
    assert _reject(swapped).message == "CSR signature does not verify"


def test_csr_whose_spiffe_id_was_edited_after_signing_is_rejected(csr_der: bytes) -> None:
    edited = csr_der.replace(b"/sa/web", b"/sa/adm")
    assert edited != csr_der
    assert _reject(edited).message == "CSR signature does not verify"


def test_csr_with_a_weak_rsa_1024_key_is_rejected() -> None:
    weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 (weak on purpose)
    der = build_csr_der(CsrShape(), key=weak)
    assert _reject(der).message == (
        "CSR key is not allowed: RSA key of 1024 bits is too weak (minimum 2048)"
    )


def test_csr_with_a_p521_key_is_rejected() -> None:
    der = build_csr_der(CsrShape(), key=ec.generate_private_key(ec.SECP521R1()))
    assert _reject(der).message == (
        "CSR key is not allowed: elliptic curve secp521r1 is not allowed (use P-256 or P-384)"
    )


def test_csr_with_an_ed25519_key_is_rejected_as_a_key_problem() -> None:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(WEB))]), critical=True
        )
        .sign(ed25519.Ed25519PrivateKey.generate(), None)
    )
    assert _reject(csr_to_pem(csr)).message == (
        "CSR key is not allowed: key algorithm Ed25519PublicKey is not allowed"
    )


def test_cryptography_itself_refuses_to_sign_a_csr_with_sha1(key: PrivateKey) -> None:
    """Why the SHA-1 CSRs below are assembled by hand or by the openssl CLI."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    with pytest.raises(UnsupportedAlgorithm, match="sha1"):
        builder.sign(key, hashes.SHA1())  # type: ignore[arg-type]  # noqa: S303 (refusal is tested)


def test_csr_signed_with_sha1_is_rejected_as_weak(csr_der: bytes, key: PrivateKey) -> None:
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    parts = split_signed(csr_der)
    signature = key.sign(parts.tbs, ec.ECDSA(hashes.SHA1()))  # noqa: S303 (weak on purpose)
    sha1_csr = assemble_signed(parts.tbs, ECDSA_WITH_SHA1, signature)
    # A genuine SHA-1 signature (cryptography's CSR check calls it invalid all the same, which
    # is why the validator looks at the digest first and can name the real problem).
    key.public_key().verify(signature, parts.tbs, ec.ECDSA(hashes.SHA1()))  # noqa: S303
    assert parse_csr(sha1_csr).signature_hash_algorithm is not None
    assert _reject(sha1_csr).message == "CSR is signed with a weak or unsupported digest"


def test_csr_signed_with_sha1_by_openssl_is_rejected_as_weak(tmp_path: Path) -> None:
    openssl = require_binary("openssl", hint="apt-get install openssl")
    key_file = tmp_path / "key.pem"
    csr_file = tmp_path / "csr.pem"
    subprocess.run(
        [openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key_file)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    subprocess.run(
        [
            openssl,
            "req",
            "-new",
            "-sha1",
            "-key",
            str(key_file),
            "-subj",
            "/",
            "-addext",
            f"subjectAltName=critical,URI:{WEB}",
            "-out",
            str(csr_file),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    data = csr_file.read_bytes()
    assert parse_csr(data).signature_hash_algorithm is not None
    assert _reject(data).message == "CSR is signed with a weak or unsupported digest"


# --- malformed input ------------------------------------------------------------------------


def _two_csrs(pem: str) -> str:
    return pem + csr_to_pem(build_csr(generate_private_key(), WEB))


def _truncated_body(pem: str) -> str:
    lines = pem.splitlines()
    return "\n".join([lines[0], *lines[1:3], lines[-1]]) + "\n"


def _certificate_pem(_: str) -> str:
    key = generate_private_key()
    name = x509.Name([])
    now = FIXED_NOW
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(WEB))]), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        pytest.param(lambda pem: "", "CSR is empty", id="empty"),
        pytest.param(lambda pem: " \n\t ", "CSR is empty", id="whitespace-only"),
        pytest.param(
            lambda pem: "\x00\x01garbage\xff", "CSR could not be parsed", id="garbage-text"
        ),
        pytest.param(
            lambda pem: pem[: len(pem) // 2],
            "CSR PEM must hold exactly one certificate request",
            id="truncated-pem-without-end-line",
        ),
        pytest.param(_truncated_body, "CSR could not be parsed", id="truncated-pem-body"),
        pytest.param(
            lambda pem: pem.replace("M", "!", 3), "CSR could not be parsed", id="bad-base64"
        ),
        pytest.param(
            lambda pem: "A" * (1024 * 1024),
            f"CSR is larger than {MAX_CSR_BYTES} bytes",
            id="one-mib-blob",
        ),
        pytest.param(
            lambda pem: pem + " " * MAX_CSR_BYTES,
            f"CSR is larger than {MAX_CSR_BYTES} bytes",
            id="valid-csr-padded-past-limit",
        ),
        pytest.param(
            _two_csrs,
            "CSR PEM must hold exactly one certificate request",
            id="two-csrs-concatenated",
        ),
        pytest.param(
            _certificate_pem,
            "CSR PEM must hold exactly one certificate request",
            id="certificate-instead-of-csr",
        ),
        pytest.param(
            lambda pem: "-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----",
            "CSR PEM must hold exactly one certificate request",
            id="empty-pem-block",
        ),
        pytest.param(
            lambda pem: pem.replace("\nMII", "\n\udcffMII", 1),
            "CSR could not be parsed",
            id="lone-surrogate-in-str",
        ),
    ],
)
def test_malformed_csr_text_is_rejected(
    mangle: Callable[[str], str], message: str, csr_pem: str
) -> None:
    with pytest.raises(InvalidCsrError) as caught:
        parse_csr(mangle(csr_pem))
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        pytest.param(lambda der: b"", "CSR is empty", id="empty"),
        pytest.param(lambda der: bytes(range(256)), "CSR could not be parsed", id="garbage-bytes"),
        pytest.param(lambda der: der[:-10], "CSR could not be parsed", id="truncated-der"),
        pytest.param(lambda der: der + b"\x00", "CSR could not be parsed", id="trailing-byte"),
        pytest.param(lambda der: der + der, "CSR could not be parsed", id="two-ders-concatenated"),
        pytest.param(
            lambda der: b"\x00" * (1024 * 1024),
            f"CSR is larger than {MAX_CSR_BYTES} bytes",
            id="one-mib-blob",
        ),
        pytest.param(
            # the version INTEGER (02 01 00) right after the two SEQUENCE headers
            lambda der: der.replace(b"\x02\x01\x00", b"\x02\x01\x05", 1),
            "CSR could not be parsed",
            id="unknown-version-regression",
        ),
    ],
)
def test_malformed_csr_der_is_rejected(
    mangle: Callable[[bytes], bytes], message: str, csr_der: bytes
) -> None:
    with pytest.raises(InvalidCsrError) as caught:
        parse_csr(mangle(csr_der))
    assert caught.value.message == message
