"""The TokenReview authenticator through the real kubernetes client and a loopback API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.k8s.client import KubeClientSettings, build_configuration
from citadel.k8s.errors import (
    KubeApiRejectedError,
    KubeApiThrottledError,
    KubeApiUnavailableError,
)
from citadel.k8s.token_review import TokenReviewClient
from citadel.server.authn.kube_jwt import (
    KubernetesJwtAuthenticator,
    identity_from_service_account,
)
from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError
from citadel.server.metrics import ServerMetrics
from citadel.server.rate_limit import BlockingThrottle, RateLimit
from tests.fakes.kube_api_server import FakeKubeApiServer, TokenReviewBook, status_response
from tests.integration.server.tokens import K8S_ISSUER, kube_token, unsigned_token

TD = TrustDomain("cluster.local")
CA_TOKEN = "ca-token"


@pytest.fixture
def api() -> Iterator[FakeKubeApiServer]:
    with FakeKubeApiServer(required_token="ca-token") as server:
        yield server


@pytest.fixture
def book(api: FakeKubeApiServer) -> TokenReviewBook:
    return api.serve_token_reviews()


def _client(api: FakeKubeApiServer, token: str = CA_TOKEN, **kwargs: object) -> TokenReviewClient:
    settings = KubeClientSettings(host=api.url, token=token)
    return TokenReviewClient(build_configuration(settings), **kwargs)  # type: ignore[arg-type]


def _authenticator(
    api: FakeKubeApiServer, clock: ManualClock, **kwargs: object
) -> KubernetesJwtAuthenticator:
    return KubernetesJwtAuthenticator(
        reviewer=_client(api),
        trust_domain=TD,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def _call(token: str, *extra: tuple[str, str]) -> CallContext:
    return CallContext.from_metadata([("authorization", f"Bearer {token}"), *extra])


def _token(clock: ManualClock, book: TokenReviewBook, user: str, lifetime: timedelta) -> str:
    token = kube_token("default", "web", now=clock.now(), lifetime=lifetime)
    book.allow(token, user)
    return token


def test_service_account_token_maps_to_its_spiffe_id(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    token = _token(clock, book, "system:serviceaccount:default:web", timedelta(hours=1))
    caller = _authenticator(api, clock).authenticate(_call(token))
    assert caller is not None
    assert caller.identity == SpiffeId.parse("spiffe://cluster.local/ns/default/sa/web")
    review = book.reviews[-1]
    assert review["spec"] == {"token": token, "audiences": ["istio-ca"]}
    assert api.requests[-1].headers["authorization"] == "Bearer ca-token"


def test_positive_review_is_cached_until_the_token_expires(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    token = _token(clock, book, "system:serviceaccount:default:web", timedelta(seconds=90))
    authenticator = _authenticator(api, clock)
    for _ in range(3):
        authenticator.authenticate(_call(token))
    assert book.review_count == 1
    clock.advance(timedelta(seconds=91))
    book.revoke(token)
    with pytest.raises(CredentialRejectedError):
        authenticator.authenticate(_call(token))
    assert book.review_count == 2


def test_cache_lifetime_is_capped(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    token = _token(clock, book, "system:serviceaccount:default:web", timedelta(days=1))
    authenticator = _authenticator(api, clock, max_cache_ttl=timedelta(minutes=5))
    authenticator.authenticate(_call(token))
    clock.advance(timedelta(minutes=5, seconds=1))
    authenticator.authenticate(_call(token))
    assert book.review_count == 2


def test_negative_reviews_are_not_cached(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    token = kube_token("default", "web", now=clock.now(), lifetime=timedelta(hours=1))
    authenticator = _authenticator(api, clock)
    for _ in range(2):
        with pytest.raises(CredentialRejectedError, match="invalid bearer token"):
            authenticator.authenticate(_call(token))
    assert book.review_count == 2


@pytest.mark.parametrize(
    "username",
    [
        "alice@example.org",
        "system:serviceaccount:default",
        "system:serviceaccount::web",
        "system:serviceaccount:default:",
        "system:serviceaccount:a:b:c",
        "system:serviceaccount:de fault:web",
    ],
    ids=[
        "not-a-service-account",
        "no-name",
        "no-namespace",
        "empty-name",
        "extra-part",
        "bad-characters",
    ],
)
def test_usernames_that_are_not_usable_service_accounts_are_refused(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock, username: str
) -> None:
    token = _token(clock, book, username, timedelta(hours=1))
    with pytest.raises(CredentialRejectedError):
        _authenticator(api, clock).authenticate(_call(token))


def test_token_for_another_audience_is_refused(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    token = kube_token("default", "web", now=clock.now(), lifetime=timedelta(hours=1))
    book.allow(token, "system:serviceaccount:default:web", audiences=("kubernetes",))
    with pytest.raises(CredentialRejectedError, match="audiences"):
        _authenticator(api, clock).authenticate(_call(token))


def test_configured_audiences_are_sent(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    token = kube_token("default", "web", now=clock.now(), lifetime=timedelta(hours=1))
    book.allow(token, "system:serviceaccount:default:web", audiences=("citadel",))
    caller = _authenticator(api, clock, audiences=("citadel", "istio-ca")).authenticate(
        _call(token)
    )
    assert caller is not None
    assert book.reviews[-1]["spec"]["audiences"] == ["citadel", "istio-ca"]


def test_other_issuers_and_join_tokens_are_left_to_other_authenticators(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    authenticator = _authenticator(api, clock, issuers=(K8S_ISSUER,))
    oidc_like = unsigned_token({"alg": "ES256"}, {"iss": "https://idp.example"})
    assert authenticator.authenticate(_call(oidc_like)) is None
    assert authenticator.authenticate(_call("not-a-jwt")) is None
    assert authenticator.authenticate(_call("jt.abcdef")) is None
    assert authenticator.authenticate(CallContext()) is None
    assert book.review_count == 0


def test_garbage_token_is_refused_without_asking_the_api_server(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    with pytest.raises(CredentialRejectedError, match="not a JWT"):
        _authenticator(api, clock).authenticate(_call("not-a-jwt"))
    assert book.review_count == 0


def test_unknown_cluster_is_refused(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    token = _token(clock, book, "system:serviceaccount:default:web", timedelta(hours=1))
    authenticator = _authenticator(api, clock, cluster_id="Kubernetes")
    assert authenticator.authenticate(_call(token, ("clusterid", "Kubernetes"))) is not None
    with pytest.raises(CredentialRejectedError, match="unknown cluster"):
        authenticator.authenticate(_call(token, ("clusterid", "east")))


def test_our_own_credentials_refused_by_the_api_server_is_an_outage_not_a_refusal(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    token = _token(clock, book, "system:serviceaccount:default:web", timedelta(hours=1))
    authenticator = KubernetesJwtAuthenticator(
        reviewer=_client(api, token="wrong"), trust_domain=TD, clock=clock
    )
    with pytest.raises(KubeApiRejectedError) as caught:
        authenticator.authenticate(_call(token))
    assert caught.value.status == 401


def test_throttled_reviews_are_counted(
    api: FakeKubeApiServer, book: TokenReviewBook, clock: ManualClock
) -> None:
    metrics = ServerMetrics()
    throttle = BlockingThrottle(
        RateLimit(rate=0.001, burst=1), max_wait=timedelta(milliseconds=10),
        on_throttled=metrics.record_token_review_throttled,
    )  # fmt: skip
    authenticator = KubernetesJwtAuthenticator(
        reviewer=_client(api, throttle=throttle), trust_domain=TD, clock=clock
    )
    first = _token(clock, book, "system:serviceaccount:default:a", timedelta(hours=1))
    second = _token(clock, book, "system:serviceaccount:default:b", timedelta(hours=1))
    authenticator.authenticate(_call(first))
    with pytest.raises(KubeApiThrottledError):
        authenticator.authenticate(_call(second))
    refused = metrics.registry.get_sample_value(
        "citadel_server_token_review_throttled_count_total", {"outcome": "refused"}
    )
    assert refused == 1.0
    assert book.review_count == 1


def test_api_server_errors_become_typed_errors(api: FakeKubeApiServer, clock: ManualClock) -> None:
    book = api.serve_token_reviews()
    book.failure = status_response(503, "ServiceUnavailable", "etcd is down")
    token = kube_token("default", "web", now=clock.now(), lifetime=timedelta(hours=1))
    with pytest.raises(KubeApiUnavailableError):
        _authenticator(api, clock).authenticate(_call(token))


def test_identity_mapping_is_a_pure_function() -> None:
    assert str(identity_from_service_account("system:serviceaccount:ns1:sa-1", TD)) == (
        "spiffe://cluster.local/ns/ns1/sa/sa-1"
    )
