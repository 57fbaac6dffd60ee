"""``citadel cert revoke`` and ``citadel ca revoke-intermediate`` (see
:mod:`citadel.ca.revocation`). A running ``citadel serve`` lists the revocation in its CRLs
and refuses the certificate for mTLS renewal within seconds (it polls the store)."""

from __future__ import annotations

import click

from citadel.ca.context import open_repository
from citadel.ca.revocation import Revoker
from citadel.ca.revocation_reasons import REASONS
from citadel.cli_output import echo_json, echo_table, format_time
from citadel.cli_params import SPIFFE_ID
from citadel.cli_rotate import open_lifecycle_parts
from citadel.cli_settings import settings_of
from citadel.identity.clock import SystemClock
from citadel.identity.spiffe_id import SpiffeId
from citadel.store.records import IssuedCertificateRecord

__all__ = ["cert_revoke", "revoke_intermediate"]

REASON = click.Choice(list(REASONS), case_sensitive=False)
OUTPUT = click.Choice(["table", "json"])


def _summary(record: IssuedCertificateRecord) -> dict[str, object]:
    return {
        "serial": record.serial_hex,
        "spiffe_id": record.spiffe_id,
        "revoked_at": record.revoked_at,
        "reason": record.revocation_reason,
        "not_after": record.not_after,
    }


@click.command("revoke")
@click.argument("serial", required=False)
@click.option(
    "--spiffe-id", type=SPIFFE_ID, default=None, help="Revoke all its valid certificates."
)
@click.option(
    "--reason", type=REASON, default="unspecified", show_default=True, help="The RFC 5280 reason."
)
@click.option("--output", type=OUTPUT, default="table", show_default=True)
@click.pass_context
def cert_revoke(
    ctx: click.Context, serial: str | None, spiffe_id: SpiffeId | None, reason: str, output: str
) -> None:
    """Revoke a workload certificate by SERIAL (hex), or every valid one of --spiffe-id."""
    if (serial is None) == (spiffe_id is None):
        raise click.UsageError("give exactly one of SERIAL or --spiffe-id")
    config = settings_of(ctx).ca_config()
    repository = open_repository(config)
    try:
        revoker = Revoker(repository=repository, clock=SystemClock())
        if serial is not None:
            records = [revoker.revoke_serial(serial, reason)]
        else:
            assert spiffe_id is not None
            records = revoker.revoke_spiffe_id(spiffe_id, reason)
    finally:
        repository.close()
    if output == "json":
        echo_json([_summary(r) for r in records])
        return
    echo_table(
        ["SERIAL", "SPIFFE_ID", "REVOKED_AT", "REASON"],
        [
            [r.serial_hex, r.spiffe_id, format_time(r.revoked_at), r.revocation_reason]
            for r in records
        ],
    )
    click.echo(
        f"Revoked {len(records)} certificate(s); running servers publish the new CRLs and refuse "
        "renewal with them within seconds."
    )


@click.command("revoke-intermediate")
@click.argument("serial_or_id")
@click.option("--reason", type=REASON, required=True, help="The RFC 5280 reason.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def revoke_intermediate(ctx: click.Context, serial_or_id: str, reason: str, yes: bool) -> None:
    """Revoke a signing intermediate (by serial or authority id).

    If it is the one signing, a new intermediate under the current root takes over first.
    Every certificate it signed stops being trusted by peers that check CRLs and by the CA's
    own mTLS renewal; those workloads renew with their platform credential.
    """
    if not yes:
        click.confirm(
            f"Revoke intermediate {serial_or_id}? Every certificate it signed stops being trusted",
            abort=True,
        )
    with open_lifecycle_parts(ctx) as parts:
        revoker = Revoker(repository=parts.repository, clock=parts.clock, rotation=parts.rotation())
        result = revoker.revoke_intermediate(serial_or_id, reason)
    click.echo(f"Revoked intermediate {result.revoked.id} (serial {result.revoked.serial_hex})")
    if result.replacement is not None:
        click.echo(result.replacement.message[:1].upper() + result.replacement.message[1:])
