"""Property tests: hostile input only ever produces the module's own typed error.

Example counts stay modest (the machine is small and shared); the coverage-guided fuzzers in
tests/fuzz/ explore further.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import string
from typing import Any

from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citadel.identity.bundle import (
    MAX_REFRESH_HINT_SECONDS,
    MAX_SEQUENCE,
    JwtAuthority,
    TrustBundle,
)
from citadel.identity.csr import build_csr, csr_to_pem, parse_csr, validate_workload_csr
from citadel.identity.errors import InvalidBundleError, InvalidCsrError, InvalidSpiffeIdError
from citadel.identity.keys import KeyType, generate_private_key, public_keys_equal
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from tests.conftest import FIXED_NOW
from tests.fixtures.pki import make_pki

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,  # keep no example database in the source tree
    suppress_health_check=[HealthCheck.too_slow],
)

TD = TrustDomain("example.org")
WEB = TD.spiffe_id("/ns/default/sa/web")

# --- SPIFFE IDs ---------------------------------------------------------------------------

TD_CHARS = string.ascii_lowercase + string.digits + ".-_"
PATH_CHARS = string.ascii_letters + string.digits + ".-_"
HOSTILE_CHARS = ":@%?#/ \t\n\x00~+[]\\ÄéK\u212a\udc80"

valid_trust_domains = st.text(alphabet=TD_CHARS, min_size=1, max_size=40)
valid_segments = st.text(alphabet=PATH_CHARS, min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
valid_ids = st.builds(
    lambda td, segments: "spiffe://" + td + "".join("/" + s for s in segments),
    valid_trust_domains,
    st.lists(valid_segments, max_size=5),
)
# Strings that are *nearly* SPIFFE IDs, so the parser's later rules get exercised too.
near_ids = st.builds(
    lambda scheme, td, segments, tail: scheme + td + "".join("/" + s for s in segments) + tail,
    st.sampled_from(
        ["spiffe://", "spiffe://", "spiffe://", "SPIFFE://", "spiffe:/", "http://", ""]
    ),
    st.text(alphabet=TD_CHARS + "A:@%?#\udc80\u212a", max_size=20),
    st.lists(st.text(alphabet=PATH_CHARS + HOSTILE_CHARS, max_size=8), max_size=5),
    st.sampled_from(["", "", "/", "?q=1", "#f", "\n"]),
)


@PROPERTY_SETTINGS
@given(st.one_of(st.text(), st.text(st.characters(codec=None)), near_ids, valid_ids))
def test_spiffe_id_parse_raises_only_its_error_and_round_trips_what_it_accepts(
    value: str,
) -> None:
    try:
        parsed = SpiffeId.parse(value)
    except InvalidSpiffeIdError:
        return
    assert str(parsed) == value
    assert parsed == SpiffeId.parse(str(parsed))


@PROPERTY_SETTINGS
@given(valid_ids)
def test_every_id_built_from_the_allowed_alphabets_is_accepted(value: str) -> None:
    parsed = SpiffeId.parse(value)
    assert str(parsed) == value
    assert "/".join(("", *parsed.segments())) == parsed.path


@PROPERTY_SETTINGS
@given(st.one_of(st.binary(), st.integers(), st.none(), st.floats(), st.lists(st.text())))
def test_spiffe_id_parse_rejects_non_str_with_type_error_only(value: object) -> None:
    try:
        SpiffeId.parse(value)  # type: ignore[arg-type]
    except TypeError:
        return
    raise AssertionError("a non-str was accepted")


@PROPERTY_SETTINGS
@given(st.one_of(st.text(), near_ids, valid_trust_domains))
def test_trust_domain_parse_raises_only_its_error(value: str) -> None:
    try:
        td = TrustDomain.parse(value)
    except InvalidSpiffeIdError:
        return
    assert str(td.id) == value or td.name == value


# --- CSRs ---------------------------------------------------------------------------------


@functools.cache
def _seed_csrs() -> tuple[bytes, ...]:
    """Valid DER CSRs (EC and RSA, with and without a DNS name) to mutate."""
    seeds = []
    for key_type in (KeyType.EC_P256, KeyType.RSA_2048):
        key = generate_private_key(key_type)
        for dns in ((), ("web.example.org",)):
            csr = build_csr(key, WEB, dns_names=dns)
            seeds.append(csr.public_bytes(serialization.Encoding.DER))
    return tuple(seeds)


def _check_csr(data: bytes | str, allow_dns_names: bool) -> None:
    try:
        info = validate_workload_csr(parse_csr(data), allow_dns_names=allow_dns_names)
    except InvalidCsrError:
        return
    # Whatever got through must still be the identity the key holder signed.
    assert info.spiffe_id == WEB


@PROPERTY_SETTINGS
@given(st.binary(max_size=4096), st.booleans())
def test_csr_checks_raise_only_invalid_csr_error_for_arbitrary_bytes(
    data: bytes, allow_dns_names: bool
) -> None:
    _check_csr(data, allow_dns_names)


@PROPERTY_SETTINGS
@given(st.text(max_size=2048), st.booleans())
def test_csr_checks_raise_only_invalid_csr_error_for_arbitrary_text(
    data: str, allow_dns_names: bool
) -> None:
    _check_csr("-----BEGIN CERTIFICATE REQUEST-----\n" + data, allow_dns_names)
    _check_csr(data, allow_dns_names)


@PROPERTY_SETTINGS
@given(st.data(), st.booleans())
def test_mutated_csr_is_rejected_or_keeps_the_signed_identity(
    data: st.DataObject, allow_dns_names: bool
) -> None:
    seed_index = data.draw(st.integers(0, len(_seed_csrs()) - 1), label="seed")
    der = bytearray(_seed_csrs()[seed_index])
    # Half the flips land in the first 32 bytes: the headers and the version live there.
    positions = st.one_of(st.integers(0, 31), st.integers(0, len(der) - 1))
    flips = data.draw(
        st.lists(st.tuples(positions, st.integers(0, 255)), min_size=1, max_size=4),
        label="flips",
    )
    for position, value in flips:
        der[position] = value
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(der))), label="truncate_at")
    mutated = bytes(der if cut is None else der[:cut])
    _check_csr(mutated, allow_dns_names)
    if data.draw(st.booleans(), label="as_pem"):
        pem = "-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(mutated).decode()
        _check_csr(pem + "-----END CERTIFICATE REQUEST-----\n", allow_dns_names)


def test_unmutated_seed_csrs_pass_so_the_mutation_property_is_not_vacuous() -> None:
    for index, der in enumerate(_seed_csrs()):
        info = validate_workload_csr(parse_csr(der), allow_dns_names=True)
        assert info.spiffe_id == WEB
        assert info.dns_names == (() if index % 2 == 0 else ("web.example.org",))
        pem = csr_to_pem(parse_csr(der))
        assert public_keys_equal(
            validate_workload_csr(parse_csr(pem), allow_dns_names=True).public_key, info.public_key
        )


# --- SPIFFE bundles -------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=20,
)
entry_values = st.one_of(
    json_values,
    st.sampled_from(["x509-svid", "jwt-svid", "EC", "RSA", "P-256", "P-384", "AQAB", "AAAA"]),
)
bundle_entries = st.dictionaries(
    st.sampled_from(["use", "kid", "x5c", "kty", "crv", "x", "y", "n", "e", "d"]),
    entry_values,
    max_size=6,
)
# numbers of any size, and often an empty key list, so the sequence and hint rules are reached
bundle_numbers = st.one_of(st.integers(), st.integers(min_value=0, max_value=2**80), json_values)
bundle_documents = st.fixed_dictionaries(
    {"keys": st.one_of(st.just([]), st.lists(bundle_entries, max_size=4))},
    optional={"spiffe_sequence": bundle_numbers, "spiffe_refresh_hint": bundle_numbers},
)


def _check_bundle(data: str | bytes) -> None:
    try:
        TrustBundle.from_spiffe_json(TD, data)
    except InvalidBundleError:
        return


@PROPERTY_SETTINGS
@given(st.one_of(json_values, bundle_documents))
def test_bundle_parser_raises_only_invalid_bundle_error_for_json_documents(document: Any) -> None:
    _check_bundle(json.dumps(document))


@PROPERTY_SETTINGS
@given(st.one_of(st.text(max_size=512), st.binary(max_size=512)))
def test_bundle_parser_raises_only_invalid_bundle_error_for_arbitrary_input(
    data: str | bytes,
) -> None:
    _check_bundle(data)


@functools.cache
def _seed_bundle_document() -> dict[str, Any]:
    pki = make_pki(now=FIXED_NOW)
    bundle = TrustBundle(
        TD,
        (pki.root,),
        (JwtAuthority("k1", generate_private_key().public_key()),),
        sequence=3,
    )
    return bundle.to_spiffe_dict()


@PROPERTY_SETTINGS
@given(st.data())
def test_valid_bundle_with_one_field_replaced_raises_only_invalid_bundle_error(
    data: st.DataObject,
) -> None:
    document = copy.deepcopy(_seed_bundle_document())
    entry = data.draw(st.sampled_from(document["keys"]), label="entry")
    field = data.draw(st.sampled_from(sorted(entry)), label="field")
    entry[field] = data.draw(entry_values, label="value")
    _check_bundle(json.dumps(document))


@PROPERTY_SETTINGS
@given(st.integers(0, MAX_SEQUENCE), st.one_of(st.none(), st.integers(0, MAX_REFRESH_HINT_SECONDS)))
def test_bundle_sequence_and_refresh_hint_round_trip_across_their_whole_range(
    sequence: int, hint_seconds: int | None
) -> None:
    document = {"keys": [], "spiffe_sequence": sequence}
    if hint_seconds is not None:
        document["spiffe_refresh_hint"] = hint_seconds
    bundle = TrustBundle.from_spiffe_json(TD, json.dumps(document))
    assert bundle.sequence == sequence
    assert bundle.to_spiffe_dict() == document
