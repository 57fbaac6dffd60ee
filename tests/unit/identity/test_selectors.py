"""Workload selectors: parsing, the known kinds, and value checks."""

from __future__ import annotations

import pytest

from citadel.identity.registration_errors import InvalidSelectorError
from citadel.identity.selectors import KNOWN_SELECTORS, Selector, parse_selectors


@pytest.mark.parametrize(
    ("text", "selector_type", "value"),
    [
        ("unix:uid:1000", "unix", "uid:1000"),
        ("unix:uid:0", "unix", "uid:0"),
        ("unix:gid:4294967294", "unix", "gid:4294967294"),
        ("unix:user:www-data", "unix", "user:www-data"),
        ("unix:group:docker", "unix", "group:docker"),
        ("unix:supplementary_gid:27", "unix", "supplementary_gid:27"),
        ("unix:supplementary_group:sudo", "unix", "supplementary_group:sudo"),
        ("unix:path:/usr/bin/python3.11", "unix", "path:/usr/bin/python3.11"),
        ("unix:path:/opt/a:b/c", "unix", "path:/opt/a:b/c"),
        ("unix:sha256:" + "ab" * 32, "unix", "sha256:" + "ab" * 32),
        ("k8s:ns:payments", "k8s", "ns:payments"),
        ("k8s:sa:api.reader", "k8s", "sa:api.reader"),
        (
            "k8s:pod-uid:0f8fad5b-d9cb-469f-a165-70867728950e",
            "k8s",
            "pod-uid:0f8fad5b-d9cb-469f-a165-70867728950e",
        ),
    ],
    ids=[
        "uid",
        "uid-zero",
        "largest-gid",
        "user",
        "group",
        "supplementary-gid",
        "supplementary-group",
        "path",
        "path-with-colon",
        "sha256",
        "k8s-ns",
        "k8s-sa",
        "k8s-pod-uid",
    ],
)
def test_valid_selector_parses_into_type_and_value(
    text: str, selector_type: str, value: str
) -> None:
    selector = Selector.parse(text)
    assert (selector.type, selector.value) == (selector_type, value)
    assert str(selector) == text


def test_kind_and_detail_split_the_value() -> None:
    selector = Selector.parse("unix:path:/opt/a:b")
    assert (selector.kind, selector.detail) == ("path", "/opt/a:b")


def test_of_builds_the_same_selector_as_parse() -> None:
    assert Selector.of("unix", "uid", 1000) == Selector.parse("unix:uid:1000")


def test_selectors_are_values_usable_in_sets() -> None:
    assert parse_selectors(["unix:uid:1", "unix:uid:1", "k8s:ns:a"]) == {
        Selector("unix", "uid:1"),
        Selector("k8s", "ns:a"),
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("docker:label:x", "unknown selector type 'docker' \\(known types: k8s, unix\\)"),
        ("unix:pid:12", "unknown unix selector kind 'pid' \\(known kinds: gid, group, path"),
        ("k8s:node-name:n1", "unknown k8s selector kind 'node-name'"),
        ("unix", "must look like type:kind:value"),
        (":uid:1", "must look like type:kind:value"),
        ("unix:uid", "must look like kind:detail"),
        ("unix:uid:", "has an empty value"),
        ("unix:uid:abc", "uid value must be a decimal number"),
        ("unix:uid:-1", "uid value must be a decimal number"),
        ("unix:uid:4294967295", "uid value must be at most 4294967294"),
        ("unix:uid:0100", "must not have leading zeros"),
        ("unix:uid:١٢", "must be a decimal number"),
        ("unix:gid:99999999999", "at most"),
        ("unix:sha256:" + "AB" * 32, "64 lowercase hexadecimal"),
        ("unix:sha256:abc", "64 lowercase hexadecimal"),
        ("unix:path:usr/bin/x", "must be an absolute path"),
        ("unix:path:/bin/\0x", "must not contain NUL"),
        ("unix:user:bad name", "user value must be"),
        ("unix:user:-rf", "user value must be"),
        ("k8s:ns:Payments", "DNS-1123 label"),
        ("k8s:ns:" + "a" * 64, "DNS-1123 label"),
        ("k8s:sa:a..b", "DNS-1123 subdomain"),
        ("k8s:pod-uid:not-a-uuid", "lowercase UUID"),
        ("unix:path:/" + "a" * 5000, "longer than"),
    ],
    ids=[
        "unknown-type",
        "unknown-unix-kind",
        "unknown-k8s-kind",
        "no-colon",
        "empty-type",
        "no-kind-separator",
        "empty-value",
        "non-numeric-uid",
        "negative-uid",
        "uid-overflow",
        "uid-leading-zero",
        "non-ascii-digits",
        "gid-too-long",
        "uppercase-sha256",
        "short-sha256",
        "relative-path",
        "nul-in-path",
        "space-in-user",
        "user-starting-with-dash",
        "uppercase-namespace",
        "long-namespace",
        "empty-sa-label",
        "bad-pod-uid",
        "oversized",
    ],
)
def test_invalid_selector_is_rejected_with_a_clear_message(text: str, match: str) -> None:
    with pytest.raises(InvalidSelectorError, match=match):
        Selector.parse(text)


def test_selector_error_is_a_value_error_with_a_kind() -> None:
    with pytest.raises(ValueError) as info:
        Selector.parse("nope:x:y")
    assert isinstance(info.value, InvalidSelectorError)
    assert info.value.kind == "invalid_selector"


def test_non_str_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Selector.parse(1000)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Selector("unix", 1000)  # type: ignore[arg-type]


def test_every_known_kind_has_a_check() -> None:
    assert set(KNOWN_SELECTORS) == {"unix", "k8s"}
    assert {"uid", "gid", "user", "group", "path", "sha256"} <= set(KNOWN_SELECTORS["unix"])
    assert set(KNOWN_SELECTORS["k8s"]) == {"ns", "sa", "pod-uid"}
