"""``citadel token``: one-time join tokens for workloads that bootstrap without an agent."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from citadel.ca.context import open_repository
from citadel.cli_params import POSITIVE_DURATION, SPIFFE_ID
from citadel.cli_settings import settings_of
from citadel.identity.clock import SystemClock
from citadel.identity.spiffe_id import SpiffeId
from citadel.server.join_tokens import MAX_JOIN_TOKEN_TTL, create_join_token

__all__ = ["token"]


@click.group("token")
def token() -> None:
    """One-time join tokens (stored hashed; each works for one CSR)."""


@token.command("create")
@click.option(
    "--spiffe-id",
    "spiffe_id",
    type=SPIFFE_ID,
    required=True,
    help="The identity the token's holder may obtain.",
)
@click.option(
    "--ttl",
    type=POSITIVE_DURATION,
    default="1h",
    show_default=True,
    help=f"How long the token stays usable (at most {MAX_JOIN_TOKEN_TTL.days}d).",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def token_create(ctx: click.Context, spiffe_id: SpiffeId, ttl: timedelta, output: str) -> None:
    """Create a join token and print it (only now: it is stored hashed).

    The holder presents it as 'authorization: Bearer jt.<token>' or in the
    'citadel-join-token' metadata key, e.g. 'citadel csr request --join-token <token>'.
    """
    config = settings_of(ctx).ca_config()
    if spiffe_id.trust_domain != config.trust_domain:
        raise click.BadParameter(
            f"{spiffe_id} is not in trust domain {config.trust_domain}", param_hint="--spiffe-id"
        )
    if spiffe_id.is_trust_domain_id:
        raise click.BadParameter("the SPIFFE ID needs a path", param_hint="--spiffe-id")
    if ttl > MAX_JOIN_TOKEN_TTL:
        raise click.BadParameter(f"at most {MAX_JOIN_TOKEN_TTL.days}d", param_hint="--ttl")
    repository = open_repository(config)
    try:
        created = create_join_token(repository, spiffe_id=spiffe_id, ttl=ttl, clock=SystemClock())
    finally:
        repository.close()
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "token": created.token,
                    "spiffe_id": str(created.spiffe_id),
                    "expires_at": created.expires_at.isoformat(),
                    "token_sha256": created.token_hash,
                }
            )
        )
        return
    click.echo(created.token)
    click.echo(
        f"join token for {created.spiffe_id}, usable once until "
        f"{created.expires_at.isoformat()} (sha256 {created.token_hash[:12]}…)",
        err=True,
    )
