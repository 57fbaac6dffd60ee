"""The CLI's global options, handed to every command (and to plug-in commands like ``serve``)
as ``ctx.obj``: ``ctx.find_object(CliSettings).ca_config()`` gives the CA configuration."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from citadel.ca.config import CaConfig
from citadel.identity.spiffe_id import TrustDomain

__all__ = ["CliSettings", "settings_of"]


@dataclass(frozen=True)
class CliSettings:
    data_dir: Path
    db_url: str | None
    trust_domain: TrustDomain
    key_passphrase_file: Path | None
    verbose: int = 0

    def ca_config(self, **overrides: Any) -> CaConfig:
        """A :class:`CaConfig` from the global options; keyword arguments override fields."""
        config = CaConfig(
            data_dir=self.data_dir,
            db_url=self.db_url or None,
            trust_domain=self.trust_domain,
            key_passphrase_file=self.key_passphrase_file,
        )
        return replace(config, **overrides) if overrides else config


def settings_of(ctx: click.Context) -> CliSettings:
    settings = ctx.find_object(CliSettings)
    if settings is None:
        raise click.UsageError("global settings are missing (invoke through 'citadel')")
    return settings
