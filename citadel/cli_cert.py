"""Operator commands for workload certificates: ``cert mint``, ``cert list``, ``cert show``."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import click

from citadel.ca.context import open_ca, open_repository
from citadel.ca.issuer import SignParams
from citadel.ca.private_files import ensure_private_dir, write_private_file
from citadel.cli_output import echo_json, echo_pairs, echo_table, format_remaining, format_time
from citadel.cli_params import POSITIVE_DURATION, SERIAL, SPIFFE_ID
from citadel.cli_settings import settings_of
from citadel.identity.clock import SystemClock
from citadel.identity.csr import build_csr, csr_to_pem, parse_csr, validate_workload_csr
from citadel.identity.keys import KeyType, generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.pem import load_certificates_pem
from citadel.identity.spiffe_id import SpiffeId
from citadel.store.errors import NotFoundError
from citadel.store.records import IssuedCertificateRecord

__all__ = ["cert"]

KEY_FILE = "key.pem"
CHAIN_FILE = "cert-chain.pem"
ROOT_FILE = "root-cert.pem"
PUBLIC_FILE_MODE = 0o644
MAX_LIST_LIMIT = 10_000


@click.group()
def cert() -> None:
    """Workload certificates (X509-SVIDs)."""


@cert.command("mint")
@click.option("--spiffe-id", required=True, type=SPIFFE_ID, help="The workload's SPIFFE ID.")
@click.option(
    "--ttl", type=POSITIVE_DURATION, default=None, help="Lifetime, e.g. 24h (the CA default)."
)
@click.option(
    "--key-type", type=click.Choice([k.value for k in KeyType]),
    default=KeyType.EC_P256.value, show_default=True,
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
    help="Directory for key.pem (0600), cert-chain.pem and root-cert.pem.",
)
@click.pass_context
def cert_mint(
    ctx: click.Context,
    spiffe_id: SpiffeId,
    ttl: timedelta | None,
    key_type: str,
    out_dir: Path,
) -> None:
    """Generate a key here and have the CA sign it, like a workload would (audited)."""
    config = settings_of(ctx).ca_config()
    if spiffe_id.trust_domain != config.trust_domain:
        raise click.BadParameter(
            f"{spiffe_id} is not in trust domain {config.trust_domain}",
            param_hint="'--spiffe-id'",
        )
    if spiffe_id.is_trust_domain_id:
        raise click.BadParameter("a workload SPIFFE ID needs a path", param_hint="'--spiffe-id'")
    paths = [out_dir / name for name in (KEY_FILE, CHAIN_FILE, ROOT_FILE)]
    existing = [p.name for p in paths if p.exists()]
    if existing:
        raise click.ClickException(
            f"refusing to overwrite {', '.join(existing)} in {out_dir}; choose an empty --out"
        )
    with open_ca(config) as context:
        private_key = generate_private_key(KeyType(key_type))
        csr = validate_workload_csr(parse_csr(csr_to_pem(build_csr(private_key, spiffe_id))))
        chain = context.issuer.issue(
            csr.public_key,
            SignParams(
                spiffe_id=csr.spiffe_id,
                ttl=ttl,
                requester=f"cli:uid={os.getuid()}",
                metadata={"source": "citadel cert mint"},
            ),
        )
    if not out_dir.exists():
        ensure_private_dir(out_dir)
    write_private_file(paths[0], private_key_to_pkcs8_pem(private_key))
    write_private_file(paths[1], chain.chain_pem().encode("ascii"), mode=PUBLIC_FILE_MODE)
    write_private_file(paths[2], chain.cert_chain_pem()[-1].encode("ascii"), mode=PUBLIC_FILE_MODE)
    click.echo(
        f"Issued serial {chain.serial_hex} for {chain.spiffe_id}, "
        f"expires {format_time(chain.not_after)}; wrote {KEY_FILE}, {CHAIN_FILE}, {ROOT_FILE} "
        f"to {out_dir}"
    )


def _status(record: IssuedCertificateRecord) -> str:
    return "revoked" if record.is_revoked else "valid"


def _summary(record: IssuedCertificateRecord) -> dict[str, object]:
    return {
        "serial": record.serial_hex,
        "spiffe_id": record.spiffe_id,
        "not_before": record.not_before,
        "not_after": record.not_after,
        "issued_at": record.issued_at,
        "requester": record.requester,
        "sha256": record.fingerprint_sha256,
        "issuer_sha256": record.issuer_fingerprint,
        "metadata": dict(record.metadata),
        "revoked_at": record.revoked_at,
        "revocation_reason": record.revocation_reason,
    }


@cert.command("list")
@click.option("--spiffe-id-prefix", default=None, help="Only IDs starting with this text.")
@click.option(
    "--expiring-within", type=POSITIVE_DURATION, default=None,
    help="Only certificates whose NotAfter is within this duration (expired ones included).",
)
@click.option("--revoked/--not-revoked", default=None, help="Only revoked / unrevoked ones.")
@click.option("--limit", type=click.IntRange(1, MAX_LIST_LIMIT), default=1000, show_default=True)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def cert_list(
    ctx: click.Context,
    spiffe_id_prefix: str | None,
    expiring_within: timedelta | None,
    revoked: bool | None,
    limit: int,
    output: str,
) -> None:
    """List issued certificates, soonest expiry first."""
    now = SystemClock().now()
    repository = open_repository(settings_of(ctx).ca_config())
    try:
        records = repository.list_certificates(
            spiffe_id_prefix=spiffe_id_prefix or None,
            expiring_before=now + expiring_within if expiring_within is not None else None,
            revoked=revoked,
            limit=limit,
        )
    finally:
        repository.close()
    if output == "json":
        echo_json([_summary(r) for r in records])
        return
    echo_table(
        ["SERIAL", "SPIFFE_ID", "NOT_AFTER", "EXPIRES_IN", "STATUS"],
        [
            [
                r.serial_hex,
                r.spiffe_id,
                format_time(r.not_after),
                format_remaining(r.not_after, now),
                _status(r),
            ]
            for r in records
        ],
    )


@cert.command("show")
@click.argument("serial", type=SERIAL)
@click.option(
    "--output", type=click.Choice(["table", "json", "pem"]), default="table", show_default=True
)
@click.pass_context
def cert_show(ctx: click.Context, serial: str, output: str) -> None:
    """Show one issued certificate by its serial (hex)."""
    repository = open_repository(settings_of(ctx).ca_config())
    try:
        record = repository.get_certificate(serial)
    except NotFoundError as exc:
        raise click.ClickException(f"no certificate with serial {serial}") from exc
    finally:
        repository.close()
    if output == "pem":
        click.echo(record.certificate_pem, nl=False)
        return
    if output == "json":
        echo_json(_summary(record))
        return
    leaf = load_certificates_pem(record.certificate_pem, what="stored certificate")[0]
    echo_pairs(
        [
            ("Serial", record.serial_hex),
            ("SPIFFE ID", record.spiffe_id),
            ("Status", _status(record)),
            ("Not before", format_time(record.not_before)),
            ("Not after", format_time(record.not_after)),
            ("Issued at", format_time(record.issued_at)),
            ("Requester", record.requester),
            ("SHA-256", record.fingerprint_sha256),
            ("Issuer SHA-256", record.issuer_fingerprint),
            ("Issuer", leaf.issuer.rfc4514_string()),
            ("Metadata", ", ".join(f"{k}={v}" for k, v in sorted(record.metadata.items())) or "-"),
            ("Revoked at", format_time(record.revoked_at)),
            ("Revocation reason", record.revocation_reason or "-"),
        ]
    )
