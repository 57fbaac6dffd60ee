"""The plug-in CA Secret and the self-signed root Secret through the real client."""

from __future__ import annotations

import base64
import logging

import pytest
from cryptography import x509

from citadel.identity.keys import PrivateKey, public_keys_equal
from citadel.k8s.cacerts_secret import CaCertsSecretReader
from citadel.k8s.client import KubeApis, KubeClientSettings, build_configuration, new_api_client
from citadel.k8s.controller_errors import (
    CaSecretConflictError,
    CaSecretError,
    CaSecretMissingKeyError,
    CaSecretNotFoundError,
)
from citadel.k8s.errors import KubeApiRejectedError, KubeApiUnavailableError
from citadel.k8s.root_ca_secret import RootCaSecretStore
from tests.integration.k8s.conftest import FakeCluster
from tests.unit.k8s.pki_helpers import CaPair, make_ca

NAMESPACE = "citadel-system"
SECRETS = rf"/api/v1/namespaces/{NAMESPACE}/secrets(/[^/]+)?"
ROOT = make_ca("root")
INTERMEDIATE = make_ca("intermediate", ROOT)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def put_cacerts(cluster: FakeCluster, *, missing: str | None = None) -> None:
    data = {
        "ca-cert.pem": b64(INTERMEDIATE.cert_pem),
        "ca-key.pem": b64(INTERMEDIATE.key_pem),
        "cert-chain.pem": b64(INTERMEDIATE.cert_pem + ROOT.cert_pem),
        "root-cert.pem": b64(ROOT.cert_pem),
    }
    if missing is not None:
        del data[missing]
    cluster.objects.put(
        "secrets", NAMESPACE, {"metadata": {"name": "cacerts"}, "type": "Opaque", "data": data}
    )


@pytest.fixture(autouse=True)
def _namespace(cluster: FakeCluster) -> None:
    cluster.objects.put_namespace(NAMESPACE)


def reader(cluster: FakeCluster) -> CaCertsSecretReader:
    return CaCertsSecretReader(cluster.apis.core, namespace=NAMESPACE)


def test_plug_in_ca_is_read_from_the_cacerts_secret(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    put_cacerts(cluster)
    with caplog.at_level(logging.DEBUG):
        material = reader(cluster).read()
    assert material.ca_cert == INTERMEDIATE.cert
    assert public_keys_equal(material.ca_key, INTERMEDIATE.key)
    assert material.roots == (ROOT.cert,)
    assert material.resource_version is not None
    key_line = INTERMEDIATE.key_pem.decode().splitlines()[1]
    assert key_line not in caplog.text
    assert "BEGIN" not in caplog.text


def test_cacerts_secret_with_a_missing_key_is_a_clear_error(cluster: FakeCluster) -> None:
    put_cacerts(cluster, missing="ca-key.pem")
    with pytest.raises(CaSecretMissingKeyError) as caught:
        reader(cluster).read()
    assert caught.value.key == "ca-key.pem"
    assert str(caught.value) == (
        "Secret citadel-system/cacerts has no 'ca-key.pem' entry (required)"
    )


def test_missing_cacerts_secret_is_not_found(cluster: FakeCluster) -> None:
    with pytest.raises(CaSecretNotFoundError, match="citadel-system/cacerts does not exist"):
        reader(cluster).read()


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, KubeApiUnavailableError), (503, KubeApiUnavailableError), (403, KubeApiRejectedError)],
    ids=["500", "503", "403"],
)
def test_api_failures_reading_cacerts_are_typed(
    cluster: FakeCluster, status: int, error: type[Exception]
) -> None:
    put_cacerts(cluster)
    cluster.objects.fail_requests("GET", SECRETS, status=status)
    with pytest.raises(error, match=f"HTTP {status}"):
        reader(cluster).read()


def test_unreachable_api_server_is_unavailable() -> None:

    apis = KubeApis.from_client(
        new_api_client(build_configuration(KubeClientSettings(host="http://127.0.0.1:9")))
    )
    with pytest.raises(KubeApiUnavailableError):
        CaCertsSecretReader(apis.core, namespace=NAMESPACE).read()


def store(cluster: FakeCluster) -> RootCaSecretStore:
    return RootCaSecretStore(cluster.apis.core, namespace=NAMESPACE)


def test_root_is_created_once_and_loaded_afterwards(cluster: FakeCluster) -> None:
    generated: list[CaPair] = []

    def generate() -> tuple[x509.Certificate, PrivateKey]:
        pair = make_ca("fresh-root")
        generated.append(pair)
        return pair.cert, pair.key

    first = store(cluster).ensure(generate)
    second = store(cluster).ensure(generate)
    assert len(generated) == 1
    assert first.certificate == second.certificate == generated[0].cert
    secret = cluster.objects.get("secrets", NAMESPACE, "istio-ca-secret")
    assert secret is not None
    assert secret["type"] == "citadel.io/ca-root"
    assert set(secret["data"]) == {"ca-cert.pem", "ca-key.pem"}


def test_two_replicas_racing_to_create_the_root_agree_on_one(cluster: FakeCluster) -> None:
    winner = make_ca("winner")
    loser = make_ca("loser")
    a, b = store(cluster), store(cluster)

    def b_generates_but_a_wins() -> tuple[x509.Certificate, PrivateKey]:
        a.create(winner.cert, winner.key)  # a's create lands between b's load and b's create
        return loser.cert, loser.key

    stored = b.ensure(b_generates_but_a_wins)
    assert stored.certificate == winner.cert
    assert public_keys_equal(stored.key, winner.key)


def test_replacing_with_a_stale_version_is_a_conflict(cluster: FakeCluster) -> None:
    first = store(cluster).create(ROOT.cert, ROOT.key)
    assert first.resource_version is not None
    renewed = make_ca("renewed")
    store(cluster).replace(renewed.cert, renewed.key, resource_version=first.resource_version)
    with pytest.raises(CaSecretConflictError):
        store(cluster).replace(ROOT.cert, ROOT.key, resource_version=first.resource_version)
    loaded = store(cluster).load()
    assert loaded is not None and loaded.certificate == renewed.cert


def test_a_damaged_root_secret_is_reported_and_never_overwritten(cluster: FakeCluster) -> None:
    cluster.objects.put(
        "secrets",
        NAMESPACE,
        {
            "metadata": {"name": "istio-ca-secret"},
            "type": "citadel.io/ca-root",
            "data": {"ca-cert.pem": b64(ROOT.cert_pem), "ca-key.pem": b64(b"garbage")},
        },
    )
    with pytest.raises(CaSecretError, match=r"ca-key\.pem"):
        store(cluster).ensure(lambda: (ROOT.cert, ROOT.key))
    assert cluster.api.requests_to("POST", SECRETS) == []
    assert cluster.api.requests_to("PUT", SECRETS) == []


def test_key_and_certificate_must_match_before_anything_is_stored(cluster: FakeCluster) -> None:
    with pytest.raises(ValueError, match="does not match"):
        store(cluster).create(ROOT.cert, INTERMEDIATE.key)
    assert cluster.api.requests_to("POST", SECRETS) == []
