"""The client settings against an HTTPS API server: CA bundle and bearer token are used."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citadel.k8s.cacerts_secret import CaCertsSecretReader
from citadel.k8s.client import KubeApis, KubeClientSettings, build_configuration, new_api_client
from citadel.k8s.controller_errors import CaSecretNotFoundError
from citadel.k8s.errors import KubeApiRejectedError, KubeApiUnavailableError
from tests.fakes.kube_api_objects import KubeObjects
from tests.fakes.kube_api_server import FakeKubeApiServer

TOKEN = "tls-test-token"


@pytest.fixture
def https_api(tmp_path: Path) -> Iterator[FakeKubeApiServer]:
    api = FakeKubeApiServer.with_tls(tmp_path / "apiserver", required_token=TOKEN)
    objects = KubeObjects().install(api)
    objects.put_namespace("citadel-system")
    api.start()
    try:
        yield api
    finally:
        objects.close()
        api.stop()


def reader(settings: KubeClientSettings) -> CaCertsSecretReader:
    apis = KubeApis.from_client(new_api_client(build_configuration(settings)))
    return CaCertsSecretReader(apis.core, namespace="citadel-system")


def test_https_with_the_right_ca_and_token_reaches_the_api_server(
    https_api: FakeKubeApiServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    settings = KubeClientSettings(
        host=https_api.url, token_file=token_file, ca_file=https_api.ca_file
    )
    with pytest.raises(CaSecretNotFoundError):  # reached the server, which has no such Secret
        reader(settings).read()
    sent = https_api.requests_to("GET", r"/api/v1/namespaces/citadel-system/secrets/cacerts")
    assert sent[-1].bearer_token == TOKEN


def test_an_unknown_server_certificate_is_refused(https_api: FakeKubeApiServer) -> None:
    settings = KubeClientSettings(host=https_api.url, token=TOKEN)  # system CAs only
    with pytest.raises(KubeApiUnavailableError):
        reader(settings).read()
    assert https_api.requests == []


def test_a_wrong_token_is_rejected_with_401(https_api: FakeKubeApiServer) -> None:
    settings = KubeClientSettings(host=https_api.url, token="wrong", ca_file=https_api.ca_file)
    with pytest.raises(KubeApiRejectedError) as caught:
        reader(settings).read()
    assert caught.value.status == 401
