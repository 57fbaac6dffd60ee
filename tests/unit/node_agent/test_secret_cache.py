from __future__ import annotations

from citadel.identity.clock import ManualClock
from node_agent.secret_cache import SecretCache
from tests.unit.node_agent.conftest import MakeTls


def test_publishing_notifies_only_subscribers_of_that_name(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    cache = SecretCache(clock)
    seen: list[str] = []
    cache.subscribe("default", seen.append)
    cache.subscribe("other", lambda n: seen.append("other!"))
    entry = cache.publish(make_tls("default"))
    assert entry is not None and entry.published_at == clock.now()
    assert seen == ["default"]


def test_republishing_identical_content_changes_nothing(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    cache = SecretCache(clock)
    secret = make_tls()
    first = cache.publish(secret)
    seen: list[str] = []
    cache.subscribe("default", seen.append)
    assert cache.publish(secret) is None
    assert seen == []
    assert cache.get("default") == first


def test_revision_grows_with_every_change(clock: ManualClock, make_tls: MakeTls) -> None:
    cache = SecretCache(clock)
    a = cache.publish(make_tls())
    b = cache.publish(make_tls())
    assert a is not None and b is not None and b.revision > a.revision


def test_closed_subscription_is_not_called_again(clock: ManualClock, make_tls: MakeTls) -> None:
    cache = SecretCache(clock)
    seen: list[str] = []
    subscription = cache.subscribe("default", seen.append)
    subscription.close()
    subscription.close()
    cache.publish(make_tls())
    assert seen == []
    assert cache.subscriber_count() == 0


def test_a_broken_listener_does_not_starve_the_others(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    cache = SecretCache(clock)
    seen: list[str] = []

    def broken(name: str) -> None:
        raise RuntimeError("consumer bug")

    cache.subscribe("default", broken)
    cache.subscribe("default", seen.append)
    cache.publish(make_tls())
    assert seen == ["default"]


def test_subscribe_all_hears_every_name_and_removals(clock: ManualClock, make_tls: MakeTls) -> None:
    cache = SecretCache(clock)
    seen: list[str] = []
    subscription = cache.subscribe_all(seen.append)
    cache.publish(make_tls("default"))
    cache.publish(make_tls("file-cert:/a~/b"))
    cache.remove("default")
    assert seen == ["default", "file-cert:/a~/b", "default"]
    subscription.close()
    cache.publish(make_tls("default"))
    assert len(seen) == 3
