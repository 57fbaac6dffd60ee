"""A third-party Workload API client (py-spiffe) run as its own process.

py-spiffe registers its own copy of the Workload API messages (same names, no package) in
protobuf's default pool, so it can never share a process with Citadel's generated code.
Tests run this script with ``SPIFFE_ENDPOINT_SOCKET`` set and read one JSON object per
line from its stdout.

    python pyspiffe_client.py MODE [--uid N --gid N --groups G,...] [--audience A]

Modes:
    fetch-all   X509-SVID, X.509 bundles, JWT bundles, a JWT-SVID for --audience, and the
                result of validating that token through the server's ValidateJWTSVID.
    fetch-x509  only the X509-SVID (or the error).
    watch       an X509Source: prints the first serial, then each new serial it sees.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any


def _drop_privileges(args: argparse.Namespace) -> None:
    if args.uid is None:
        return
    os.setgroups([int(g) for g in args.groups.split(",") if g])
    os.setgid(args.gid)
    os.setuid(args.uid)


def _emit(value: dict[str, Any]) -> None:
    print(json.dumps(value, sort_keys=True), flush=True)


def _error(exc: BaseException) -> dict[str, Any]:
    import grpc

    code = None
    cause: BaseException | None = exc
    while cause is not None and code is None:
        if isinstance(cause, grpc.Call):
            code = cause.code().name
        cause = cause.__cause__
    text = str(exc)
    if code is None:
        code = next((c.name for c in grpc.StatusCode if c.name in text), None)
    return {"error": type(exc).__name__, "code": code, "detail": text[:300]}


def _svid(svid: Any) -> dict[str, Any]:
    return {
        "spiffe_id": str(svid.spiffe_id),
        "serial": format(svid.leaf.serial_number, "x"),
        "chain_length": len(svid.cert_chain),
    }


def fetch_all(audience: str) -> dict[str, Any]:
    from spiffe import WorkloadApiClient

    with WorkloadApiClient(default_timeout=10) as client:
        svid = client.fetch_x509_svid()
        x509_bundles = client.fetch_x509_bundles()
        jwt_bundles = client.fetch_jwt_bundles()
        jwt_svid = client.fetch_jwt_svid(audience={audience})
        validated = client.validate_jwt_svid(jwt_svid.token, audience)
        own = x509_bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        return {
            "x509": _svid(svid),
            "x509_bundle_domains": sorted(str(b.trust_domain) for b in x509_bundles.bundles),
            "own_bundle_roots": len(own.x509_authorities) if own is not None else 0,
            "jwt_bundle_domains": sorted(str(b.trust_domain) for b in jwt_bundles.bundles),
            "jwt": {
                "spiffe_id": str(jwt_svid.spiffe_id),
                "audience": sorted(jwt_svid.audience),
            },
            "validated": {
                "spiffe_id": str(validated.spiffe_id),
                "audience": sorted(validated.audience),
            },
        }


def fetch_x509() -> dict[str, Any]:
    from spiffe import WorkloadApiClient

    with WorkloadApiClient(default_timeout=10) as client:
        return _svid(client.fetch_x509_svid())


def watch(timeout: float) -> int:
    from spiffe import X509Source

    changed = threading.Event()
    with X509Source(timeout_in_seconds=timeout) as source:
        seen = source.svid.leaf.serial_number
        _emit({"serial": format(seen, "x")})
        source.subscribe_for_updates(changed.set)
        while changed.wait(timeout):
            changed.clear()
            current = source.svid.leaf.serial_number
            if current != seen:
                seen = current
                _emit({"serial": format(seen, "x")})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["fetch-all", "fetch-x509", "watch"])
    parser.add_argument("--uid", type=int)
    parser.add_argument("--gid", type=int)
    parser.add_argument("--groups", default="")
    parser.add_argument("--audience", default="billing")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    import spiffe  # noqa: F401  (imported as root, before the privileges are dropped)

    _drop_privileges(args)
    try:
        if args.mode == "watch":
            return watch(args.timeout)
        _emit(fetch_all(args.audience) if args.mode == "fetch-all" else fetch_x509())
    except Exception as exc:
        _emit(_error(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
