"""The TokenReview client (citadel.k8s.token_review) against the loopback API server, through
the real kubernetes client: HTTPS with a CA file, our own bearer token, failures."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.k8s.client import KubeClientSettings, build_configuration
from citadel.k8s.errors import KubeApiRejectedError, KubeApiUnavailableError
from citadel.k8s.token_review import TokenReviewClient
from tests.fakes.kube_api_server import (
    TOKEN_REVIEW_PATH,
    FakeKubeApiServer,
    FakeResponse,
    TokenReviewBook,
)

SA = "system:serviceaccount:default:web"


@pytest.fixture
def https_api(tmp_path: Path) -> Iterator[FakeKubeApiServer]:
    with FakeKubeApiServer.with_tls(tmp_path, required_token="ca-token") as api:
        yield api


def _client(settings: KubeClientSettings, **kwargs: object) -> TokenReviewClient:
    return TokenReviewClient(build_configuration(settings), **kwargs)  # type: ignore[arg-type]


def test_review_over_https_verifies_the_api_server_with_the_ca_file(
    https_api: FakeKubeApiServer, tmp_path: Path
) -> None:
    https_api.serve_token_reviews().allow("workload-token", SA)
    token_file = tmp_path / "sa-token"
    token_file.write_text("ca-token\n")
    client = _client(
        KubeClientSettings(host=https_api.url, token_file=token_file, ca_file=https_api.ca_file)
    )
    result = client.review("workload-token", ["istio-ca"])
    client.close()
    assert result.authenticated
    assert result.username == SA
    assert result.audiences == ("istio-ca",)
    request = https_api.requests_to("POST", TOKEN_REVIEW_PATH)[-1]
    assert request.headers["authorization"] == "Bearer ca-token"
    assert request.json()["apiVersion"] == "authentication.k8s.io/v1"


def test_api_server_with_an_unknown_certificate_is_unavailable(
    https_api: FakeKubeApiServer, tmp_path: Path
) -> None:
    https_api.serve_token_reviews()
    other = FakeKubeApiServer.with_tls(tmp_path / "other")
    client = _client(
        KubeClientSettings(host=https_api.url, token="ca-token", ca_file=other.ca_file)
    )
    with pytest.raises(KubeApiUnavailableError):
        client.review("t", ["istio-ca"])
    assert https_api.requests_to("POST", TOKEN_REVIEW_PATH) == []


def test_slow_api_server_times_out() -> None:
    book = TokenReviewBook()
    with FakeKubeApiServer() as api:
        api.add_handler(
            "POST", TOKEN_REVIEW_PATH, lambda r: FakeResponse(status=201, body={}, delay=3.0)
        )
        client = _client(
            KubeClientSettings(host=api.url, token="x"), timeout=timedelta(seconds=0.5)
        )
        with pytest.raises(KubeApiUnavailableError):
            client.review("t", ["istio-ca"])
    assert book.review_count == 0


def test_unreachable_api_server_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = _client(KubeClientSettings(host=f"http://127.0.0.1:{port}", token="x"))
    with pytest.raises(KubeApiUnavailableError):
        client.review("t", ["istio-ca"])


@pytest.mark.parametrize(
    "response",
    [FakeResponse(status=201, body=b"{not json"), FakeResponse(status=201, body=[1, 2])],
    ids=["not-json", "not-an-object"],
)
def test_unreadable_answer_is_unavailable(response: FakeResponse) -> None:
    with FakeKubeApiServer() as api:
        api.add_handler("POST", TOKEN_REVIEW_PATH, lambda r: response)
        client = _client(KubeClientSettings(host=api.url, token="x"))
        with pytest.raises(KubeApiUnavailableError):
            client.review("t", ["istio-ca"])


@pytest.mark.parametrize("status", [403, 404], ids=["forbidden", "not-found"])
def test_refusals_of_our_own_request_are_rejections(status: int) -> None:
    from tests.fakes.kube_api_server import status_response

    with FakeKubeApiServer() as api:
        api.add_handler(
            "POST", TOKEN_REVIEW_PATH, lambda r: status_response(status, "Forbidden", "no")
        )
        client = _client(KubeClientSettings(host=api.url, token="x"))
        with pytest.raises(KubeApiRejectedError) as caught:
            client.review("t", ["istio-ca"])
    assert caught.value.status == status


def test_answer_without_status_is_not_authenticated() -> None:
    with FakeKubeApiServer() as api:
        api.add_handler(
            "POST", TOKEN_REVIEW_PATH,
            lambda r: FakeResponse(status=201, body={"kind": "TokenReview",
                                                     "apiVersion": "authentication.k8s.io/v1",
                                                     "spec": {"token": "t"}}),
        )  # fmt: skip
        result = _client(KubeClientSettings(host=api.url, token="x")).review("t", ["a"])
    assert not result.authenticated
