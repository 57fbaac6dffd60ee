"""SPIFFE ID and trust-domain parsing against the rules of SPIFFE-ID.md.

Every row of the tables names the rule it exercises: §2 (scheme, no query/fragment),
§2.1 (trust domain), §2.2 (path), §2.3 (maximum lengths).
"""

from __future__ import annotations

from typing import Any

import pytest

from citadel.identity.errors import InvalidSpiffeIdError, InvalidTrustDomainError
from citadel.identity.spiffe_id import (
    MAX_SPIFFE_ID_BYTES,
    MAX_TRUST_DOMAIN_BYTES,
    SpiffeId,
    TrustDomain,
)

PREFIX = "spiffe://example.org"
TD_255 = "a" * MAX_TRUST_DOMAIN_BYTES
TD_256 = "a" * (MAX_TRUST_DOMAIN_BYTES + 1)
# 9 ("spiffe://") + 11 ("example.org") + 1 ("/") + the rest = exactly 2048 bytes
ID_2048 = PREFIX + "/" + "a" * (MAX_SPIFFE_ID_BYTES - len(PREFIX) - 1)
ID_2049 = ID_2048 + "a"
# a two-byte UTF-8 character makes the byte count, not the character count, decide
ID_2049_BYTES_2048_CHARS = PREFIX + "/" + "a" * (MAX_SPIFFE_ID_BYTES - len(PREFIX) - 2) + "é"

VALID_IDS = [
    pytest.param("spiffe://example.org/ns/default/sa/web", id="workload-id (§2.2 path)"),
    pytest.param("spiffe://example.org", id="trust-domain-id-no-path (§2 trust domain ID)"),
    pytest.param("spiffe://a-b_c.d0/x", id="td-all-allowed-chars (§2.1 trust domain charset)"),
    pytest.param("spiffe://127.0.0.1/x", id="td-digits-and-dots (§2.1 trust domain charset)"),
    pytest.param("spiffe://xn--bcher-kva.example/x", id="td-punycode-idn (§2.1 ascii only)"),
    pytest.param("spiffe://example.org/AZaz09.-_", id="path-all-allowed-chars (§2.2 path charset)"),
    pytest.param("spiffe://example.org/UPPER/Case", id="path-uppercase-ok (§2.2 path charset)"),
    pytest.param("spiffe://example.org/...", id="path-three-dots-ok (§2.2 only . and ..)"),
    pytest.param("spiffe://example.org/.a/a./..b", id="path-dotted-names-ok (§2.2)"),
    pytest.param(f"spiffe://{TD_255}/x", id="td-255-bytes-accepted (§2.3 td max 255)"),
    pytest.param(ID_2048, id="id-2048-bytes-accepted (§2.3 id max 2048)"),
]

INVALID_IDS = [
    # §2 scheme
    pytest.param("", "SPIFFE ID is empty", id="empty-string-rejected (§2 scheme)"),
    pytest.param(
        "SPIFFE://example.org/a", "scheme is missing", id="scheme-uppercase-rejected (§2 scheme)"
    ),
    pytest.param(
        "Spiffe://example.org/a", "scheme is missing", id="scheme-mixed-case-rejected (§2 scheme)"
    ),
    pytest.param("example.org/a", "scheme is missing", id="scheme-missing-rejected (§2 scheme)"),
    pytest.param("//example.org/a", "scheme is missing", id="scheme-relative-rejected (§2 scheme)"),
    pytest.param(
        "http://example.org/a", "scheme is missing", id="scheme-http-rejected (§2 scheme)"
    ),
    pytest.param(
        "spiffe:/example.org/a", "scheme is missing", id="scheme-one-slash-rejected (§2 scheme)"
    ),
    pytest.param(
        "spiffe:example.org/a", "scheme is missing", id="scheme-no-slashes-rejected (§2 scheme)"
    ),
    pytest.param(
        " spiffe://example.org/a",
        "scheme is missing",
        id="leading-whitespace-rejected (§2 scheme)",
    ),
    # §2 query and fragment
    pytest.param(
        "spiffe://example.org/a?b=c", "must not contain a query", id="path-query-rejected (§2)"
    ),
    pytest.param(
        "spiffe://example.org?b=c", "must not contain a query", id="td-query-rejected (§2)"
    ),
    pytest.param(
        "spiffe://example.org/a#frag",
        "must not contain a fragment",
        id="path-fragment-rejected (§2)",
    ),
    pytest.param(
        "spiffe://example.org#frag", "must not contain a fragment", id="td-fragment-rejected (§2)"
    ),
    # §2.1 trust domain
    pytest.param(
        "spiffe:///a", "trust domain is missing", id="td-empty-rejected (§2.1 trust domain)"
    ),
    pytest.param("spiffe://", "trust domain is missing", id="td-and-path-empty-rejected (§2.1)"),
    pytest.param(
        "spiffe://Example.org/a",
        "trust domain must be lowercase",
        id="td-uppercase-rejected (§2.1 trust domain charset)",
    ),
    pytest.param(
        "spiffe://example.org:8443/a",
        "trust domain must not carry a port",
        id="td-port-rejected (§2.1 no port)",
    ),
    pytest.param(
        "spiffe://user@example.org/a",
        "trust domain must not carry userinfo",
        id="td-userinfo-rejected (§2.1 no userinfo)",
    ),
    pytest.param(
        "spiffe://user:secret@example.org/a",
        "trust domain must not carry userinfo",
        id="td-userinfo-with-password-rejected (§2.1 no userinfo)",
    ),
    pytest.param(
        "spiffe://exa%6dple.org/a",
        "trust domain must not be percent-encoded",
        id="td-percent-encoded-rejected (§2.1 no percent-encoding)",
    ),
    pytest.param(
        "spiffe://exa mple.org/a",
        "trust domain may contain only",
        id="td-space-rejected (§2.1 trust domain charset)",
    ),
    pytest.param(
        "spiffe://example\t.org/a",
        "trust domain may contain only",
        id="td-tab-rejected (§2.1 trust domain charset)",
    ),
    pytest.param(
        "spiffe://exa\x00mple.org/a",
        "trust domain may contain only",
        id="td-nul-byte-rejected (§2.1 trust domain charset)",
    ),
    pytest.param(
        "spiffe://exämple.org/a",
        "trust domain may contain only",
        id="td-non-ascii-rejected (§2.1 trust domain charset)",
    ),
    pytest.param(
        "spiffe://\u212a.org/a",
        "trust domain may contain only",
        id="td-kelvin-sign-not-folded-to-k (§2.1 trust domain charset)",
    ),
    pytest.param(
        "spiffe://ex\udc80ample.org/a",
        "trust domain may contain only",
        id="td-lone-surrogate-rejected (§2.1 trust domain charset)",
    ),
    pytest.param(
        "spiffe://[::1]/a",
        "trust domain may contain only",
        id="td-ip-literal-rejected (§2.1 trust domain charset)",
    ),
    pytest.param(
        "spiffe://example.org\\a",
        "trust domain may contain only",
        id="td-backslash-rejected (§2.1 trust domain charset)",
    ),
    pytest.param(
        f"spiffe://{TD_256}/x",
        "trust domain is longer than 255 bytes",
        id="td-256-bytes-rejected (§2.3 td max 255)",
    ),
    # §2.2 path
    pytest.param(
        "spiffe://example.org/a/",
        "path must not end with '/'",
        id="path-trailing-slash-rejected (§2.2 no trailing slash)",
    ),
    pytest.param(
        "spiffe://example.org/",
        "path must not end with '/'",
        id="td-trailing-slash-rejected (§2.2 no trailing slash)",
    ),
    pytest.param(
        "spiffe://example.org//a",
        "path must not contain empty segments",
        id="path-leading-double-slash-rejected (§2.2 no empty segments)",
    ),
    pytest.param(
        "spiffe://example.org/a//b",
        "path must not contain empty segments",
        id="path-double-slash-rejected (§2.2 no empty segments)",
    ),
    pytest.param(
        "spiffe://example.org/a//b/",
        "path must not contain empty segments",
        id="path-double-slash-before-trailing-slash-names-first-rule (§2.2)",
    ),
    pytest.param(
        "spiffe://example.org/./a",
        "path must not contain '.' or '..' segments",
        id="path-dot-segment-rejected (§2.2 no dot segments)",
    ),
    pytest.param(
        "spiffe://example.org/a/..",
        "path must not contain '.' or '..' segments",
        id="path-dot-dot-segment-rejected (§2.2 no dot segments)",
    ),
    pytest.param(
        "spiffe://example.org/a%20b",
        "path must not be percent-encoded",
        id="path-percent-encoded-rejected (§2.2 no percent-encoding)",
    ),
    pytest.param(
        "spiffe://example.org/a b",
        "path segments may contain only",
        id="path-space-rejected (§2.2 path charset)",
    ),
    pytest.param(
        "spiffe://example.org/a\n",
        "path segments may contain only",
        id="path-trailing-newline-rejected (§2.2 path charset)",
    ),
    pytest.param(
        "spiffe://example.org/a\x00",
        "path segments may contain only",
        id="path-nul-byte-rejected (§2.2 path charset)",
    ),
    pytest.param(
        "spiffe://example.org/caf\u00e9",
        "path segments may contain only",
        id="path-non-ascii-rejected (§2.2 path charset)",
    ),
    pytest.param(
        "spiffe://example.org/a\udc80",
        "path segments may contain only",
        id="path-lone-surrogate-rejected (§2.2 path charset)",
    ),
    pytest.param(
        "spiffe://example.org/a~b",
        "path segments may contain only",
        id="path-tilde-rejected (§2.2 path charset narrower than RFC 3986)",
    ),
    pytest.param(
        "spiffe://example.org/a:b",
        "path segments may contain only",
        id="path-colon-rejected (§2.2 path charset)",
    ),
    pytest.param(
        "spiffe://example.org/a@b",
        "path segments may contain only",
        id="path-at-sign-rejected (§2.2 path charset)",
    ),
    # §2.3 maximum length
    pytest.param(
        ID_2049,
        "SPIFFE ID is longer than 2048 bytes",
        id="id-2049-bytes-rejected (§2.3 id max 2048)",
    ),
    pytest.param(
        ID_2049_BYTES_2048_CHARS,
        "SPIFFE ID is longer than 2048 bytes",
        id="id-length-counted-in-bytes-not-chars (§2.3 id max 2048)",
    ),
]


@pytest.mark.parametrize("value", VALID_IDS)
def test_valid_spiffe_id_parses_and_prints_back_unchanged(value: str) -> None:
    parsed = SpiffeId.parse(value)
    assert str(parsed) == value


@pytest.mark.parametrize(("value", "fragment"), INVALID_IDS)
def test_invalid_spiffe_id_is_rejected_naming_the_rule(value: str, fragment: str) -> None:
    with pytest.raises(InvalidSpiffeIdError) as caught:
        SpiffeId.parse(value)
    assert fragment in caught.value.message
    assert caught.value.kind in ("invalid_spiffe_id", "invalid_trust_domain")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param(b"spiffe://example.org/a", id="bytes"),
        pytest.param(42, id="int"),
        pytest.param(["spiffe://example.org/a"], id="list"),
    ],
)
def test_spiffe_id_parse_rejects_non_str_with_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="SPIFFE ID must be a str"):
        SpiffeId.parse(value)


def test_spiffe_id_exposes_trust_domain_path_and_segments() -> None:
    parsed = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")
    assert parsed.trust_domain == TrustDomain("example.org")
    assert parsed.path == "/ns/default/sa/web"
    assert parsed.segments() == ("ns", "default", "sa", "web")
    assert not parsed.is_trust_domain_id
    assert parsed.is_member_of(TrustDomain("example.org"))
    assert not parsed.is_member_of(TrustDomain("other.org"))


def test_trust_domain_id_has_no_path_and_no_segments() -> None:
    parsed = SpiffeId.parse("spiffe://example.org")
    assert parsed.is_trust_domain_id
    assert parsed.segments() == ()
    assert parsed == TrustDomain("example.org").id


def test_equal_spiffe_ids_are_equal_and_hash_alike() -> None:
    a = SpiffeId.parse("spiffe://example.org/a")
    b = TrustDomain("example.org").spiffe_id("/a")
    assert a == b
    assert {a, b} == {a}


def test_spiffe_id_built_from_a_path_without_leading_slash_is_rejected() -> None:
    with pytest.raises(InvalidSpiffeIdError, match="path must start with '/'"):
        TrustDomain("example.org").spiffe_id("ns/default")


def test_spiffe_id_built_past_2048_bytes_is_rejected() -> None:
    with pytest.raises(InvalidSpiffeIdError, match="longer than 2048 bytes"):
        TrustDomain("example.org").spiffe_id("/" + "a" * 2048)


def test_spiffe_id_constructor_rejects_a_plain_string_trust_domain() -> None:
    with pytest.raises(TypeError, match="trust_domain must be a TrustDomain"):
        SpiffeId("example.org", "/a")  # type: ignore[arg-type]


# --- TrustDomain.parse --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("example.org", id="bare-name (§2.1)"),
        pytest.param("spiffe://example.org", id="trust-domain-id (§2 trust domain ID)"),
    ],
)
def test_trust_domain_parse_accepts_a_name_or_a_trust_domain_id(value: str) -> None:
    td = TrustDomain.parse(value)
    assert td == TrustDomain("example.org")
    assert str(td) == "example.org"
    assert str(td.id) == "spiffe://example.org"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        pytest.param(
            "spiffe://example.org/ns/a",
            "trust domain ID must not carry a path",
            id="td-id-with-path-rejected (§2 trust domain ID has no path)",
        ),
        pytest.param(
            "spiffe://example.org/",
            "path must not end with '/'",
            id="td-id-with-trailing-slash-rejected (§2.2)",
        ),
        pytest.param(
            "https://example.org",
            "scheme must be 'spiffe'",
            id="td-other-scheme-rejected (§2 scheme)",
        ),
        pytest.param(
            "SPIFFE://example.org",
            "scheme must be 'spiffe'",
            id="td-uppercase-scheme-rejected (§2 scheme)",
        ),
        pytest.param(
            "Example.org", "trust domain must be lowercase", id="td-uppercase-rejected (§2.1)"
        ),
        pytest.param("", "trust domain is missing", id="td-empty-rejected (§2.1)"),
        pytest.param(
            "example.org:443", "must not carry a port", id="td-port-rejected (§2.1 no port)"
        ),
        pytest.param(TD_256, "longer than 255 bytes", id="td-256-bytes-rejected (§2.3)"),
    ],
)
def test_trust_domain_parse_rejects_bad_input_naming_the_rule(value: str, fragment: str) -> None:
    with pytest.raises(InvalidSpiffeIdError) as caught:
        TrustDomain.parse(value)
    assert fragment in caught.value.message


def test_trust_domain_id_with_path_raises_the_trust_domain_error_class() -> None:
    with pytest.raises(InvalidTrustDomainError) as caught:
        TrustDomain.parse("spiffe://example.org/ns/a")
    assert caught.value.kind == "invalid_trust_domain"


def test_trust_domain_of_exactly_255_bytes_is_accepted() -> None:
    assert TrustDomain(TD_255).name == TD_255


@pytest.mark.parametrize(
    "value",
    [pytest.param(None, id="none"), pytest.param(b"example.org", id="bytes")],
)
def test_trust_domain_rejects_non_str_with_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        TrustDomain.parse(value)
    with pytest.raises(TypeError):
        TrustDomain(value)
