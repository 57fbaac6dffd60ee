from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citadel.ca.errors import CaNotReadyError, TtlError
from citadel.ca.ttl import leaf_validity, resolve_ttl

DEFAULT = timedelta(hours=24)
MAXIMUM = timedelta(days=90)
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, DEFAULT),
        (timedelta(0), DEFAULT),
        (timedelta(seconds=1), timedelta(seconds=1)),
        (timedelta(hours=1), timedelta(hours=1)),
        (MAXIMUM, MAXIMUM),
    ],
    ids=["none-is-default", "zero-is-default", "one-second", "one-hour", "exactly-max"],
)
def test_accepted_ttls(requested: timedelta | None, expected: timedelta) -> None:
    assert resolve_ttl(requested, default=DEFAULT, maximum=MAXIMUM) == expected


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        (timedelta(seconds=-1), "negative"),
        (timedelta(days=-30), "TTL -30d is negative"),
        (MAXIMUM + timedelta(seconds=1), "TTL 90d1s exceeds the maximum of 90d"),
        (timedelta(days=3650), "exceeds the maximum"),
    ],
    ids=["minus-one-second", "minus-30-days", "max-plus-one-second", "ten-years"],
)
def test_refused_ttls_are_ttl_errors_not_clamped(requested: timedelta, message: str) -> None:
    with pytest.raises(TtlError, match=message):
        resolve_ttl(requested, default=DEFAULT, maximum=MAXIMUM)


def test_ttl_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        resolve_ttl(3600, default=DEFAULT, maximum=MAXIMUM)  # type: ignore[arg-type]


def test_validity_is_backdated_by_skew_and_runs_for_the_ttl() -> None:
    not_before, not_after = leaf_validity(
        now=T0,
        ttl=timedelta(hours=1),
        skew=timedelta(minutes=2),
        signer_not_before=T0 - timedelta(days=1),
        signer_not_after=T0 + timedelta(days=1),
    )
    assert (not_before, not_after) == (T0 - timedelta(minutes=2), T0 + timedelta(hours=1))


def test_not_after_is_clamped_to_the_signer() -> None:
    _, not_after = leaf_validity(
        now=T0,
        ttl=timedelta(days=30),
        skew=timedelta(minutes=2),
        signer_not_before=T0 - timedelta(days=1),
        signer_not_after=T0 + timedelta(hours=5),
    )
    assert not_after == T0 + timedelta(hours=5)


def test_not_before_never_precedes_the_signer() -> None:
    not_before, _ = leaf_validity(
        now=T0,
        ttl=timedelta(hours=1),
        skew=timedelta(minutes=2),
        signer_not_before=T0 - timedelta(seconds=30),
        signer_not_after=T0 + timedelta(days=1),
    )
    assert not_before == T0 - timedelta(seconds=30)


@pytest.mark.parametrize(
    "signer_not_after", [T0, T0 - timedelta(seconds=1)], ids=["expires-now", "expired"]
)
def test_an_expired_signer_cannot_issue(signer_not_after: datetime) -> None:
    with pytest.raises(CaNotReadyError, match="expired"):
        leaf_validity(
            now=T0,
            ttl=timedelta(hours=1),
            skew=timedelta(minutes=2),
            signer_not_before=T0 - timedelta(days=1),
            signer_not_after=signer_not_after,
        )
