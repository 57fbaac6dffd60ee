"""``citadel ca intermediate-csr`` and ``citadel ca import``: an intermediate signed by an
upstream CA (see :mod:`citadel.ca.upstream`)."""

from __future__ import annotations

from pathlib import Path

import click

from citadel.ca.authority_errors import UpstreamImportError
from citadel.ca.private_files import write_private_file
from citadel.ca.upstream import create_intermediate_csr, import_intermediate
from citadel.cli_rotate import open_lifecycle_parts
from citadel.identity.pem import MAX_PEM_BYTES

__all__ = ["ca_import", "intermediate_csr"]

PUBLIC_FILE_MODE = 0o644


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise UpstreamImportError(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc
    if len(data) > MAX_PEM_BYTES:
        raise UpstreamImportError(f"{what} {path} is too large")
    return data


@click.command("intermediate-csr")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the CSR (PEM); an existing file is not overwritten.",
)
@click.pass_context
def intermediate_csr(ctx: click.Context, out: Path) -> None:
    """Export a CSR for a new intermediate to be signed by an upstream CA.

    Its key stays in the key manager, pending, until 'citadel ca import' installs the
    signed certificate.
    """
    if out.exists():
        raise click.ClickException(f"refusing to overwrite {out}")
    with open_lifecycle_parts(ctx) as parts:
        pending = create_intermediate_csr(
            repository=parts.repository,
            key_manager=parts.key_manager,
            clock=parts.clock,
            config=parts.config,
        )
    write_private_file(out, pending.csr_pem, mode=PUBLIC_FILE_MODE)
    click.echo(f"Wrote the CSR to {out}; its key is pending as {pending.key_id}")


@click.command("import")
@click.option(
    "--cert",
    "cert",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The signed intermediate (PEM).",
)
@click.option(
    "--chain",
    "chain",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The chain above it (PEM); a self-signed root here joins the trust bundle.",
)
@click.pass_context
def ca_import(ctx: click.Context, cert: Path, chain: Path) -> None:
    """Install an upstream-signed intermediate as the next intermediate."""
    cert_pem = _read(cert, "certificate file")
    chain_pem = _read(chain, "chain file")
    with open_lifecycle_parts(ctx) as parts:
        result = import_intermediate(
            cert_pem,
            chain_pem,
            repository=parts.repository,
            key_manager=parts.key_manager,
            clock=parts.clock,
            config=parts.config,
        )
    click.echo(result.message[:1].upper() + result.message[1:])
