from __future__ import annotations

import json
import os
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from citadel.authz.errors import JwksError, JwksUnavailableError, UnknownKeyError
from citadel.authz.jwks import MAX_JWKS_BYTES, FileJwks, JwkSet, UrlJwks, fetch_url
from citadel.authz.policy import JwksFormat
from citadel.identity.clock import ManualClock
from tests.unit.authz.servers import JwksHttpServer
from tests.unit.authz.tokens import Signer, jwks_of


def _short_rsa_jwk() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the defect
    return {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "a"}


def test_plain_jwks_uses_sig_keys_and_skips_others(signer: Signer, ec_signer: Signer) -> None:
    document = {
        "keys": [
            signer.public_jwk(use="sig"),
            ec_signer.public_jwk(),
            {**Signer("ES384", kid="enc").public_jwk(), "use": "enc"},
            {"kty": "oct", "kid": "hmac"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "abc"},
            {**Signer("ES384", kid="no-kid").public_jwk(), "kid": ""},
        ]
    }
    keys = JwkSet.parse(document, JwksFormat.JWKS)
    assert sorted(keys.keys) == ["ec-1", "rsa-1"]


def test_spiffe_bundle_uses_only_jwt_svid_keys(signer: Signer, ec_signer: Signer) -> None:
    document = {
        "spiffe_sequence": 3,
        "spiffe_refresh_hint": 300,
        "keys": [
            signer.public_jwk(use="jwt-svid"),
            ec_signer.public_jwk(use="x509-svid"),
        ],
    }
    keys = JwkSet.parse(json.dumps(document), JwksFormat.SPIFFE)
    assert list(keys.keys) == ["rsa-1"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ({"keys": {}}, "'keys' list"),
        ({"keys": ["x"]}, "keys[0] is not an object"),
        ({"keys": [_short_rsa_jwk()]}, "shorter than 2048"),
        ({"keys": [{"kty": "RSA", "kid": "a", "n": "!!", "e": "AQAB"}]}, "malformed"),
        ({"keys": [{"kty": "EC", "kid": "a", "crv": "secp256k1", "x": "a", "y": "b"}]}, "curve"),
        (
            {"keys": [{"kty": "EC", "kid": "a", "crv": "P-256", "x": "a", "y": "b", "d": "c"}]},
            "private",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "keys-not-list",
        "entry-not-object",
        "short-rsa",
        "bad-rsa",
        "bad-curve",
        "private-ec",
    ],
)
def test_malformed_jwks_is_refused(document: Any, message: str) -> None:
    with pytest.raises(JwksError, match=re.escape(message)):
        JwkSet.parse(
            document if isinstance(document, str) else json.dumps(document), JwksFormat.JWKS
        )


def test_duplicate_kid_is_refused(signer: Signer) -> None:
    with pytest.raises(JwksError, match="repeats kid 'rsa-1'"):
        JwkSet.parse(jwks_of(signer, signer), JwksFormat.JWKS)


def test_spiffe_jwt_key_without_kid_is_refused(signer: Signer) -> None:
    jwk = signer.public_jwk(use="jwt-svid")
    del jwk["kid"]
    with pytest.raises(JwksError, match="no 'kid'"):
        JwkSet.parse({"keys": [jwk]}, JwksFormat.SPIFFE)


def test_oversized_jwks_is_refused() -> None:
    with pytest.raises(JwksError, match="larger than"):
        JwkSet.parse(b" " * (MAX_JWKS_BYTES + 1), JwksFormat.JWKS)


def test_jwks_error_never_quotes_key_material(signer: Signer) -> None:
    jwk = signer.public_jwk()
    jwk["d"] = "SECRET-PRIVATE-EXPONENT"
    with pytest.raises(JwksError) as info:
        JwkSet.parse({"keys": [jwk]}, JwksFormat.JWKS)
    assert "SECRET" not in str(info.value)


# ---- file source -------------------------------------------------------------------------


def _bump_mtime(path: Path, seconds: int) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def test_file_jwks_reloads_when_the_file_changes(
    tmp_path: Path, signer: Signer, ec_signer: Signer
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_of(signer)))
    source = FileJwks(path)
    assert source.key("rsa-1").kid == "rsa-1"
    with pytest.raises(UnknownKeyError):
        source.key("ec-1")
    path.write_text(json.dumps(jwks_of(ec_signer)))
    _bump_mtime(path, 1)
    assert source.key("ec-1").kid == "ec-1"
    with pytest.raises(UnknownKeyError):
        source.key("rsa-1")


def test_file_jwks_keeps_old_keys_when_the_new_file_is_malformed(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_of(signer)))
    source = FileJwks(path)
    source.key("rsa-1")
    path.write_text("{ broken")
    _bump_mtime(path, 1)
    assert source.key("rsa-1").kid == "rsa-1"
    path.unlink()
    assert source.key("rsa-1").kid == "rsa-1"


def test_file_jwks_never_loaded_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text("{ broken")
    with pytest.raises(JwksUnavailableError):
        FileJwks(path).key("rsa-1")


# ---- URL source --------------------------------------------------------------------------


def _url_source(server: JwksHttpServer, clock: ManualClock, **kwargs: Any) -> UrlJwks:
    return UrlJwks(server.url, clock=clock, refresh_interval=timedelta(minutes=5), **kwargs)


def test_url_jwks_is_fetched_once_and_cached(clock: ManualClock, signer: Signer) -> None:
    with JwksHttpServer(json.dumps(jwks_of(signer)).encode()) as server:
        source = _url_source(server, clock)
        for _ in range(3):
            assert source.key("rsa-1").kid == "rsa-1"
        assert server.requests == 1


def test_url_jwks_refreshes_after_the_interval(
    clock: ManualClock, signer: Signer, ec_signer: Signer
) -> None:
    with JwksHttpServer(json.dumps(jwks_of(signer)).encode()) as server:
        source = _url_source(server, clock)
        source.key("rsa-1")
        server.body = json.dumps(jwks_of(ec_signer)).encode()
        clock.advance(timedelta(minutes=4))
        source.key("rsa-1")
        clock.advance(timedelta(minutes=1))
        assert source.key("ec-1").kid == "ec-1"
        assert server.requests == 2


def test_url_jwks_unknown_kid_refetches_at_most_every_min_interval(
    clock: ManualClock, signer: Signer, ec_signer: Signer
) -> None:
    with JwksHttpServer(json.dumps(jwks_of(signer)).encode()) as server:
        source = _url_source(server, clock, min_refetch_interval=timedelta(seconds=30))
        source.key("rsa-1")
        for _ in range(5):
            with pytest.raises(UnknownKeyError):
                source.key("rotated")
        assert server.requests == 1
        server.body = json.dumps(jwks_of(signer, ec_signer)).encode()
        clock.advance(timedelta(seconds=30))
        assert source.key("ec-1").kid == "ec-1"
        assert server.requests == 2


def test_url_jwks_never_fetched_fails_closed_and_retries_after_interval(
    clock: ManualClock, signer: Signer
) -> None:
    with JwksHttpServer(b"oops", status=500) as server:
        source = _url_source(server, clock, retry_interval=timedelta(seconds=5))
        for _ in range(3):
            with pytest.raises(JwksUnavailableError, match="never been fetched"):
                source.key("rsa-1")
        assert server.requests == 1
        server.status, server.body = 200, json.dumps(jwks_of(signer)).encode()
        clock.advance(timedelta(seconds=5))
        assert source.key("rsa-1").kid == "rsa-1"


def test_url_jwks_keeps_cached_keys_on_failure_until_max_staleness(
    clock: ManualClock, signer: Signer
) -> None:
    with JwksHttpServer(json.dumps(jwks_of(signer)).encode()) as server:
        source = _url_source(server, clock, max_staleness=timedelta(hours=1))
        source.key("rsa-1")
        server.status = 503
        clock.advance(timedelta(minutes=30))
        assert source.key("rsa-1").kid == "rsa-1"
        clock.advance(timedelta(minutes=31))
        with pytest.raises(JwksUnavailableError, match="stale"):
            source.key("rsa-1")


def test_url_jwks_unreachable_server_fails_closed(clock: ManualClock) -> None:
    with JwksHttpServer() as server:
        url = server.url
    source = UrlJwks(url, clock=clock, timeout=timedelta(seconds=2))
    with pytest.raises(JwksUnavailableError):
        source.key("any")


def test_url_jwks_malformed_document_is_not_cached(clock: ManualClock) -> None:
    with JwksHttpServer(b'{"keys": "nope"}') as server, pytest.raises(JwksUnavailableError):
        _url_source(server, clock).key("rsa-1")


def test_fetch_refuses_other_schemes_and_oversized_bodies() -> None:
    with pytest.raises(JwksError, match="http or https"):
        fetch_url("file:///etc/passwd", 1.0)
    with (
        JwksHttpServer(b"x" * (MAX_JWKS_BYTES + 10)) as server,
        pytest.raises(JwksError, match="larger than"),
    ):
        fetch_url(server.url, 5.0)


def test_url_jwks_refuses_non_http_urls(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="http or https"):
        UrlJwks("ftp://example.org/jwks", clock=clock)


def test_concurrent_callers_share_one_failing_fetch(clock: ManualClock) -> None:
    with JwksHttpServer(b"down", status=503) as server:
        server.delay = 0.3
        source = _url_source(server, clock)
        errors: list[Exception] = []

        def lookup() -> None:
            try:
                source.key("rsa-1")
            except JwksUnavailableError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=lookup) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert len(errors) == 5
        assert server.requests == 1
