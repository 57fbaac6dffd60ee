"""May I take the Lease? A pure function of (lease, my id, now)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citadel.k8s.lease_decision import (
    LeaseAction,
    LeaseDecision,
    LeaseRecord,
    decide_lease,
    next_lease_record,
)

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DURATION = timedelta(seconds=15)


def held_by(holder: str | None, renewed_ago: timedelta, **kw: object) -> LeaseRecord:
    fields: dict[str, object] = {
        "holder": holder,
        "lease_duration": DURATION,
        "acquire_time": NOW - timedelta(hours=1),
        "renew_time": NOW - renewed_ago,
        "transitions": 3,
        "resource_version": "41",
    }
    fields.update(kw)
    return LeaseRecord(**fields)  # type: ignore[arg-type]


CASES = [
    ("no-lease-is-created", None, LeaseDecision(LeaseAction.CREATE)),
    ("my-lease-is-renewed", held_by("me", 5 * SECOND), LeaseDecision(LeaseAction.RENEW)),
    (
        "my-expired-lease-is-still-renewed",
        held_by("me", timedelta(minutes=5)),
        LeaseDecision(LeaseAction.RENEW),
    ),
    (
        "a-lease-held-by-someone-else-is-respected",
        held_by("other", 5 * SECOND),
        LeaseDecision(LeaseAction.WAIT, holder="other", valid_until=NOW + 10 * SECOND),
    ),
    (
        "a-lease-one-microsecond-before-expiry-is-respected",
        held_by("other", DURATION - timedelta(microseconds=1)),
        LeaseDecision(
            LeaseAction.WAIT, holder="other", valid_until=NOW + timedelta(microseconds=1)
        ),
    ),
    ("a-lease-at-expiry-is-taken", held_by("other", DURATION), LeaseDecision(LeaseAction.ACQUIRE)),
    (
        "an-expired-lease-is-taken",
        held_by("other", timedelta(minutes=1)),
        LeaseDecision(LeaseAction.ACQUIRE),
    ),
    ("a-released-lease-is-taken", held_by(None, 0 * SECOND), LeaseDecision(LeaseAction.ACQUIRE)),
    ("an-empty-holder-is-taken", held_by("", 0 * SECOND), LeaseDecision(LeaseAction.ACQUIRE)),
    (
        "a-lease-without-renew-time-is-taken",
        held_by("other", 0 * SECOND, renew_time=None),
        LeaseDecision(LeaseAction.ACQUIRE),
    ),
    (
        "a-lease-without-duration-is-taken",
        held_by("other", 0 * SECOND, lease_duration=None),
        LeaseDecision(LeaseAction.ACQUIRE),
    ),
    (
        "a-lease-in-the-future-is-respected",
        held_by("other", -timedelta(minutes=1)),
        LeaseDecision(LeaseAction.WAIT, holder="other", valid_until=NOW + 75 * SECOND),
    ),
]


@pytest.mark.parametrize(("record", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_lease(record: LeaseRecord | None, expected: LeaseDecision) -> None:
    assert decide_lease(record, "me", NOW) == expected


def test_same_lease_changes_decision_as_time_passes() -> None:
    record = held_by("other", 0 * SECOND)
    assert decide_lease(record, "me", NOW + 14 * SECOND).action is LeaseAction.WAIT
    assert decide_lease(record, "me", NOW + 15 * SECOND).action is LeaseAction.ACQUIRE


def test_empty_identity_is_rejected() -> None:
    with pytest.raises(ValueError):
        decide_lease(None, "", NOW)


def test_creating_starts_at_zero_transitions() -> None:
    new = next_lease_record(None, "me", NOW, DURATION)
    assert new == LeaseRecord(
        holder="me", lease_duration=DURATION, acquire_time=NOW, renew_time=NOW, transitions=0
    )


def test_renewing_keeps_acquire_time_and_transitions() -> None:
    current = held_by("me", 5 * SECOND)
    renewed = next_lease_record(current, "me", NOW, DURATION)
    assert renewed.acquire_time == current.acquire_time
    assert renewed.renew_time == NOW
    assert renewed.transitions == 3
    assert renewed.resource_version == "41"


def test_taking_over_counts_a_transition_and_resets_acquire_time() -> None:
    taken = next_lease_record(held_by("other", timedelta(minutes=1)), "me", NOW, DURATION)
    assert (taken.holder, taken.acquire_time, taken.transitions) == ("me", NOW, 4)
    assert taken.resource_version == "41"


def test_taking_a_released_lease_is_not_a_transition() -> None:
    taken = next_lease_record(held_by(None, 0 * SECOND), "me", NOW, DURATION)
    assert taken.transitions == 3
