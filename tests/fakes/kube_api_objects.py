"""Namespaces, ConfigMaps, Secrets and Leases for :class:`FakeKubeApiServer`.

An in-memory object store with the API server's rules that our controllers depend on:

- every write bumps one global ``resourceVersion``; ``PUT`` with a stale ``resourceVersion``
  answers 409 Conflict, ``POST`` of an existing name answers 409 AlreadyExists;
- namespaced objects need their namespace (404) and a terminating namespace refuses new
  objects (403);
- list answers carry the collection's ``resourceVersion``; ``?watch=true`` answers the events
  after the given version (label and field selectors applied, an object leaving a label
  selector is a DELETED event), and an expired version gets an ERROR event with code 410;
- Secret ``data`` must be base64 and Lease times must be MicroTime (six fraction digits),
  which the real API server enforces too.

The fake server answers with a complete body (no chunked streaming), so a watch here is a
long poll: the request waits until an event arrives or ``timeoutSeconds`` passes, sends the
events and ends; a client resumes from the last version, as it does after any watch ends.

Faults for the resilience tests: :meth:`KubeObjects.fail_requests` (any status, any path),
:meth:`expire_watches` (ERROR 410 event), :meth:`truncate_watches` (the connection ends in the
middle of an event), :meth:`stall_watches` (no answer for a while), :meth:`compact` (history
gone).

Usage::

    api = FakeKubeApiServer()
    objects = KubeObjects().install(api)
    objects.put_namespace("apps")
    with api: ...
    objects.close()  # wake waiting watches before the server stops
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.fakes.kube_api_server import (
    FakeKubeApiServer,
    FakeRequest,
    FakeResponse,
    status_response,
)

__all__ = ["KIND_BY_RESOURCE", "KubeObjects", "ResourceKind"]

_MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
MAX_WATCH_SECONDS = 60.0


@dataclass(frozen=True)
class ResourceKind:
    resource: str  # URL plural
    kind: str
    api_version: str
    namespaced: bool

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"


KIND_BY_RESOURCE = {
    k.resource: k
    for k in (
        ResourceKind("namespaces", "Namespace", "v1", namespaced=False),
        ResourceKind("configmaps", "ConfigMap", "v1", namespaced=True),
        ResourceKind("secrets", "Secret", "v1", namespaced=True),
        ResourceKind("leases", "Lease", "coordination.k8s.io/v1", namespaced=True),
    )
}


@dataclass(frozen=True)
class _Event:
    resource_version: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    remaining: int
    watch_only: bool = False
    response: FakeResponse | None = None
    watch_mode: str = ""  # "expire" | "truncate" | "stall"
    stall_seconds: float = 0.0


@dataclass(frozen=True)
class _Query:
    watch: bool
    resource_version: str | None
    timeout_seconds: float
    label_selector: str
    field_selector: str


def _first(query: Mapping[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels_match(selector: str, labels: Mapping[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _fields_match(selector: str, obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata", {})
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negate = "!=" in term
        key, value = re.split(r"!=|==|=", term, maxsplit=1)
        field_name = key.strip().removeprefix("metadata.")
        if field_name not in ("name", "namespace"):
            raise ValueError(f"field selector {key!r} is not supported")
        if (metadata.get(field_name) == value.strip()) == negate:
            return False
    return True


class KubeObjects:
    """The object store behind the fake API server's namespace/configmap/secret/lease routes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._events: list[_Event] = []
        self._version = 100
        self._compacted = 0
        self._faults: list[_Fault] = []
        self._closed = False

    # --- wiring -----------------------------------------------------------------------------
    def install(self, api: FakeKubeApiServer) -> KubeObjects:
        """Register the routes of every kind on ``api``; returns self."""
        for kind in KIND_BY_RESOURCE.values():
            prefix = re.escape(kind.prefix)
            if kind.namespaced:
                collection = rf"{prefix}/namespaces/(?P<namespace>[^/]+)/{kind.resource}"
                api.add_handler("GET", rf"{prefix}/{kind.resource}", self._route(kind, "list"))
            else:
                collection = rf"{prefix}/{kind.resource}"
            item = rf"{collection}/(?P<name>[^/]+)"
            api.add_handler("GET", collection, self._route(kind, "list"))
            api.add_handler("POST", collection, self._route(kind, "create"))
            api.add_handler("GET", item, self._route(kind, "read"))
            api.add_handler("PUT", item, self._route(kind, "replace"))
            api.add_handler("DELETE", item, self._route(kind, "delete"))
        return self

    def close(self) -> None:
        """End every waiting watch now (call before stopping the server)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --- faults -----------------------------------------------------------------------------
    def fail_requests(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 500,
        times: int = 1,
        watch_only: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (a Status body)."""
        reason = {409: "Conflict", 410: "Gone", 403: "Forbidden", 429: "TooManyRequests"}.get(
            status, "InternalError"
        )
        response = status_response(status, reason, f"injected failure ({status})")
        self._add_fault(
            _Fault(method.upper(), re.compile(path_regex), times, watch_only, response=response)
        )

    def expire_watches(self, path_regex: str = r".*", *, times: int = 1) -> None:
        """The next ``times`` watches answer one ERROR event with code 410 (version too old)."""
        self._add_fault(
            _Fault("GET", re.compile(path_regex), times, watch_only=True, watch_mode="expire")
        )

    def truncate_watches(self, path_regex: str = r".*", *, times: int = 1) -> None:
        """The next ``times`` watches that have an event to send end in the middle of it."""
        self._add_fault(
            _Fault("GET", re.compile(path_regex), times, watch_only=True, watch_mode="truncate")
        )

    def stall_watches(self, seconds: float, path_regex: str = r".*", *, times: int = 1) -> None:
        """The next ``times`` watches send nothing for ``seconds`` (client read timeouts)."""
        self._add_fault(
            _Fault(
                "GET",
                re.compile(path_regex),
                times,
                watch_only=True,
                watch_mode="stall",
                stall_seconds=seconds,
            )
        )

    def compact(self) -> None:
        """Forget the event history: watches from any older version now get 410."""
        with self._cond:
            self._compacted = self._version
            self._events.clear()

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be >= 1")
        with self._cond:
            self._faults.append(fault)

    def _take_truncation(self, path: str) -> bool:
        with self._cond:
            for fault in self._faults:
                if (
                    fault.watch_mode == "truncate"
                    and fault.remaining > 0
                    and fault.pattern.fullmatch(path)
                ):
                    fault.remaining -= 1
                    return True
        return False

    def _take_fault(self, request: FakeRequest, watch: bool) -> _Fault | None:
        with self._cond:
            for fault in self._faults:
                if fault.remaining <= 0 or fault.method != request.method:
                    continue
                if fault.watch_mode == "truncate":
                    continue  # taken when a watch has an event to cut
                if fault.watch_only and not watch:
                    continue
                if not fault.pattern.fullmatch(request.path):
                    continue
                fault.remaining -= 1
                return fault
        return None

    # --- direct access for tests (no HTTP) --------------------------------------------------
    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._version

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._cond:
            found = self._objects.get((resource, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def all_of(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [
                copy.deepcopy(o)
                for (r, ns, _), o in sorted(self._objects.items())
                if r == resource and (namespace is None or ns == namespace)
            ]

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("configmaps", namespace, name)

    def put_namespace(
        self, name: str, *, labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Create or relabel a namespace."""
        body = {"metadata": {"name": name, "labels": dict(labels or {})}}
        existing = self.get("namespaces", "", name)
        if existing is None:
            return self.put("namespaces", "", body)
        existing["metadata"]["labels"] = dict(labels or {})
        return self.put("namespaces", "", existing)

    def terminate_namespace(self, name: str) -> None:
        """Mark a namespace as being deleted (new objects in it are refused with 403)."""
        existing = self.get("namespaces", "", name)
        if existing is None:
            raise KeyError(name)
        existing["metadata"]["deletionTimestamp"] = _now()
        existing["status"] = {"phase": "Terminating"}
        self.put("namespaces", "", existing)

    def delete_namespace(self, name: str) -> None:
        """Delete a namespace and everything in it."""
        with self._cond:
            for key in [k for k in self._objects if k[1] == name]:
                self._delete_locked(key)
            self._delete_locked(("namespaces", "", name))

    def put(self, resource: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or overwrite an object unconditionally (a foreign writer, test setup)."""
        kind = KIND_BY_RESOURCE[resource]
        obj = copy.deepcopy(dict(body))
        obj.setdefault("metadata", {})
        if kind.namespaced:
            obj["metadata"]["namespace"] = namespace
        with self._cond:
            key = (resource, namespace if kind.namespaced else "", obj["metadata"]["name"])
            return self._store_locked(kind, key, obj)

    def delete(self, resource: str, namespace: str, name: str) -> bool:
        with self._cond:
            return self._delete_locked((resource, namespace, name))

    # --- storage (lock held) ----------------------------------------------------------------
    def _store_locked(
        self, kind: ResourceKind, key: tuple[str, str, str], obj: dict[str, Any]
    ) -> dict[str, Any]:
        old = self._objects.get(key)
        self._version += 1
        metadata = obj["metadata"]
        metadata["resourceVersion"] = str(self._version)
        if old is None:
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = _now()
        else:
            metadata["uid"] = old["metadata"]["uid"]
            metadata["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        obj["kind"] = kind.kind
        obj["apiVersion"] = kind.api_version
        if kind.resource == "namespaces":
            obj.setdefault("status", {"phase": "Active"})
        self._objects[key] = obj
        self._events.append(
            _Event(self._version, "MODIFIED" if old else "ADDED", kind.resource, old, obj)
        )
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def _delete_locked(self, key: tuple[str, str, str]) -> bool:
        old = self._objects.pop(key, None)
        if old is None:
            return False
        self._version += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self._version)
        self._events.append(_Event(self._version, "DELETED", key[0], old, gone))
        self._cond.notify_all()
        return True

    # --- HTTP handlers ----------------------------------------------------------------------
    def _route(self, kind: ResourceKind, action: str) -> Callable[[FakeRequest], FakeResponse]:
        def handle(request: FakeRequest) -> FakeResponse:
            query = self._query(request)
            fault = self._take_fault(request, query.watch)
            if fault is not None and fault.response is not None:
                return fault.response
            groups = request.match.groupdict() if request.match else {}
            namespace = groups.get("namespace")
            name = groups.get("name")
            if action == "list":
                if query.watch:
                    return self._watch(kind, namespace, query, fault, request.path)
                return self._list(kind, namespace, query)
            if action == "create":
                return self._create(kind, namespace or "", request)
            assert name is not None
            key = (kind.resource, namespace or "", name)
            if action == "read":
                return self._read(kind, key)
            if action == "replace":
                return self._replace(kind, key, request)
            return self._delete(kind, key)

        return handle

    @staticmethod
    def _query(request: FakeRequest) -> _Query:
        timeout = _first(request.query, "timeoutSeconds")
        return _Query(
            watch=(_first(request.query, "watch") or "").lower() in ("true", "1"),
            resource_version=_first(request.query, "resourceVersion") or None,
            timeout_seconds=min(float(timeout), MAX_WATCH_SECONDS) if timeout else 30.0,
            label_selector=_first(request.query, "labelSelector") or "",
            field_selector=_first(request.query, "fieldSelector") or "",
        )

    def _selected(
        self, kind: ResourceKind, namespace: str | None, query: _Query
    ) -> Callable[[dict[str, Any] | None], bool]:
        def selected(obj: dict[str, Any] | None) -> bool:
            if obj is None:
                return False
            metadata = obj.get("metadata", {})
            if namespace is not None and metadata.get("namespace") != namespace:
                return False
            return _labels_match(query.label_selector, metadata.get("labels") or {}) and (
                _fields_match(query.field_selector, obj)
            )

        return selected

    def _list(self, kind: ResourceKind, namespace: str | None, query: _Query) -> FakeResponse:
        try:
            selected = self._selected(kind, namespace, query)
            with self._cond:
                items = [
                    copy.deepcopy(o)
                    for (r, _, _), o in sorted(self._objects.items())
                    if r == kind.resource and selected(o)
                ]
                version = self._version
        except ValueError as exc:
            return status_response(400, "BadRequest", str(exc))
        return FakeResponse(
            body={
                "kind": f"{kind.kind}List",
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(version)},
                "items": items,
            }
        )

    def _watch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        query: _Query,
        fault: _Fault | None,
        request_path: str,
    ) -> FakeResponse:
        if fault is not None and fault.watch_mode == "stall":
            return FakeResponse(body=b"", delay=fault.stall_seconds)
        if fault is not None and fault.watch_mode == "expire":
            return self._watch_error(410, "Expired", "too old resource version (injected)")
        try:
            selected = self._selected(kind, namespace, query)
            selected(None)
            _fields_match(query.field_selector, {})
        except ValueError as exc:
            return status_response(400, "BadRequest", str(exc))
        lines: list[str] = []
        with self._cond:
            if query.resource_version in (None, "0"):
                since = self._version
                for (r, _, _), obj in sorted(self._objects.items()):
                    if r == kind.resource and selected(obj):
                        lines.append(json.dumps({"type": "ADDED", "object": obj}))
            else:
                try:
                    since = int(query.resource_version or "0")
                except ValueError:
                    return status_response(400, "BadRequest", "resourceVersion is not a number")
                if since < self._compacted:
                    return self._watch_error(410, "Expired", f"too old resource version: {since}")
            deadline = threading.Event()
            timer = threading.Timer(query.timeout_seconds, self._wake, (deadline,))
            timer.daemon = True
            timer.start()
            try:
                while not lines and not deadline.is_set() and not self._closed:
                    lines = self._events_since(kind, since, selected)
                    if not lines:
                        self._cond.wait(0.5)
            finally:
                timer.cancel()
        if lines and self._take_truncation(request_path):
            return FakeResponse(body=lines[0][: len(lines[0]) // 2].encode())
        return FakeResponse(body="".join(line + "\n" for line in lines).encode())

    def _wake(self, deadline: threading.Event) -> None:
        deadline.set()
        with self._cond:
            self._cond.notify_all()

    def _events_since(
        self, kind: ResourceKind, since: int, selected: Callable[[dict[str, Any] | None], bool]
    ) -> list[str]:
        lines = []
        for event in self._events:
            if event.resource_version <= since or event.resource != kind.resource:
                continue
            was, now = selected(event.old), selected(event.new)
            if event.type == "DELETED":
                kind_of_event = "DELETED" if was else ""
            elif was and now:
                kind_of_event = "MODIFIED"
            elif now:
                kind_of_event = "ADDED"
            elif was:
                kind_of_event = "DELETED"  # left the selector
            else:
                kind_of_event = ""
            if kind_of_event:
                obj = copy.deepcopy(event.new)
                assert obj is not None
                obj["metadata"]["resourceVersion"] = str(event.resource_version)
                lines.append(json.dumps({"type": kind_of_event, "object": obj}))
        return lines

    @staticmethod
    def _watch_error(code: int, reason: str, message: str) -> FakeResponse:
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
        return FakeResponse(body=(json.dumps({"type": "ERROR", "object": status}) + "\n").encode())

    def _read(self, kind: ResourceKind, key: tuple[str, str, str]) -> FakeResponse:
        found = self.get(*key)
        if found is None:
            return self._not_found(kind, key[2])
        return FakeResponse(body=found)

    def _create(self, kind: ResourceKind, namespace: str, request: FakeRequest) -> FakeResponse:
        obj, problem = self._parse_body(kind, request)
        if obj is None:
            return problem or status_response(400, "BadRequest", "bad body")
        metadata = obj["metadata"]
        name = metadata.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            return status_response(422, "Invalid", f"{kind.kind} name is missing or invalid")
        if kind.namespaced:
            if metadata.get("namespace") not in (None, namespace):
                return status_response(400, "BadRequest", "the namespace of the body differs")
            metadata["namespace"] = namespace
        metadata.pop("resourceVersion", None)
        with self._cond:
            if kind.namespaced:
                home = self._objects.get(("namespaces", "", namespace))
                if home is None:
                    return self._not_found(KIND_BY_RESOURCE["namespaces"], namespace)
                if home.get("status", {}).get("phase") == "Terminating":
                    return status_response(
                        403,
                        "Forbidden",
                        f"unable to create new content in namespace {namespace} because it "
                        "is being terminated",
                    )
            key = (kind.resource, namespace if kind.namespaced else "", name)
            if key in self._objects:
                return status_response(
                    409, "AlreadyExists", f'{kind.resource} "{name}" already exists'
                )
            stored = self._store_locked(kind, key, obj)
        return FakeResponse(status=201, body=stored)

    def _replace(
        self, kind: ResourceKind, key: tuple[str, str, str], request: FakeRequest
    ) -> FakeResponse:
        obj, problem = self._parse_body(kind, request)
        if obj is None:
            return problem or status_response(400, "BadRequest", "bad body")
        metadata = obj["metadata"]
        if metadata.get("name") != key[2]:
            return status_response(400, "BadRequest", "the name of the body differs")
        if kind.namespaced:
            metadata["namespace"] = key[1]
        with self._cond:
            current = self._objects.get(key)
            if current is None:
                return self._not_found(kind, key[2])
            wanted = metadata.get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                return status_response(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {kind.resource} "{key[2]}": the object '
                    "has been modified; please apply your changes to the latest version and "
                    "try again",
                )
            if kind.resource == "secrets" and obj.get("type", "Opaque") != current.get(
                "type", "Opaque"
            ):
                return status_response(422, "Invalid", "Secret type is immutable")
            stored = self._store_locked(kind, key, obj)
        return FakeResponse(body=stored)

    def _delete(self, kind: ResourceKind, key: tuple[str, str, str]) -> FakeResponse:
        with self._cond:
            if not self._delete_locked(key):
                return self._not_found(kind, key[2])
        return FakeResponse(
            body={"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}
        )

    @staticmethod
    def _not_found(kind: ResourceKind, name: str) -> FakeResponse:
        return status_response(404, "NotFound", f'{kind.resource} "{name}" not found')

    @staticmethod
    def _parse_body(
        kind: ResourceKind, request: FakeRequest
    ) -> tuple[dict[str, Any] | None, FakeResponse | None]:
        try:
            obj = request.json()
        except ValueError:
            return None, status_response(400, "BadRequest", "body is not JSON")
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            return None, status_response(400, "BadRequest", "body must be an object with metadata")
        if obj.get("kind") not in (None, kind.kind):
            return None, status_response(400, "BadRequest", f"body kind must be {kind.kind}")
        problem = _validate(kind, obj)
        if problem:
            return None, status_response(400, "BadRequest", problem)
        return obj, None


def _validate(kind: ResourceKind, obj: Mapping[str, Any]) -> str:
    """The field checks of the real API server that our clients could get wrong."""
    if kind.resource == "secrets":
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                return f"Secret data[{key}] is not base64"
    if kind.resource == "configmaps":
        for key, value in (obj.get("data") or {}).items():
            if not isinstance(value, str):
                return f"ConfigMap data[{key}] must be a string"
    if kind.resource == "leases":
        spec = obj.get("spec") or {}
        for name in ("acquireTime", "renewTime"):
            value = spec.get(name)
            if value is not None and not _MICRO_TIME.match(str(value)):
                return f'Lease spec.{name}: parsing time "{value}" as MicroTime failed'
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and (not isinstance(duration, int) or duration < 1):
            return "Lease spec.leaseDurationSeconds must be a positive integer"
    return ""
