"""Operator commands for registration entries: ``entry create/list/show/update/delete``.

An entry maps selectors (``unix:uid:1000``, ``k8s:ns:shop``...) under a parent (the node
agent's SPIFFE ID, or another entry's) to a SPIFFE ID. Every change gets a new store
revision, which node agents sync from; a deleted entry leaves a tombstone. Bad selectors,
SPIFFE IDs outside the CA's trust domain and duplicate entries are refused with a one-line
error and a non-zero exit status.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from citadel.ca.context import open_repository
from citadel.cli_output import echo_json, echo_pairs, echo_table
from citadel.cli_params import POSITIVE_DURATION, SPIFFE_ID
from citadel.cli_settings import CliSettings, settings_of
from citadel.identity.clock import SystemClock
from citadel.identity.registration import RegistrationEntry
from citadel.identity.registration_errors import InvalidSelectorError
from citadel.identity.selectors import Selector
from citadel.identity.spiffe_id import SpiffeId

__all__ = ["entry"]

OUTPUT = click.Choice(["table", "json"])

if TYPE_CHECKING:  # click >= 8.2 makes ParamType generic; older releases do not
    _SelectorBase = click.ParamType[Selector, object]
else:
    _SelectorBase = click.ParamType


class SelectorType(_SelectorBase):
    name = "selector"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Selector:
        if isinstance(value, Selector):
            return value
        try:
            return Selector.parse(str(value))
        except InvalidSelectorError as exc:
            self.fail(exc.message, param, ctx)


SELECTOR = SelectorType()


def _in_trust_domain(settings: CliSettings, value: SpiffeId, option: str) -> SpiffeId:
    if value.trust_domain != settings.trust_domain:
        raise click.BadParameter(
            f"{value} is not in trust domain {settings.trust_domain}", param_hint=f"'{option}'"
        )
    return value


def _checked_ttl(settings: CliSettings, ttl: timedelta | None) -> timedelta | None:
    maximum = settings.ca_config().max_ttl
    if ttl is not None and ttl > maximum:
        raise click.BadParameter(
            f"{int(ttl.total_seconds())}s is longer than the CA's maximum workload TTL "
            f"({int(maximum.total_seconds())}s)",
            param_hint="'--ttl'",
        )
    return ttl


def _as_dict(entry: RegistrationEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "spiffe_id": str(entry.spiffe_id),
        "parent_id": str(entry.parent_id),
        "selectors": sorted(str(s) for s in entry.selectors),
        "ttl_seconds": int(entry.ttl.total_seconds()) if entry.ttl is not None else None,
        "dns_names": list(entry.dns_names),
        "hint": entry.hint,
        "revision": entry.revision,
    }


def _show(entry: RegistrationEntry, output: str) -> None:
    if output == "json":
        echo_json(_as_dict(entry))
        return
    echo_pairs(
        [
            ("Entry ID", entry.entry_id),
            ("SPIFFE ID", entry.spiffe_id),
            ("Parent ID", entry.parent_id),
            ("Selectors", ", ".join(sorted(str(s) for s in entry.selectors))),
            ("TTL", f"{int(entry.ttl.total_seconds())}s" if entry.ttl is not None else "default"),
            ("DNS names", ", ".join(entry.dns_names) or "-"),
            ("Hint", entry.hint or "-"),
            ("Revision", entry.revision),
        ]
    )


@click.group()
def entry() -> None:
    """Registration entries: which workloads get which SPIFFE ID."""


@entry.command("create")
@click.option("--parent", "parent_id", required=True, type=SPIFFE_ID, help="The agent's ID.")
@click.option("--spiffe-id", required=True, type=SPIFFE_ID, help="The ID workloads get.")
@click.option(
    "--selector", "selectors", required=True, multiple=True, type=SELECTOR,
    help="type:kind:value, e.g. unix:uid:1000 (repeat; a workload needs all of them).",
)  # fmt: skip
@click.option("--ttl", type=POSITIVE_DURATION, default=None, help="X509-SVID lifetime, e.g. 1h.")
@click.option("--dns-name", "dns_names", multiple=True, help="DNS SAN of the SVIDs (repeat).")
@click.option("--hint", default="", help="A hint for workloads holding several identities.")
@click.option("--entry-id", default=None, help="The entry's id [default: a random UUID].")
@click.option("--output", type=OUTPUT, default="table", show_default=True)
@click.pass_context
def entry_create(
    ctx: click.Context,
    parent_id: SpiffeId,
    spiffe_id: SpiffeId,
    selectors: Sequence[Selector],
    ttl: timedelta | None,
    dns_names: Sequence[str],
    hint: str,
    entry_id: str | None,
    output: str,
) -> None:
    """Register a workload: SELECTORS under PARENT get SPIFFE-ID."""
    settings = settings_of(ctx)
    new = RegistrationEntry(
        entry_id=entry_id if entry_id is not None else str(uuid.uuid4()),
        spiffe_id=_in_trust_domain(settings, spiffe_id, "--spiffe-id"),
        parent_id=_in_trust_domain(settings, parent_id, "--parent"),
        selectors=frozenset(selectors),
        ttl=_checked_ttl(settings, ttl),
        dns_names=tuple(dns_names),
        hint=hint,
    )
    repository = open_repository(settings.ca_config())
    try:
        stored = repository.create_entry(new, SystemClock().now())
    finally:
        repository.close()
    if output == "table":
        click.echo(f"Created entry {stored.entry_id} (revision {stored.revision})")
    _show(stored, output)


@entry.command("list")
@click.option("--parent", "parent_id", type=SPIFFE_ID, default=None, help="Only its children.")
@click.option("--output", type=OUTPUT, default="table", show_default=True)
@click.pass_context
def entry_list(ctx: click.Context, parent_id: SpiffeId | None, output: str) -> None:
    """List the live entries, oldest first."""
    repository = open_repository(settings_of(ctx).ca_config())
    try:
        entries = repository.list_entries(parent=str(parent_id) if parent_id is not None else None)
    finally:
        repository.close()
    if output == "json":
        echo_json([_as_dict(e) for e in entries])
        return
    echo_table(
        ["ENTRY_ID", "SPIFFE_ID", "PARENT_ID", "SELECTORS", "TTL", "REVISION"],
        [
            [
                e.entry_id,
                e.spiffe_id,
                e.parent_id,
                ",".join(sorted(str(s) for s in e.selectors)),
                f"{int(e.ttl.total_seconds())}s" if e.ttl is not None else "default",
                e.revision,
            ]
            for e in entries
        ],
    )


@entry.command("show")
@click.argument("entry_id")
@click.option("--output", type=OUTPUT, default="table", show_default=True)
@click.pass_context
def entry_show(ctx: click.Context, entry_id: str, output: str) -> None:
    """Show one entry."""
    repository = open_repository(settings_of(ctx).ca_config())
    try:
        found = repository.get_entry(entry_id)
    finally:
        repository.close()
    _show(found, output)


@entry.command("update")
@click.argument("entry_id")
@click.option("--parent", "parent_id", type=SPIFFE_ID, default=None)
@click.option("--spiffe-id", type=SPIFFE_ID, default=None)
@click.option(
    "--selector", "selectors", multiple=True, type=SELECTOR,
    help="Replaces every selector (repeat).",
)  # fmt: skip
@click.option("--ttl", type=POSITIVE_DURATION, default=None)
@click.option("--default-ttl", is_flag=True, help="Go back to the CA's default lifetime.")
@click.option("--dns-name", "dns_names", multiple=True, help="Replaces the DNS names (repeat).")
@click.option("--no-dns-names", is_flag=True, help="Remove every DNS name.")
@click.option("--hint", default=None)
@click.option("--output", type=OUTPUT, default="table", show_default=True)
@click.pass_context
def entry_update(
    ctx: click.Context,
    entry_id: str,
    parent_id: SpiffeId | None,
    spiffe_id: SpiffeId | None,
    selectors: Sequence[Selector],
    ttl: timedelta | None,
    default_ttl: bool,
    dns_names: Sequence[str],
    no_dns_names: bool,
    hint: str | None,
    output: str,
) -> None:
    """Change an entry; options not given keep their value."""
    if ttl is not None and default_ttl:
        raise click.UsageError("--ttl and --default-ttl exclude each other")
    if dns_names and no_dns_names:
        raise click.UsageError("--dns-name and --no-dns-names exclude each other")
    settings = settings_of(ctx)
    changes: dict[str, Any] = {}
    if parent_id is not None:
        changes["parent_id"] = _in_trust_domain(settings, parent_id, "--parent")
    if spiffe_id is not None:
        changes["spiffe_id"] = _in_trust_domain(settings, spiffe_id, "--spiffe-id")
    if selectors:
        changes["selectors"] = frozenset(selectors)
    if ttl is not None or default_ttl:
        changes["ttl"] = _checked_ttl(settings, ttl)
    if dns_names or no_dns_names:
        changes["dns_names"] = tuple(dns_names)
    if hint is not None:
        changes["hint"] = hint
    if not changes:
        raise click.UsageError("nothing to change; give at least one option")
    repository = open_repository(settings.ca_config())
    try:
        current = repository.get_entry(entry_id)
        stored = repository.update_entry(replace(current, **changes), SystemClock().now())
    finally:
        repository.close()
    if output == "table":
        click.echo(f"Updated entry {stored.entry_id} (revision {stored.revision})")
    _show(stored, output)


@entry.command("delete")
@click.argument("entry_id")
@click.pass_context
def entry_delete(ctx: click.Context, entry_id: str) -> None:
    """Delete an entry (agents drop it at their next sync)."""
    repository = open_repository(settings_of(ctx).ca_config())
    try:
        tombstone = repository.delete_entry(entry_id, SystemClock().now())
    finally:
        repository.close()
    click.echo(f"Deleted entry {tombstone.entry_id} (revision {tombstone.revision})")
