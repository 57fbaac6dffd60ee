"""One place where CLI failures become a one-line message and an exit code.

    exit 0   success
    exit 1   operational failure: a Citadel error (not initialised, wrong passphrase, ...)
             or an OS error (permission denied, disk full)
    exit 2   usage error: a bad option or argument (click's own errors)
    exit 70  an unexpected internal error (the detail goes to the debug log)
    exit 130 interrupted

No traceback is ever printed unless debug logging (``-v``) is on.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from citadel.errors import CitadelError

__all__ = ["EXIT_INTERNAL", "EXIT_OPERATIONAL", "EXIT_USAGE", "ErrorHandlingGroup", "one_line"]

_log = logging.getLogger("citadel.cli")
EXIT_OPERATIONAL = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
MAX_MESSAGE_CHARS = 500


def one_line(message: str) -> str:
    """Collapse whitespace and newlines and cap the length."""
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _fail(message: str) -> None:
    click.echo(f"Error: {one_line(message)}", err=True)


def _os_error_message(exc: OSError) -> str:
    reason = exc.strerror or exc.__class__.__name__
    return f"{reason}: {exc.filename}" if exc.filename else reason


class ErrorHandlingGroup(click.Group):
    """A click group whose ``main`` turns every failure into ``Error: ...`` + an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        code = self._run(args, prog_name, complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        **extra: Any,
    ) -> int:
        try:
            result = super().main(
                args, prog_name, complete_var, standalone_mode=False, **extra
            )
        except click.exceptions.Abort:
            _fail("aborted")
            return EXIT_INTERRUPTED
        except KeyboardInterrupt:
            _fail("interrupted")
            return EXIT_INTERRUPTED
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except CitadelError as exc:
            _log.debug("command failed (%s)", exc.kind, exc_info=True)
            _fail(exc.message)
            return EXIT_OPERATIONAL
        except OSError as exc:
            _log.debug("command failed with an OS error", exc_info=True)
            _fail(_os_error_message(exc))
            return EXIT_OPERATIONAL
        except Exception as exc:
            _log.debug("unexpected error", exc_info=True)
            _fail(
                f"unexpected internal error ({exc.__class__.__name__}); "
                "run with -v to log the details"
            )
            return EXIT_INTERNAL
        return result if isinstance(result, int) else 0
