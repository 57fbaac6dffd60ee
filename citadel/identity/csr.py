"""Building workload CSRs, and the strict checks the CA applies to them.

A workload CSR may carry exactly one URI SAN (a SPIFFE ID with a path), optionally DNS
names when policy allows them, and nothing else: no CA request, no IP or e-mail SANs, no
common name, and only the SAN, KeyUsage and ExtendedKeyUsage extensions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from citadel.identity.errors import InvalidCsrError, InvalidKeyError, InvalidSpiffeIdError
from citadel.identity.keys import KeyType, PrivateKey, PublicKey, key_type_of, signature_hash_for
from citadel.identity.spiffe_id import SpiffeId

__all__ = [
    "MAX_CSR_BYTES",
    "CsrInfo",
    "build_csr",
    "csr_to_pem",
    "parse_csr",
    "validate_workload_csr",
]

MAX_CSR_BYTES = 64 * 1024
_ALLOWED_EXTENSIONS = frozenset(
    {
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
    }
)
_WEAK_HASHES = ("md5", "sha1", "sha224")
_PEM_CSR = re.compile(
    rb"-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n.+?\r?\n"
    rb"-----END (NEW )?CERTIFICATE REQUEST-----",
    re.DOTALL,
)
# The same language with a greedy body. When the input holds a single BEGIN and a single END
# marker, the only possible match is the one between them, and this finds it without trying
# to end the body at every byte (see _one_pem_block).
_PEM_CSR_GREEDY = re.compile(
    rb"-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n.+\r?\n"
    rb"-----END (NEW )?CERTIFICATE REQUEST-----",
    re.DOTALL,
)
_DNS_LABEL = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


@dataclass(frozen=True, slots=True)
class CsrInfo:
    """What a validated CSR asks for."""

    spiffe_id: SpiffeId
    public_key: PublicKey
    key_type: KeyType
    dns_names: tuple[str, ...] = ()


def build_csr(
    key: PrivateKey, spiffe_id: SpiffeId, *, dns_names: Sequence[str] = ()
) -> x509.CertificateSigningRequest:
    """A CSR with an empty subject and the SPIFFE ID (plus DNS names) as SANs."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(spiffe_id))]
    names.extend(x509.DNSName(name) for name in dns_names)
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
    )
    return builder.sign(key, signature_hash_for(key))


def csr_to_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def parse_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse one PEM (or DER) CSR.

    Raises:
        InvalidCsrError: empty, larger than 64 KiB, not a CSR, or more than one CSR.
    """
    raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else bytes(data)
    if not raw.strip():
        raise InvalidCsrError("CSR is empty")
    if len(raw) > MAX_CSR_BYTES:
        raise InvalidCsrError(f"CSR is larger than {MAX_CSR_BYTES} bytes")
    pem_block: bytes | None = None
    if b"-----BEGIN" in raw:
        # Outside the try below: InvalidCsrError is a ValueError and would be re-labelled.
        pem_block = _one_pem_block(raw)
        if pem_block is None:
            raise InvalidCsrError("CSR PEM must hold exactly one certificate request")
    try:
        if pem_block is not None:
            return x509.load_pem_x509_csr(pem_block)
        return x509.load_der_x509_csr(raw)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is not a ValueError
        raise InvalidCsrError("CSR could not be parsed") from exc


def _one_pem_block(raw: bytes) -> bytes | None:
    """The one CSR PEM block in ``raw`` (``_PEM_CSR``'s only match), or None if there are
    none or several."""
    if raw.count(b"-----BEGIN") == 1 and raw.count(b"-----END") == 1:
        # Every match starts at a BEGIN marker and ends with an END marker, so the only
        # candidate spans the two; lazy and greedy bodies agree on whether it matches.
        match = _PEM_CSR_GREEDY.search(raw)
        return None if match is None else match.group(0)
    matches = list(_PEM_CSR.finditer(raw))
    return matches[0].group(0) if len(matches) == 1 else None


def _check_dns_name(name: str) -> str:
    # isascii first: str.lower() maps some non-ASCII letters (KELVIN SIGN) onto ASCII ones.
    # fullmatch, not match: '$' would accept a trailing newline.
    lowered = name.lower()
    if len(lowered) > 253 or not name.isascii() or not _DNS_LABEL.fullmatch(lowered):
        raise InvalidCsrError(f"DNS SAN {name[:64]!r} is not a valid DNS name")
    return lowered


_FORBIDDEN_NAMES: tuple[tuple[type[x509.GeneralName], str], ...] = (
    (x509.IPAddress, "IP address"),
    (x509.RFC822Name, "e-mail"),
    (x509.DirectoryName, "directory name"),
    (x509.RegisteredID, "registered ID"),
    (x509.OtherName, "other name"),
)


def _sorted_names(
    san: x509.SubjectAlternativeName,
) -> tuple[list[str], list[str], set[type[x509.GeneralName]]]:
    """One pass over the SAN: its URIs, its DNS names, and the other name kinds present
    (what ``get_values_for_type`` would find for each type, without a pass per type)."""
    uris: list[str] = []
    dns_names: list[str] = []
    others: set[type[x509.GeneralName]] = set()
    for name in san:
        if isinstance(name, x509.UniformResourceIdentifier):
            uris.append(name.value)
        elif isinstance(name, x509.DNSName):
            dns_names.append(name.value)
        else:
            others.update(kind for kind, _ in _FORBIDDEN_NAMES if isinstance(name, kind))
    return uris, dns_names, others


def validate_workload_csr(
    csr: x509.CertificateSigningRequest, *, allow_dns_names: bool = False
) -> CsrInfo:
    """Apply the strict workload CSR rules.

    Raises:
        InvalidCsrError: the message names the rule that failed.
    """
    # The digest first: cryptography reports a SHA-1 signature as invalid, which would hide
    # the real reason.
    try:
        hash_algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:
        raise InvalidCsrError("CSR is signed with a weak or unsupported digest") from exc
    if hash_algorithm is not None and hash_algorithm.name in _WEAK_HASHES:
        raise InvalidCsrError("CSR is signed with a weak or unsupported digest")
    try:
        signature_ok = csr.is_signature_valid
    except Exception as exc:  # cryptography raises assorted errors on odd algorithms
        raise InvalidCsrError("CSR signature could not be checked") from exc
    if not signature_ok:
        raise InvalidCsrError("CSR signature does not verify")
    try:
        public_key = csr.public_key()
        key_type = key_type_of(public_key)
    except InvalidKeyError as exc:
        raise InvalidCsrError(f"CSR key is not allowed: {exc.message}") from exc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidCsrError("CSR public key could not be read") from exc
    if hash_algorithm is None:  # after the key check: Ed25519 has no digest, and is a key problem
        raise InvalidCsrError("CSR is signed with a weak or unsupported digest")
    try:
        subject = csr.subject
    except ValueError as exc:
        raise InvalidCsrError("CSR subject is malformed") from exc
    if len(subject):  # workload CSRs normally have an empty subject
        if subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            raise InvalidCsrError("CSR must not carry a common name")
        if subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
            raise InvalidCsrError("CSR must not carry an e-mail address")
    try:
        extensions = list(csr.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise InvalidCsrError("CSR extensions are malformed") from exc
    san: x509.SubjectAlternativeName | None = None
    for extension in extensions:
        if extension.oid == ExtensionOID.BASIC_CONSTRAINTS:
            raise InvalidCsrError("CSR must not request a CA certificate")
        if extension.oid not in _ALLOWED_EXTENSIONS:
            raise InvalidCsrError(f"CSR extension {extension.oid.dotted_string} is not allowed")
        if extension.oid == ExtensionOID.KEY_USAGE:
            usage = extension.value
            assert isinstance(usage, x509.KeyUsage)
            if usage.key_cert_sign or usage.crl_sign:
                raise InvalidCsrError("CSR must not request certificate or CRL signing")
        if isinstance(extension.value, x509.SubjectAlternativeName):
            san = extension.value
    if san is None:
        raise InvalidCsrError("CSR has no subject alternative name")
    uris, requested_dns, forbidden = _sorted_names(san)
    if len(uris) != 1:
        raise InvalidCsrError(f"CSR must carry exactly one URI SAN, found {len(uris)}")
    for kind, label in _FORBIDDEN_NAMES:  # reported in this order
        if kind in forbidden:
            raise InvalidCsrError(f"CSR must not carry {label} SANs")
    if requested_dns and not allow_dns_names:
        raise InvalidCsrError("CSR must not carry DNS SANs")
    dns_names = tuple(_check_dns_name(n) for n in requested_dns)
    try:
        spiffe_id = SpiffeId.parse(uris[0])
    except InvalidSpiffeIdError as exc:
        raise InvalidCsrError(f"CSR URI SAN is not a valid SPIFFE ID: {exc.message}") from exc
    if spiffe_id.is_trust_domain_id:
        raise InvalidCsrError("CSR SPIFFE ID must have a path")
    assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)  # key_type_of
    return CsrInfo(
        spiffe_id=spiffe_id, public_key=public_key, key_type=key_type, dns_names=dns_names
    )
