"""``citadel ca rotate prepare|activate|retire|rollback|status``: zero-downtime rotation of
the root and the signing intermediate (see :mod:`citadel.ca.rotation`).

A running ``citadel serve`` picks every step up within a few seconds (it polls the store).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import click

from citadel.ca.config import CaConfig
from citadel.ca.context import open_repository
from citadel.ca.keymanager.encrypted_file import EncryptedFileKeyManager
from citadel.ca.passphrase import resolve_passphrase
from citadel.ca.rotation.acks import ACK_SNAPSHOT_FILE, read_snapshot
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.slots import Slot
from citadel.ca.rotation.status import RotationStatus, SlotStatus, rotation_status, status_document
from citadel.ca.rotation.steps import AuthorityRotation, StepResult
from citadel.cli_output import echo_json, echo_table, format_remaining, format_time
from citadel.cli_params import DURATION
from citadel.cli_settings import settings_of
from citadel.identity.clock import SystemClock
from citadel.store.repository import Repository

__all__ = ["LifecycleParts", "open_lifecycle_parts", "rotate"]

OUTPUT = click.Choice(["table", "json"])
_F = TypeVar("_F", bound=Callable[..., Any])
ACK_MAX_AGE = timedelta(minutes=5)


@dataclass
class LifecycleParts:
    config: CaConfig
    repository: Repository
    key_manager: EncryptedFileKeyManager
    clock: SystemClock

    def rotation(
        self,
        propagation_delay: timedelta | None = None,
        intermediate_delay: timedelta | None = None,
    ) -> AuthorityRotation:
        defaults = RotationPolicy()
        policy = RotationPolicy(
            propagation_delay=(
                defaults.propagation_delay if propagation_delay is None else propagation_delay
            ),
            intermediate_propagation_delay=(
                defaults.intermediate_propagation_delay
                if intermediate_delay is None
                else intermediate_delay
            ),
        )
        return AuthorityRotation(
            repository=self.repository,
            key_manager=self.key_manager,
            clock=self.clock,
            config=self.config,
            policy=policy,
        )


@contextmanager
def open_lifecycle_parts(ctx: click.Context) -> Iterator[LifecycleParts]:
    """The repository and key manager of the CA named by the global options (no issuer)."""
    config = settings_of(ctx).ca_config()
    repository = open_repository(config)
    try:
        keys = EncryptedFileKeyManager(config.keys_dir, resolve_passphrase(config))
        yield LifecycleParts(config, repository, keys, SystemClock())
    finally:
        repository.close()


def _slot_options(command: _F) -> _F:
    command = click.option(
        "--intermediate",
        "slot",
        flag_value=Slot.INTERMEDIATE.value,
        default=True,
        help="The signing intermediate (the default).",
    )(command)
    return click.option(
        "--root",
        "slot",
        flag_value=Slot.ROOT.value,
        help="The root (with a new intermediate under it).",
    )(command)


def _output_option(command: _F) -> _F:
    return click.option("--output", type=OUTPUT, default="table", show_default=True)(command)


_DELAY_HELP = "How long a new root must be in the trust bundle before it may sign."
_INTERMEDIATE_DELAY_HELP = "How long a new intermediate's CRL must be published before it may sign."


def _delay_option(command: _F) -> _F:
    command = click.option(
        "--intermediate-delay",
        type=DURATION,
        default="10m",
        show_default=True,
        envvar="CITADEL_INTERMEDIATE_PROPAGATION_DELAY",
        help=_INTERMEDIATE_DELAY_HELP,
    )(command)
    return click.option(
        "--propagation-delay",
        type=DURATION,
        default="24h",
        show_default=True,
        envvar="CITADEL_PROPAGATION_DELAY",
        help=_DELAY_HELP,
    )(command)


def _echo_result(result: StepResult, output: str) -> None:
    if output == "json":
        echo_json(
            {
                "action": result.action,
                "slot": result.slot.value,
                "authorities": list(result.authority_ids),
                "message": result.message,
            }
        )
    else:
        click.echo(result.message[:1].upper() + result.message[1:])


@click.group()
def rotate() -> None:
    """Rotate the root or the signing intermediate without downtime.

    \b
    prepare   create the next authority (a new root joins the trust bundle at once)
    activate  sign with it once its propagation delay has passed (--force: now)
    retire    drop the old one once no valid leaf it signed remains (--force: now)
    rollback  sign with the previous one again, or cancel a prepared one
    status    the slots, their thresholds, and the agents that have the new bundle
    """


@rotate.command("prepare")
@_slot_options
@_output_option
@click.pass_context
def rotate_prepare(ctx: click.Context, slot: str, output: str) -> None:
    """Create the next authority (audited)."""
    with open_lifecycle_parts(ctx) as parts:
        _echo_result(parts.rotation().prepare(Slot(slot)), output)


@rotate.command("activate")
@_slot_options
@click.option("--force", is_flag=True, help="Activate before the propagation delay.")
@_delay_option
@_output_option
@click.pass_context
def rotate_activate(
    ctx: click.Context,
    slot: str,
    force: bool,
    propagation_delay: timedelta,
    intermediate_delay: timedelta,
    output: str,
) -> None:
    """Start signing with the prepared authority (audited)."""
    with open_lifecycle_parts(ctx) as parts:
        rotation = parts.rotation(propagation_delay, intermediate_delay)
        result = rotation.activate(Slot(slot), force=force)
        _echo_result(result, output)


@rotate.command("retire")
@_slot_options
@click.option(
    "--force",
    is_flag=True,
    help="Retire although leaves it signed are still valid: those workloads then fail mTLS "
    "with peers that refreshed their trust bundle.",
)
@_output_option
@click.pass_context
def rotate_retire(ctx: click.Context, slot: str, force: bool, output: str) -> None:
    """Drop the old authority (from the trust bundle, for a root) (audited)."""
    with open_lifecycle_parts(ctx) as parts:
        _echo_result(parts.rotation().retire(Slot(slot), force=force), output)


@rotate.command("rollback")
@_slot_options
@_output_option
@click.pass_context
def rotate_rollback(ctx: click.Context, slot: str, output: str) -> None:
    """Sign with the previous authority again, or cancel a prepared one (audited)."""
    with open_lifecycle_parts(ctx) as parts:
        _echo_result(parts.rotation().rollback(Slot(slot)), output)


def _leaves(value: int | None) -> str:
    return "-" if value is None else str(value)


def _slot_rows(status: SlotStatus, now: datetime) -> list[list[str]]:
    return [
        [
            status.slot.value,
            view.role,
            view.id,
            view.state,
            view.serial,
            format_time(view.not_after),
            format_remaining(view.not_after, now),
            "citadel" if view.held_by_citadel else "external",
            _leaves(view.remaining_leaves),
        ]
        for view in status.authorities
    ]


def _echo_status(status: RotationStatus, now: datetime) -> None:
    acked = "unknown" if status.agents_acknowledged is None else str(status.agents_acknowledged)
    known = "" if status.agents_known is None else f" of {status.agents_known} known"
    click.echo(
        f"Trust bundle {status.bundle_version}: {len(status.bundle_roots)} root(s); "
        f"agents acknowledged: {acked}{known}"
    )
    echo_table(
        ["SLOT", "ROLE", "ID", "STATE", "SERIAL", "NOT_AFTER", "EXPIRES_IN", "KEY", "VALID_LEAVES"],
        [*_slot_rows(status.root, now), *_slot_rows(status.intermediate, now)],
    )
    for slot in (status.root, status.intermediate):
        line = (
            f"{slot.slot.value}: prepare due {format_time(slot.prepare_at)}, "
            f"activate due {format_time(slot.activate_at)}"
        )
        if slot.next_activation_allowed_at is not None:
            line += (
                f"; the next one may activate from {format_time(slot.next_activation_allowed_at)}"
            )
        click.echo(line)
    if status.pending_upstream_keys:
        click.echo(f"Pending upstream CSR keys: {', '.join(status.pending_upstream_keys)}")


@rotate.command("status")
@_delay_option
@_output_option
@click.pass_context
def rotate_status(
    ctx: click.Context, propagation_delay: timedelta, intermediate_delay: timedelta, output: str
) -> None:
    """The current, next and draining authorities and the bundle's spread."""
    with open_lifecycle_parts(ctx) as parts:
        now = parts.clock.now()
        acks = read_snapshot(parts.config.data_dir / ACK_SNAPSHOT_FILE, now, max_age=ACK_MAX_AGE)
        status = rotation_status(
            parts.rotation(propagation_delay, intermediate_delay), parts.key_manager, now, acks=acks
        )
    if output == "json":
        echo_json(status_document(status))
    else:
        _echo_status(status, now)
