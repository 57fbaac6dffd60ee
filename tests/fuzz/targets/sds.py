"""SDS request handling (``node_agent.sds``): only SdsRequestError / UnknownResourceError.

The input is a script for one stream, its first byte choosing SotW or Delta. The rest is
split at ``\\n--\\n``; each part is either ``!<n>`` (the cache changes: part ``n`` of a
rotating set of good and bad secrets is published, and the stream is told) or the wire
bytes of a (Delta)DiscoveryRequest (unparsable parts are skipped). Every request is also
checked as FetchSecrets would (each name through the catalog). The stream may refuse a
request with SdsRequestError, which ends it; every response it sends must carry the
Secret type and only secrets that pass the push gate's checks.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from watchdog.observers.api import BaseObserver

from citadel.identity.clock import ManualClock
from citadel.identity.keys import generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.pem import certificates_to_pem
from node_agent.errors import SdsRequestError, UnknownResourceError
from node_agent.file_sources import FileSecretSources
from node_agent.file_watch import DirectoryWatcher
from node_agent.metrics import AgentMetrics
from node_agent.scheduler import Scheduler
from node_agent.sds.catalog import PushGate, SecretCatalog
from node_agent.sds.delta import DeltaStream
from node_agent.sds.envoy_secrets import SECRET_TYPE_URL
from node_agent.sds.sotw import SotwStream
from node_agent.sds.stream_base import StreamBase, StreamContext
from node_agent.secret_cache import SecretCache, Subscription
from node_agent.secret_validation import (
    SecretValidator,
    load_tls_secret,
    load_trust_bundle_secret,
)
from node_agent.secrets import Secret
from tests.fixtures.pki import make_pki

__all__ = ["FILES", "NOW", "one_input", "seeds"]

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SEPARATOR = b"\n--\n"
_PKI = make_pki("example.org", now=NOW)
FILES = Path(tempfile.mkdtemp(prefix="fuzz-sds-"))


def _tls(name: str, *, lifetime: timedelta = timedelta(hours=1), own_key: bool = True) -> Secret:
    cert, key = _PKI.issue_leaf(not_before=NOW - timedelta(minutes=2), not_after=NOW + lifetime)
    chain = certificates_to_pem([cert, _PKI.intermediate]).encode()
    good = load_tls_secret(name, chain, private_key_to_pkcs8_pem(key))
    if own_key:
        return good
    # Same certificate, someone else's key: the push gate must hold it back.
    return replace(good, private_key_pem=private_key_to_pkcs8_pem(generate_private_key()))


def _files() -> None:
    cert, key = _PKI.issue_leaf(not_before=NOW - timedelta(minutes=2))
    (FILES / "cert.pem").write_text(certificates_to_pem([cert, _PKI.intermediate]))
    (FILES / "key.pem").write_bytes(private_key_to_pkcs8_pem(key))
    (FILES / "root.pem").write_text(certificates_to_pem([_PKI.root]))
    (FILES / "junk.pem").write_text("not a PEM")


_files()
ROOT = load_trust_bundle_secret("ROOTCA", certificates_to_pem([_PKI.root]).encode())
# What the cache may be told: good secrets, an expired one, a mismatched key, a new root.
UPDATES: tuple[Secret, ...] = (
    _tls("default"),
    _tls("default", lifetime=timedelta(seconds=-1)),
    _tls("default", own_key=False),
    _tls("default"),
    ROOT,
)


class _NoObserver:
    """File watches are accepted and ignored: the fuzzer must not spawn watcher threads."""

    def schedule(self, *args: Any, **kwargs: Any) -> None:
        return None


def _context(clock: ManualClock) -> tuple[StreamContext, SecretCache]:
    cache = SecretCache(clock)
    metrics = AgentMetrics()
    validator = SecretValidator()
    scheduler = Scheduler(clock)
    watcher = DirectoryWatcher(scheduler, clock, observer=cast(BaseObserver, _NoObserver()))
    files = FileSecretSources(
        cache=cache,
        clock=clock,
        watcher=watcher,
        validator=validator,
        metrics=metrics,
        allowed_dirs=(FILES,),
    )
    context = StreamContext(
        cache=cache,
        catalog=SecretCatalog(files),
        gate=PushGate(validator, clock, metrics),
        metrics=metrics,
    )
    return context, cache


def _check(responses: list[Any], stream: StreamBase) -> None:
    for response in responses:
        assert response.type_url == SECRET_TYPE_URL, response.type_url
        packed = (
            [r.resource for r in response.resources]
            if isinstance(response, discovery_pb2.DeltaDiscoveryResponse)
            else list(response.resources)
        )
        for any_secret in packed:
            secret = secret_pb2.Secret()
            assert any_secret.Unpack(secret), any_secret.type_url
            assert secret.name in stream.watched, (secret.name, stream.watched)


def _catalog_check(context: StreamContext, request: Any) -> None:
    names = (
        list(request.resource_names)
        if isinstance(request, discovery_pb2.DiscoveryRequest)
        else [*request.resource_names_subscribe, *request.initial_resource_versions]
    )
    for name in names[:8]:
        with contextlib.suppress(UnknownResourceError):
            context.catalog.ensure(name)


def one_input(data: bytes) -> None:
    if not data:
        return
    delta = bool(data[0] & 1)
    message_type = discovery_pb2.DeltaDiscoveryRequest if delta else discovery_pb2.DiscoveryRequest
    clock = ManualClock(NOW)
    context, cache = _context(clock)
    cache.publish(UPDATES[0])
    cache.publish(ROOT)
    notified: list[str] = []

    def watch(name: str) -> Subscription:
        return cache.subscribe(name, notified.append)

    stream: StreamBase = DeltaStream(context, watch) if delta else SotwStream(context, watch)
    try:
        for part in data[1:].split(SEPARATOR)[:64]:
            if part.startswith(b"!"):
                cache.publish(UPDATES[int.from_bytes(part[1:2] or b"\0", "big") % len(UPDATES)])
                clock.advance(timedelta(seconds=1))
                while notified:
                    _check(stream.on_change(notified.pop(0)), stream)
                continue
            try:
                request = message_type.FromString(part)
            except DecodeError:
                continue
            _catalog_check(context, request)
            try:
                responses = stream.on_request(request)
            except SdsRequestError:
                return  # the stream ends here, as the server does
            _check(responses, stream)
    finally:
        stream.close()


def _node() -> Any:
    return base_pb2.Node(id="sidecar~10.0.0.1~web", cluster="web")


def seeds() -> Iterable[bytes]:
    sotw = [
        discovery_pb2.DiscoveryRequest(
            node=_node(), type_url=SECRET_TYPE_URL, resource_names=["default", "ROOTCA"]
        ),
        discovery_pb2.DiscoveryRequest(
            type_url=SECRET_TYPE_URL,
            resource_names=["default", "ROOTCA"],
            version_info="1",
            response_nonce="n1",
        ),
        discovery_pb2.DiscoveryRequest(
            type_url=SECRET_TYPE_URL,
            resource_names=[f"file-cert:{FILES}/cert.pem~{FILES}/key.pem"],
            version_info="1",
            response_nonce="n2",
            error_detail=status_pb2.Status(code=3, message="rejected"),
        ),
    ]
    wire = [request.SerializeToString() for request in sotw]
    yield b"\0" + SEPARATOR.join([wire[0], wire[1], b"!\x02", b"!\x03", wire[2]])
    delta = [
        discovery_pb2.DeltaDiscoveryRequest(
            node=_node(),
            type_url=SECRET_TYPE_URL,
            resource_names_subscribe=["default", f"file-root:{FILES}/root.pem"],
        ),
        discovery_pb2.DeltaDiscoveryRequest(type_url=SECRET_TYPE_URL, response_nonce="n1"),
        discovery_pb2.DeltaDiscoveryRequest(
            type_url=SECRET_TYPE_URL,
            response_nonce="n2",
            resource_names_unsubscribe=["default"],
            error_detail=status_pb2.Status(code=3, message="bad"),
        ),
        discovery_pb2.DeltaDiscoveryRequest(
            node=_node(),
            initial_resource_versions={"default": "3", f"file-root:{FILES}/junk.pem": "1"},
        ),
    ]
    wire = [request.SerializeToString() for request in delta]
    yield b"\1" + SEPARATOR.join([wire[0], b"!\x01", wire[1], b"!\x00", wire[2], wire[3]])


@atexit.register
def _cleanup() -> None:
    shutil.rmtree(FILES, ignore_errors=True)
