"""A small Kubernetes API server for tests: real HTTP(S) on loopback, real REST shapes.

The real ``kubernetes`` client talks to it exactly as to an API server. Behaviour is a table
of handlers keyed by (HTTP method, path regex); tests add what they need::

    api = FakeKubeApiServer()
    reviews = api.serve_token_reviews()           # POST .../tokenreviews
    reviews.allow("tok-a", "system:serviceaccount:default:web", audiences=("istio-ca",))
    api.add_handler("GET", r"/api/v1/namespaces", lambda req: FakeResponse(body={...}))
    with api:                                     # start() ... stop()
        configuration = Configuration(host=api.url) ...

Every request is recorded (``api.requests``). A handler that raises answers 500. The server
can require a bearer token of its own callers (``required_token``) and can serve TLS with a
self-signed certificate for 127.0.0.1/localhost (``FakeKubeApiServer.with_tls(tmp_dir)``).
"""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "TOKEN_REVIEW_PATH",
    "FakeKubeApiServer",
    "FakeRequest",
    "FakeResponse",
    "Handler",
    "TokenReviewBook",
    "status_response",
]

TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class FakeRequest:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    match: re.Match[str] | None = field(default=None, compare=False)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def bearer_token(self) -> str | None:
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token if scheme.lower() == "bearer" and token else None


@dataclass
class FakeResponse:
    status: int = 200
    body: Any = None  # JSON-encodable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (timeouts, slowness)


Handler = Callable[[FakeRequest], FakeResponse]


def status_response(code: int, reason: str, message: str) -> FakeResponse:
    """A ``Status`` object, the way the API server reports errors."""
    return FakeResponse(
        status=code,
        body={
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
    )


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class FakeKubeApiServer:
    """A threaded HTTP(S) server on 127.0.0.1 with a handler table.

    Args:
        required_token: when set, every request must carry ``Authorization: Bearer <it>``
            (else 401, as an API server answers an unauthenticated client).
        tls: (certificate PEM file, key PEM file) to serve HTTPS.
    """

    def __init__(
        self, *, required_token: str | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.required_token = required_token
        self._tls = tls
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._requests: list[FakeRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_file: Path | None = tls[0] if tls else None

    # --- construction helpers ----------------------------------------------------------------
    @classmethod
    def with_tls(cls, directory: Path, *, required_token: str | None = None) -> FakeKubeApiServer:
        """An HTTPS server with a fresh self-signed certificate for 127.0.0.1 and localhost;
        ``ca_file`` is that certificate (give it to the client as its CA bundle)."""
        cert_file, key_file = _self_signed(directory)
        return cls(required_token=required_token, tls=(cert_file, key_file))

    def add_handler(self, method: str, path_regex: str, handler: Handler) -> None:
        """Answer ``method`` requests whose path fully matches ``path_regex``.

        Later registrations take precedence over earlier ones for the same request.
        """
        with self._lock:
            self._routes.append(_Route(method.upper(), re.compile(path_regex), handler))

    def serve_token_reviews(self, book: TokenReviewBook | None = None) -> TokenReviewBook:
        """Answer TokenReviews from ``book`` (a new, empty one by default) and return it."""
        reviews = book if book is not None else TokenReviewBook()
        self.add_handler("POST", re.escape(TOKEN_REVIEW_PATH), reviews.handle)
        return reviews

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake API server is not started")
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeKubeApiServer:
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        if self._tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self._tls[0]), str(self._tls[1]))
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeKubeApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- inspection --------------------------------------------------------------------------
    @property
    def requests(self) -> list[FakeRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path_regex: str) -> list[FakeRequest]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    # --- dispatch ------------------------------------------------------------------------------
    def _dispatch(self, request: FakeRequest) -> FakeResponse:
        with self._lock:
            self._requests.append(request)
            routes = list(reversed(self._routes))
        if self.required_token is not None and request.bearer_token != self.required_token:
            return status_response(401, "Unauthorized", "Unauthorized")
        allowed_elsewhere = False
        for route in routes:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            if route.method != request.method:
                allowed_elsewhere = True
                continue
            matched = FakeRequest(
                request.method, request.path, request.query, request.headers, request.body, match
            )
            try:
                return route.handler(matched)
            except Exception as exc:  # a broken handler is a 500, like a broken server
                return status_response(500, "InternalError", f"handler failed: {exc!r}")
        if allowed_elsewhere:
            return status_response(405, "MethodNotAllowed", "method not allowed")
        return status_response(404, "NotFound", f"the server could not find {request.path}")


def _make_handler(server: FakeKubeApiServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle on, the body waits for the
        # client's delayed ACK (~40 ms per answer). API servers set TCP_NODELAY too.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(status_response(413, "RequestEntityTooLarge", "body too large"))
                return
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = FakeRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            self._send(server._dispatch(request))

        def _send(self, response: FakeResponse) -> None:
            if response.delay:
                threading.Event().wait(response.delay)
            if isinstance(response.body, bytes):
                payload = response.body
                content_type = "application/octet-stream"
            else:
                payload = json.dumps(response.body).encode()
                content_type = "application/json"
            try:
                self.send_response(response.status, HTTPStatus(response.status).phrase)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return _Handler


@dataclass(frozen=True)
class _Account:
    username: str
    audiences: tuple[str, ...]
    uid: str
    groups: tuple[str, ...]


class TokenReviewBook:
    """What the fake API server knows about tokens, answered like the real one.

    Unknown tokens are not authenticated. A known token is authenticated only when the
    review asks for no audience or for one of the token's audiences (the answer then lists
    the matching audiences), which is how the API server treats bound tokens.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self.reviews: list[dict[str, Any]] = []
        self.failure: FakeResponse | None = None  # set to make every review fail

    def allow(
        self,
        token: str,
        username: str,
        *,
        audiences: Iterable[str] = ("istio-ca",),
        uid: str = "00000000-0000-0000-0000-000000000001",
        groups: Iterable[str] = ("system:serviceaccounts", "system:authenticated"),
    ) -> None:
        with self._lock:
            self._accounts[token] = _Account(username, tuple(audiences), uid, tuple(groups))

    def revoke(self, token: str) -> None:
        with self._lock:
            self._accounts.pop(token, None)

    @property
    def review_count(self) -> int:
        with self._lock:
            return len(self.reviews)

    def handle(self, request: FakeRequest) -> FakeResponse:
        try:
            review = request.json()
            spec = review["spec"]
            token = spec["token"]
        except (ValueError, KeyError, TypeError):
            return status_response(400, "BadRequest", "malformed TokenReview")
        with self._lock:
            self.reviews.append(review)
            failure = self.failure
            account = self._accounts.get(token)
        if failure is not None:
            return failure
        wanted = list(spec.get("audiences") or [])
        status: dict[str, Any]
        if account is None:
            status = {"authenticated": False, "error": "invalid bearer token"}
        else:
            matching = [a for a in wanted if a in account.audiences] if wanted else []
            if wanted and not matching:
                status = {
                    "authenticated": False,
                    "error": "token audiences are invalid for the target audiences",
                }
            else:
                status = {
                    "authenticated": True,
                    "user": {
                        "username": account.username,
                        "uid": account.uid,
                        "groups": list(account.groups),
                    },
                    "audiences": matching or list(account.audiences),
                }
        return FakeResponse(
            status=201,
            body={
                "kind": "TokenReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": spec,
                "status": status,
            },
        )


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-kube-apiserver")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / "kube-apiserver.crt"
    key_file = directory / "kube-apiserver.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file
