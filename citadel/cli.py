"""``citadel``: the operator command line.

Every command is registered in :func:`_register` (the one place to add a subgroup). Commands
owned by other packages (``serve`` and ``token`` from :mod:`citadel.server`, ``authz`` from
:mod:`citadel.authz.cli`, ``csr`` from :mod:`citadel.client.cli_csr`) are imported only when
invoked or listed, so a missing optional package never stops the other commands. Failures
become ``Error: ...`` and an exit code in :mod:`citadel.cli_errors`.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

import click

from citadel import __version__
from citadel.cli_ca import audit, bundle, ca, db, init
from citadel.cli_cert import cert
from citadel.cli_entry import entry
from citadel.cli_errors import ErrorHandlingGroup
from citadel.cli_params import TRUST_DOMAIN
from citadel.cli_settings import CliSettings
from citadel.identity.spiffe_id import TrustDomain

__all__ = ["cli", "main"]

_log = logging.getLogger("citadel.cli")


@dataclass(frozen=True)
class _LazyCommand:
    module: str
    attribute: str
    fallback: click.Command | None  # used when the module is not installed


def _module_missing(exc: ModuleNotFoundError, module: str) -> bool:
    missing = exc.name or ""
    return module == missing or module.startswith(missing + ".")


class CitadelGroup(ErrorHandlingGroup):
    """The root group: error handling plus commands loaded on first use."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy: dict[str, _LazyCommand] = {}

    def add_lazy_command(
        self, name: str, module: str, attribute: str, *, fallback: click.Command | None = None
    ) -> None:
        self._lazy[name] = _LazyCommand(module, attribute, fallback)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(name for name in self._lazy if self._load(name) is not None)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self._lazy:
            command = self._load(cmd_name)
        return command

    def _load(self, name: str) -> click.Command | None:
        lazy = self._lazy[name]
        try:
            module = importlib.import_module(lazy.module)
        except ModuleNotFoundError as exc:
            if not _module_missing(exc, lazy.module):
                raise
            return lazy.fallback
        command = getattr(module, lazy.attribute, None)
        if not isinstance(command, click.Command):
            return lazy.fallback
        return command


def _configure_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose >= 1 else logging.WARNING
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)


@click.group(
    cls=CitadelGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path, file_okay=False), envvar="CITADEL_DATA_DIR",
    default=Path("data"), show_default=True, help="The CA's private directory (mode 0700).",
)
@click.option(
    "--db-url", envvar="CITADEL_DB_URL", default=None,
    help="SQLAlchemy database URL [default: sqlite:///DATA_DIR/citadel.db].",
)
@click.option(
    "--trust-domain", type=TRUST_DOMAIN, envvar="CITADEL_TRUST_DOMAIN",
    default="cluster.local", show_default=True,
)
@click.option(
    "--key-passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
    envvar="CITADEL_KEY_PASSPHRASE_FILE", default=None,
    help="File holding the CA key passphrase (else $CITADEL_KEY_PASSPHRASE).",
)
@click.option("-v", "--verbose", count=True, help="Log debug details to stderr.")
@click.version_option(__version__, prog_name="citadel")
@click.pass_context
def cli(
    ctx: click.Context,
    data_dir: Path,
    db_url: str | None,
    trust_domain: TrustDomain,
    key_passphrase_file: Path | None,
    verbose: int,
) -> None:
    """Citadel: a SPIFFE certificate authority."""
    _configure_logging(verbose)
    ctx.obj = CliSettings(
        data_dir=data_dir,
        db_url=db_url,
        trust_domain=trust_domain,
        key_passphrase_file=key_passphrase_file,
        verbose=verbose,
    )


@click.command("serve", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _serve_unavailable(args: tuple[str, ...]) -> None:
    """Run the CA server (not installed in this build)."""
    raise click.ClickException("the CA server (citadel.server.app) is not available")


def _register(group: CitadelGroup) -> None:
    """Every top-level command, in one place."""
    from citadel.cli_revoke import cert_revoke, revoke_intermediate
    from citadel.cli_rotate import rotate
    from citadel.cli_upstream import ca_import, intermediate_csr

    for ca_command in (rotate, intermediate_csr, ca_import, revoke_intermediate):
        ca.add_command(ca_command)
    cert.add_command(cert_revoke)
    group.add_command(init)
    group.add_command(db)
    group.add_command(ca)
    group.add_command(bundle)
    group.add_command(cert)
    group.add_command(audit)
    group.add_command(entry)
    group.add_lazy_command(
        "serve", "citadel.server.app", "serve_command", fallback=_serve_unavailable
    )
    group.add_lazy_command("authz", "citadel.authz.cli", "authz")
    group.add_lazy_command("token", "citadel.server.cli_token", "token")
    group.add_lazy_command("csr", "citadel.client.cli_csr", "csr")


assert isinstance(cli, CitadelGroup)
_register(cli)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="citadel")
