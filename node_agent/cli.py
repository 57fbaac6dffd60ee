"""``citadel-agent``: run the node agent, and query a running one.

    citadel-agent run --config FILE [--ready-file PATH]
    citadel-agent status [--config FILE | --url URL] [--json]
    citadel-agent rotate [--config FILE | --url URL]

Errors are one line on stderr and a non-zero exit status (2 for configuration errors,
1 otherwise), never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
from prometheus_client import disable_created_metrics

from citadel.errors import CitadelError
from node_agent.agent import Agent
from node_agent.cert_writer import write_atomically
from node_agent.config import ENV_PREFIX, AgentConfig, load_config
from node_agent.errors import ConfigError, StatusUnavailableError
from node_agent.status_format import format_status

__all__ = ["cli", "main"]

_log = logging.getLogger("node_agent")
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("watchdog").setLevel(logging.WARNING)


def _load(path: Path) -> AgentConfig:
    return load_config(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Citadel node agent: workload certificates for Envoy (SDS) and files."""


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=CONFIG_ENV,
    required=True,
    help=f"YAML or JSON config file (or ${CONFIG_ENV}).",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write {pid, status_port, sds_socket} as JSON here once serving.",
)
def run(config_path: Path, ready_file: Path | None) -> None:
    """Run the agent until SIGTERM or SIGINT."""
    config = _load(config_path)
    _configure_logging(config.log_level)
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created samples
    asyncio.run(_serve(config, ready_file))


async def _serve(config: AgentConfig, ready_file: Path | None) -> None:
    agent = Agent(config)
    running = await agent.start(pid=os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        if ready_file is not None:
            document = {
                "pid": running.pid,
                "status_port": running.status_port,
                "sds_socket": running.sds_socket,
            }
            write_atomically(ready_file, json.dumps(document).encode(), mode=0o644)
        _log.info(
            "agent running for %s (pid %d, status port %d)",
            config.spiffe_id,
            running.pid,
            running.status_port,
        )
        await stop.wait()
        _log.info("stopping")
    finally:
        await agent.stop()
        if ready_file is not None:
            with contextlib.suppress(FileNotFoundError):
                ready_file.unlink()


def _status_url(config_path: Path | None, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    if config_path is None:
        raise click.UsageError(f"give --url or --config (or set {CONFIG_ENV})")
    config = _load(config_path)
    if config.status.port == 0:
        raise ConfigError("status.port is 0 in the config; pass --url http://HOST:PORT instead")
    return f"http://{config.status.address}:{config.status.port}"


def _request(url: str, *, method: str = "GET") -> bytes:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"status URL must start with http:// or https://, not {url[:100]!r}")
    request = urllib.request.Request(url, method=method)  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return bytes(response.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatusUnavailableError(
            f"cannot reach the agent's status endpoint {url}: {reason}"
        ) from exc


_target_options = [
    click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=CONFIG_ENV,
        default=None,
        help="The agent's config file (to find its status endpoint).",
    ),
    click.option("--url", default=None, help="Status endpoint, e.g. http://127.0.0.1:15021"),
]


def _with_target(func: Any) -> Any:
    for option in reversed(_target_options):
        func = option(func)
    return func


@cli.command()
@_with_target
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON status.")
def status(config_path: Path | None, url: str | None, as_json: bool) -> None:
    """Print the identities a running agent holds, with their expiries."""
    base = _status_url(config_path, url)
    raw = _request(f"{base}/status")
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise StatusUnavailableError(f"{base}/status did not return JSON") from exc
    if as_json:
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        click.echo(format_status(document))


@cli.command()
@_with_target
def rotate(config_path: Path | None, url: str | None) -> None:
    """Ask a running agent to renew its certificate now."""
    base = _status_url(config_path, url)
    click.echo(_request(f"{base}/rotate", method="POST").decode("utf-8", "replace").strip())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``citadel-agent`` console script."""
    try:
        cli.main(args=argv, prog_name="citadel-agent", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("citadel-agent: aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except ConfigError as exc:
        click.echo(f"citadel-agent: configuration error: {exc.message}", err=True)
        return 2
    except CitadelError as exc:
        click.echo(f"citadel-agent: error: {exc.message}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
