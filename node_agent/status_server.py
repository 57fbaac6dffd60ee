"""The agent's local HTTP endpoint: /ready, /healthz, /metrics, /status and POST /rotate.

It listens on loopback by default. ``/ready`` answers 200 only while a valid workload
certificate is cached; ``/status`` is the JSON that ``citadel-agent status`` prints.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["StatusServer"]

_log = logging.getLogger(__name__)

Readiness = Callable[[], tuple[bool, str]]
StatusReport = Callable[[], dict[str, Any]]


class StatusServer:
    def __init__(
        self,
        address: str,
        port: int,
        *,
        readiness: Readiness,
        status: StatusReport,
        registry: CollectorRegistry,
        rotate: Callable[[], None],
    ) -> None:
        self._address = address
        self._port = port
        self._readiness = readiness
        self._status = status
        self._registry = registry
        self._rotate = rotate
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("status server is not running")
        return int(self._server.server_address[1])

    def start(self) -> int:
        """Bind and serve on a daemon thread; returns the bound port."""
        handler = _handler_class(self)
        self._server = ThreadingHTTPServer((self._address, self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="agent-status", daemon=True
        )
        self._thread.start()
        _log.info("status endpoint on http://%s:%d", self._address, self.port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # --- request handling -------------------------------------------------------------------
    def handle_get(self, path: str) -> tuple[int, str, bytes]:
        if path == "/ready":
            ready, reason = self._readiness()
            return (200 if ready else 503), "text/plain; charset=utf-8", f"{reason}\n".encode()
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/status":
            body = json.dumps(self._status(), indent=2, sort_keys=True).encode()
            return 200, "application/json", body + b"\n"
        return 404, "text/plain; charset=utf-8", b"not found\n"

    def handle_post(self, path: str) -> tuple[int, str, bytes]:
        if path == "/rotate":
            self._rotate()
            return 202, "text/plain; charset=utf-8", b"renewal requested\n"
        return 404, "text/plain; charset=utf-8", b"not found\n"


def _handler_class(owner: StatusServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "citadel-agent"

        def _reply(self, result: tuple[int, str, bytes]) -> None:
            code, content_type, body = result
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            try:
                self._reply(owner.handle_get(self.path.split("?", 1)[0]))
            except Exception:
                _log.exception("status request %s failed", self.path[:100])
                self._reply((500, "text/plain; charset=utf-8", b"internal error\n"))

        def do_POST(self) -> None:
            self._reply(owner.handle_post(self.path.split("?", 1)[0]))

        def log_message(self, format: str, *args: Any) -> None:
            _log.debug("status %s", format % args)

    return Handler
