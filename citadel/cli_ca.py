"""Operator commands about the CA itself: ``init``, ``db upgrade``, ``ca show``,
``bundle show`` and ``audit verify``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from citadel.ca.bootstrap import RootImport, bundle_roots
from citadel.ca.context import init_ca, open_repository
from citadel.ca.errors import CaNotInitialisedError, RootImportError
from citadel.ca.jwt_keys import JWT_KIND, published_jwt_authorities
from citadel.ca.passphrase import read_passphrase_file
from citadel.cli_output import echo_json, echo_table, format_remaining, format_time
from citadel.cli_params import POSITIVE_DURATION
from citadel.cli_settings import settings_of
from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import SystemClock
from citadel.identity.keys import KeyType
from citadel.identity.pem import MAX_PEM_BYTES

__all__ = ["audit", "bundle", "ca", "db", "init"]

KEY_TYPES = click.Choice([k.value for k in KeyType])
OUTPUT = click.Choice(["table", "json"])


def _read_input_file(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise RootImportError(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc
    if len(data) > MAX_PEM_BYTES:
        raise RootImportError(f"{what} {path} is too large")
    return data


@click.command()
@click.option(
    "--key-type", type=KEY_TYPES, default=KeyType.EC_P256.value, show_default=True,
    help="Key algorithm of the generated root and intermediate.",
)
@click.option("--root-ttl", type=POSITIVE_DURATION, default="3650d", show_default=True)
@click.option("--intermediate-ttl", type=POSITIVE_DURATION, default="365d", show_default=True)
@click.option(
    "--root-cert", type=click.Path(path_type=Path, dir_okay=False),
    help="Import this existing root certificate (PEM) instead of creating one.",
)
@click.option(
    "--root-key", type=click.Path(path_type=Path, dir_okay=False),
    help="The private key (PEM) of --root-cert.",
)
@click.option(
    "--root-key-passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
    help="A file whose first line decrypts --root-key.",
)
@click.pass_context
def init(
    ctx: click.Context,
    key_type: str,
    root_ttl: timedelta,
    intermediate_ttl: timedelta,
    root_cert: Path | None,
    root_key: Path | None,
    root_key_passphrase_file: Path | None,
) -> None:
    """Create the CA: a root (or import yours) and the signing intermediate."""
    settings = settings_of(ctx)
    if (root_cert is None) != (root_key is None):
        raise click.UsageError("--root-cert and --root-key must be given together")
    if root_key_passphrase_file is not None and root_key is None:
        raise click.UsageError("--root-key-passphrase-file needs --root-key")
    root_import = None
    if root_cert is not None and root_key is not None:
        root_import = RootImport(
            certificate_pem=_read_input_file(root_cert, "root certificate"),
            key_pem=_read_input_file(root_key, "root key"),
            key_passphrase=(
                read_passphrase_file(root_key_passphrase_file)
                if root_key_passphrase_file is not None
                else None
            ),
        )
    config = settings.ca_config(
        key_type=KeyType(key_type), root_ttl=root_ttl, intermediate_ttl=intermediate_ttl
    )
    with init_ca(config, root_import=root_import) as context:
        authorities = context.authorities
        click.echo(
            f"Initialised the CA for trust domain {config.trust_domain} in {config.data_dir}"
        )
        for label, authority in (("root", authorities.root), ("intermediate", authorities.signer)):
            click.echo(
                f"  {label:<12} serial {authority.serial_hex}  sha256 {authority.fingerprint}  "
                f"expires {format_time(authority.not_after)}"
            )


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create the database or migrate it to the latest schema."""
    config = settings_of(ctx).ca_config()
    repository = open_repository(config, create=True)
    try:
        repository.upgrade()
    finally:
        repository.close()
    click.echo(f"Database {_redacted(config.database_url)} is at the latest schema")


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


@click.group()
def ca() -> None:
    """Inspect the CA's authorities."""


@ca.command("show")
@click.option("--output", "output", type=OUTPUT, default="table", show_default=True)
@click.pass_context
def ca_show(ctx: click.Context, output: str) -> None:
    """The root and intermediate certificates: state, serial, fingerprint, expiry."""
    config = settings_of(ctx).ca_config()
    now = SystemClock().now()
    repository = open_repository(config)
    try:
        records = [r for r in repository.list_authorities() if r.kind in ("root", "intermediate")]
    finally:
        repository.close()
    if not records:
        raise CaNotInitialisedError("the CA is not initialised; run 'citadel init' first")
    records.sort(key=lambda r: (r.kind != "root", r.created_at))
    if output == "json":
        echo_json(
            [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "state": r.state,
                    "parent_id": r.parent_id,
                    "serial": r.serial_hex,
                    "sha256": r.fingerprint_sha256,
                    "not_before": r.not_before,
                    "not_after": r.not_after,
                }
                for r in records
            ]
        )
        return
    click.echo(f"Trust domain: {config.trust_domain}")
    echo_table(
        ["KIND", "STATE", "ID", "PARENT", "SERIAL", "SHA256", "NOT_AFTER", "EXPIRES_IN"],
        [
            [
                r.kind,
                r.state,
                r.id,
                r.parent_id or "-",
                r.serial_hex,
                r.fingerprint_sha256,
                format_time(r.not_after),
                format_remaining(r.not_after, now),
            ]
            for r in records
        ],
    )


@click.group()
def bundle() -> None:
    """The trust bundle workloads should trust."""


@bundle.command("show")
@click.option(
    "--format", "fmt", type=click.Choice(["pem", "spiffe"]), default="pem", show_default=True,
    help="Concatenated PEM roots, or the SPIFFE bundle (JWKS) document.",
)
@click.pass_context
def bundle_show(ctx: click.Context, fmt: str) -> None:
    """Print the trust bundle (active and prepared roots)."""
    config = settings_of(ctx).ca_config()
    repository = open_repository(config)
    try:
        roots = bundle_roots(repository)
        jwt_keys = published_jwt_authorities(
            repository.list_authorities(kind=JWT_KIND), SystemClock().now()
        )
    finally:
        repository.close()
    if not roots:
        raise CaNotInitialisedError("the CA is not initialised; run 'citadel init' first")
    trust_bundle = TrustBundle(config.trust_domain, roots, jwt_keys)
    if fmt == "pem":
        click.echo(trust_bundle.to_pem(), nl=False)
    else:
        click.echo(trust_bundle.to_spiffe_json())


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Check the audit hash chain; exit 1 at the first tampered event."""
    repository = open_repository(settings_of(ctx).ca_config())
    try:
        result = repository.verify_audit_chain()
    finally:
        repository.close()
    if result.ok:
        click.echo(f"Audit chain OK: {result.checked} events verified")
        return
    where = f"at seq {result.first_bad_seq}" if result.first_bad_seq is not None else ""
    click.echo(
        f"Error: audit chain is broken {where}: {result.problem} "
        f"({result.checked} events verified before it)".replace("  ", " "),
        err=True,
    )
    ctx.exit(1)

