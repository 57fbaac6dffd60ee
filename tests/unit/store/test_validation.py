"""Input checks that make both backends refuse the same values, before any SQL runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from citadel.store.errors import InvalidRecordError
from citadel.store.validation import (
    check_aware,
    check_choice,
    check_metadata,
    check_positive,
    check_text,
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "name must not be empty"),
        ("a\x00b", "name must not contain a NUL character"),
        ("lone \ud800", "name is not valid Unicode text"),
        (b"bytes", "name must be a string, not bytes"),
        (None, "name must be a string, not NoneType"),
    ],
    ids=["empty", "nul", "lone-surrogate", "bytes", "none"],
)
def test_unstorable_text_is_rejected_with_a_clear_message(value: object, message: str) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        check_text("name", value)
    assert str(caught.value) == message


def test_text_limit_counts_utf8_bytes_not_characters() -> None:
    assert check_text("id", "é" * 64, max_bytes=128) == "é" * 64
    with pytest.raises(InvalidRecordError, match="id is 130 bytes long; the maximum is 128"):
        check_text("id", "é" * 65, max_bytes=128)


def test_hostile_but_storable_text_passes_unchanged() -> None:
    hostile = "'; DROP TABLE x; -- \t\n\x1b 漢字 🚀 \u202e"
    assert check_text("name", hostile) == hostile


def test_aware_datetimes_are_normalized_to_utc() -> None:
    plus_five = timezone(timedelta(hours=5))
    value = check_aware("at", datetime(2026, 6, 1, 17, 0, tzinfo=plus_five))
    assert value == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert value.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (datetime(2026, 6, 1), "at must be timezone-aware"),
        ("2026-06-01T12:00:00Z", "at must be a datetime, not str"),
    ],
    ids=["naive", "string"],
)
def test_naive_or_non_datetime_is_rejected(value: object, message: str) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        check_aware("at", value)
    assert str(caught.value) == message


def test_choice_outside_the_allowed_set_is_rejected() -> None:
    assert check_choice("kind", "root", {"root", "jwt"}) == "root"
    with pytest.raises(InvalidRecordError, match="kind must be one of jwt, root; got 'leaf'"):
        check_choice("kind", "leaf", {"root", "jwt"})


@pytest.mark.parametrize(
    "value", [timedelta(0), timedelta(seconds=-5), 30], ids=["zero", "negative", "int"]
)
def test_non_positive_durations_are_rejected(value: object) -> None:
    with pytest.raises(InvalidRecordError, match="ttl must be"):
        check_positive("ttl", value)


def test_metadata_is_copied_and_may_hold_any_string() -> None:
    original = {"nul": "a\x00b", "surrogate": "\udfff"}
    copy = check_metadata("metadata", original)
    assert copy == original and copy is not original


@pytest.mark.parametrize(
    "value", [{"k": 1}, {2: "v"}, [("k", "v")]], ids=["int-value", "int-key", "list"]
)
def test_metadata_must_map_strings_to_strings(value: object) -> None:
    with pytest.raises(InvalidRecordError, match="metadata"):
        check_metadata("metadata", value)
