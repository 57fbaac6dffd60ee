"""``citadel authz serve`` logs policy loads and denials even under the ``citadel`` CLI."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from citadel.authz.cli import _serve_logging


@pytest.fixture
def root_as_citadel_sets_it() -> Iterator[logging.Logger]:
    """The root logger as ``citadel`` leaves it without ``-v``: a handler, level WARNING."""
    root = logging.getLogger()
    authz_logger = logging.getLogger("citadel.authz")
    saved = (root.level, list(root.handlers), authz_logger.level)
    handler = logging.StreamHandler()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    authz_logger.setLevel(logging.NOTSET)
    try:
        yield authz_logger
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        authz_logger.setLevel(saved[2])


def test_serve_raises_authz_logging_to_info_when_the_root_is_already_configured(
    root_as_citadel_sets_it: logging.Logger,
) -> None:
    assert not logging.getLogger("citadel.authz.policy_store").isEnabledFor(logging.INFO)
    _serve_logging()
    assert logging.getLogger("citadel.authz.policy_store").isEnabledFor(logging.INFO)
    assert logging.getLogger("citadel.authz.enforcer").isEnabledFor(logging.INFO)
    assert not logging.getLogger("citadel.server").isEnabledFor(logging.INFO)  # only authz


def test_serve_keeps_debug_when_citadel_runs_verbose(
    root_as_citadel_sets_it: logging.Logger,
) -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    _serve_logging()
    assert root_as_citadel_sets_it.isEnabledFor(logging.DEBUG)
