"""``citadel csr request``: get an SVID from a running CA without the node agent."""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

import click

from citadel.cli_params import DURATION, POSITIVE_DURATION, SPIFFE_ID
from citadel.client.credentials import (
    BearerTokenFile,
    ClientCertificate,
    Credentials,
    JoinToken,
)
from citadel.client.csr_client import CsrClient
from citadel.client.errors import CredentialsError
from citadel.identity.keys import KeyType, generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.spiffe_id import SpiffeId

__all__ = ["csr"]

KEY_FILE = "key.pem"
CHAIN_FILE = "cert-chain.pem"
ROOT_FILE = "root-cert.pem"
_MAX_ROOT_BYTES = 1024 * 1024


def _write(directory: Path, name: str, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _credentials(
    token_file: Path | None, join_token: str | None, cert: Path | None, key: Path | None
) -> Credentials:
    chosen = sum(x is not None for x in (token_file, join_token, cert or key))
    if chosen != 1:
        raise click.UsageError(
            "give exactly one credential: --token-file, --join-token, or --cert with --key"
        )
    if token_file is not None:
        return BearerTokenFile(token_file)
    if join_token is not None:
        return JoinToken(join_token)
    if cert is None or key is None:
        raise click.UsageError("--cert and --key go together")
    return ClientCertificate.from_files(cert, key)


@click.group("csr")
def csr() -> None:
    """Certificates from a running CA, for workloads that bootstrap without the agent."""


@csr.command("request")
@click.option(
    "--server",
    required=True,
    metavar="HOST:PORT",
    help="The CSR API (its mTLS port when using --cert/--key).",
)
@click.option(
    "--ca-cert",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The CA root bundle to trust (citadel bundle show).",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A Kubernetes service-account or OIDC token file.",
)
@click.option(
    "--join-token",
    envvar="CITADEL_JOIN_TOKEN",
    default=None,
    help="A one-time join token (or $CITADEL_JOIN_TOKEN).",
)
@click.option(
    "--cert",
    type=click.Path(path_type=Path, dir_okay=False),
    help="An existing SVID chain (renewal over mTLS).",
)
@click.option(
    "--key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The existing SVID's private key.",
)
@click.option("--spiffe-id", "spiffe_id", type=SPIFFE_ID, required=True)
@click.option(
    "--ttl", type=DURATION, default=None, help="Requested lifetime (CA default if unset)."
)
@click.option(
    "--key-type",
    type=click.Choice([k.value for k in KeyType]),
    default="ec-p256",
    show_default=True,
)
@click.option(
    "--server-name",
    default=None,
    help="Name to verify in the CA's certificate (default: the host of --server).",
)
@click.option("--timeout", type=POSITIVE_DURATION, default="10s", show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help=f"Directory for {KEY_FILE} (0600), {CHAIN_FILE} and {ROOT_FILE}.",
)
def csr_request(
    server: str,
    ca_cert: Path,
    token_file: Path | None,
    join_token: str | None,
    cert: Path | None,
    key: Path | None,
    spiffe_id: SpiffeId,
    ttl: timedelta | None,
    key_type: str,
    server_name: str | None,
    timeout: timedelta,
    out_dir: Path,
) -> None:
    """Generate a key, ask the CA for an SVID, verify it and write the files."""
    credentials = _credentials(token_file, join_token, cert, key)
    try:
        roots = ca_cert.read_bytes()[: _MAX_ROOT_BYTES + 1]
    except OSError as exc:
        raise CredentialsError(f"cannot read {ca_cert}: {exc.strerror}") from exc
    private_key = generate_private_key(KeyType(key_type))
    with CsrClient(server, roots, credentials, server_name=server_name, timeout=timeout) as client:
        svid = client.request(spiffe_id, private_key, ttl)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(out_dir, KEY_FILE, private_key_to_pkcs8_pem(private_key), 0o600)
    _write(out_dir, CHAIN_FILE, svid.chain_pem, 0o644)
    _write(out_dir, ROOT_FILE, svid.roots_pem, 0o644)
    click.echo(
        f"issued {svid.spiffe_id} serial {svid.serial_hex}, valid until "
        f"{svid.not_after.isoformat()}; wrote {out_dir}/{{{KEY_FILE},{CHAIN_FILE},{ROOT_FILE}}}"
    )
